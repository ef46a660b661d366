// Cross-key atomicity of multi-key txns: whole txns (acknowledged or of unknown outcome) pass;
// a read that shows part of a txn, a stale read, a phantom value or a wrong revision is caught.

import { describe, expect, it } from 'vitest';
import { checkTxnAtomicity, type TxnRead, type TxnRecord } from './atomicity.ts';

const a: TxnRecord = { keys: ['t/0', 't/1'], value: 'a', call: 0, ret: 10, revision: 5 };
const b: TxnRecord = { keys: ['t/1', 't/2'], value: 'b', call: 20, ret: Infinity, revision: null };

function read(call: number, ret: number, revision: number, kvs: Record<string, [string, number]>): TxnRead {
  return { call, ret, revision, kvs: Object.fromEntries(Object.entries(kvs).map(([k, [value, modRevision]]) => [k, { value, modRevision }])) };
}

describe('checkTxnAtomicity', () => {
  it('accepts whole txns, an unknown-outcome txn seen whole or not at all, and keys overwritten later', () => {
    const reads = [
      read(1, 2, 4, {}),
      read(11, 12, 5, { 't/0': ['a', 5], 't/1': ['a', 5] }),
      read(21, 22, 5, { 't/0': ['a', 5], 't/1': ['a', 5] }),
      read(30, 31, 9, { 't/0': ['a', 5], 't/1': ['b', 9], 't/2': ['b', 9] }),
    ];
    expect(checkTxnAtomicity([a, b], reads)).toEqual({ ok: true, checked: 4 });
  });

  it('catches an unknown-outcome txn seen on one key only', () => {
    const r = checkTxnAtomicity([a, b], [read(30, 31, 9, { 't/0': ['a', 5], 't/1': ['a', 5], 't/2': ['b', 9] })]);
    expect(r.ok).toBe(false);
    if (r.ok !== false) return;
    expect(r.anomaly).toBe('txn-torn');
    expect(r.witness).toContain('t/1 still holds an older write (revision 5)');
    expect(r.witness).toContain('unknown outcome');
  });

  it('catches a txn seen on one key while another of its keys does not exist', () => {
    const r = checkTxnAtomicity([a], [read(11, 12, 5, { 't/0': ['a', 5] })]);
    expect(r.ok === false && r.anomaly).toBe('txn-torn');
  });

  it('catches a stale read after an acknowledged txn', () => {
    const r = checkTxnAtomicity([a], [read(11, 12, 4, {})]);
    expect(r.ok === false && r.anomaly).toBe('txn-stale-read');
  });

  it('catches a value no txn wrote, or one written by a txn called after the read returned', () => {
    expect(checkTxnAtomicity([a], [read(11, 12, 6, { 't/0': ['z', 6], 't/1': ['a', 5] })]).ok === false).toBe(true);
    const late = checkTxnAtomicity([b], [read(1, 2, 9, { 't/1': ['b', 9], 't/2': ['b', 9] })]);
    expect(late.ok === false && late.anomaly).toBe('txn-phantom-value');
  });

  it('catches an acknowledged txn seen at another revision than its own', () => {
    const r = checkTxnAtomicity([a], [read(11, 12, 7, { 't/0': ['a', 7], 't/1': ['a', 7] })]);
    expect(r.ok === false && r.anomaly).toBe('txn-wrong-revision');
  });

  it('refuses malformed records', () => {
    expect(() => checkTxnAtomicity([{ ...a, keys: ['t/0'] }], [])).toThrow('two keys or more');
    expect(() => checkTxnAtomicity([a, { ...b, value: 'a' }], [])).toThrow('values must be unique');
    expect(() => checkTxnAtomicity([{ ...a, revision: null }], [])).toThrow('unknown outcome exactly when');
  });
});
