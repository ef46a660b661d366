import { describe, expect, it } from 'vitest';
import { CompareResult, CompareTarget, GrpcCode, type Compare, type RequestOp } from '../../src/mvcc/index.ts';
import { Harness, b, kv, str } from './helpers.ts';

const put = (key: string, value: string): RequestOp => ({ requestPut: { key: b(key), value: b(value) } });
const del = (key: string, rangeEnd?: string): RequestOp => ({
  requestDeleteRange: { key: b(key), rangeEnd: rangeEnd === undefined ? undefined : b(rangeEnd) },
});
const get = (key: string, rangeEnd?: string): RequestOp => ({
  requestRange: { key: b(key), rangeEnd: rangeEnd === undefined ? undefined : b(rangeEnd) },
});
const cmp = (key: string, target: Compare['target'], result: Compare['result'], fields: Partial<Compare>): Compare => ({
  key: b(key),
  target,
  result,
  ...fields,
});

describe('txn', () => {
  it('compare-and-swap on value: success and failure branches', () => {
    const h = new Harness();
    h.put('k', 'v1');
    const swap = (expected: string) =>
      h.ok({
        kind: 'txn',
        request: {
          compare: [cmp('k', CompareTarget.VALUE, CompareResult.EQUAL, { value: b(expected) })],
          success: [put('k', 'v2')],
          failure: [get('k')],
        },
      });
    const first = swap('v1');
    expect(first.succeeded).toBe(true);
    expect(first.header.revision).toBe(3);
    const second = swap('v1');
    expect(second.succeeded).toBe(false);
    expect(second.header.revision).toBe(3);
    const failed = second.responses[0];
    expect('responseRange' in failed && str(failed.responseRange.kvs[0].value)).toBe('v2');
  });

  it('all ops share one main revision; reads see earlier writes of the txn', () => {
    const h = new Harness();
    h.put('x', '0');
    const r = h.ok({
      kind: 'txn',
      request: { success: [get('a'), put('a', '1'), put('b', '2'), get('a', 'c'), del('x'), get('x')] },
    });
    expect(r.succeeded).toBe(true);
    expect(r.header.revision).toBe(3);
    const [before, p1, p2, after, d, gone] = r.responses;
    expect('responseRange' in before && before.responseRange.kvs.length).toBe(0);
    expect('responseRange' in before && before.responseRange.header.revision).toBe(2);
    expect('responsePut' in p1 && p1.responsePut.header.revision).toBe(3);
    expect('responsePut' in p2 && p2.responsePut.header.revision).toBe(3);
    expect('responseRange' in after && after.responseRange.kvs.map(kv)).toEqual([
      { key: 'a', value: '1', create: 3, mod: 3, version: 1, lease: 0n },
      { key: 'b', value: '2', create: 3, mod: 3, version: 1, lease: 0n },
    ]);
    expect('responseRange' in after && after.responseRange.header.revision).toBe(3);
    expect('responseDeleteRange' in d && d.responseDeleteRange.deleted).toBe(1);
    expect('responseRange' in gone && gone.responseRange.kvs.length).toBe(0);
    expect(h.sm.currentRevision).toBe(3);
    expect(h.get('x', 2).kvs.length).toBe(1);
  });

  it('a txn without writes does not bump the revision', () => {
    const h = new Harness();
    h.put('a', '1');
    const r = h.ok({ kind: 'txn', request: { success: [get('a'), del('zz')] } });
    expect(r.header.revision).toBe(2);
    expect(h.sm.currentRevision).toBe(2);
  });

  it('compares on version, create, mod and lease with every result', () => {
    const h = new Harness();
    h.ok({ kind: 'leaseGrant', request: { ID: 5n, TTL: 60 } });
    h.put('k', '1'); // 2
    h.put('k', '2', { lease: 5n }); // 3, version 2
    const holds = (c: Compare) => h.ok({ kind: 'txn', request: { compare: [c] } }).succeeded;
    expect(holds(cmp('k', CompareTarget.VERSION, CompareResult.EQUAL, { version: 2 }))).toBe(true);
    expect(holds(cmp('k', CompareTarget.VERSION, CompareResult.GREATER, { version: 1 }))).toBe(true);
    expect(holds(cmp('k', CompareTarget.VERSION, CompareResult.LESS, { version: 2 }))).toBe(false);
    expect(holds(cmp('k', CompareTarget.CREATE, CompareResult.EQUAL, { createRevision: 2 }))).toBe(true);
    expect(holds(cmp('k', CompareTarget.MOD, CompareResult.NOT_EQUAL, { modRevision: 3 }))).toBe(false);
    expect(holds(cmp('k', CompareTarget.MOD, CompareResult.LESS, { modRevision: 4 }))).toBe(true);
    expect(holds(cmp('k', CompareTarget.LEASE, CompareResult.EQUAL, { lease: 5n }))).toBe(true);
    expect(holds(cmp('k', CompareTarget.VALUE, CompareResult.GREATER, { value: b('1') }))).toBe(true);
    // A missing key compares as a zero KeyValue, except on VALUE, which always fails.
    expect(holds(cmp('missing', CompareTarget.VERSION, CompareResult.EQUAL, { version: 0 }))).toBe(true);
    expect(holds(cmp('missing', CompareTarget.CREATE, CompareResult.EQUAL, { createRevision: 0 }))).toBe(true);
    expect(holds(cmp('missing', CompareTarget.VALUE, CompareResult.EQUAL, { value: b('') }))).toBe(false);
    expect(holds(cmp('missing', CompareTarget.VALUE, CompareResult.NOT_EQUAL, { value: b('x') }))).toBe(false);
  });

  it('a range compare holds only if every key in the range satisfies it', () => {
    const h = new Harness();
    h.put('p/a', '1');
    h.put('p/b', '1');
    const versionsEqual1 = () =>
      h.ok({
        kind: 'txn',
        request: { compare: [cmp('p/', CompareTarget.VERSION, CompareResult.EQUAL, { version: 1, rangeEnd: b('p0') })] },
      }).succeeded;
    expect(versionsEqual1()).toBe(true);
    h.put('p/b', '2');
    expect(versionsEqual1()).toBe(false);
  });

  it('nested txns: compares are evaluated before the outer txn writes; one revision overall', () => {
    const h = new Harness();
    h.put('flag', 'old');
    const r = h.ok({
      kind: 'txn',
      request: {
        success: [
          put('flag', 'new'),
          {
            requestTxn: {
              compare: [cmp('flag', CompareTarget.VALUE, CompareResult.EQUAL, { value: b('old') })],
              success: [put('nested', 'saw-old')],
              failure: [put('nested', 'saw-new')],
            },
          },
        ],
      },
    });
    expect(r.header.revision).toBe(3);
    const nested = r.responses[1];
    expect('responseTxn' in nested && nested.responseTxn.succeeded).toBe(true);
    expect('responseTxn' in nested && nested.responseTxn.header.revision).toBe(0);
    expect(kv(h.get('nested').kvs[0])).toMatchObject({ value: 'saw-old', mod: 3 });
  });

  it('duplicate keys: put twice, put inside a delete, across nesting levels', () => {
    const h = new Harness();
    h.put('a', '0');
    const dup = (ops: RequestOp[], failure: RequestOp[] = []) => {
      const e = h.err({ kind: 'txn', request: { success: ops, failure } });
      expect(e.message).toBe('etcdserver: duplicate key given in txn request');
      expect(e.code).toBe(GrpcCode.InvalidArgument);
    };
    dup([put('a', '1'), put('a', '2')]);
    dup([del('a'), put('a', '1')]);
    dup([del('a', 'b'), put('a', '1')]);
    dup([put('a', '1'), { requestTxn: { success: [put('a', '2')] } }]);
    dup([del('a'), { requestTxn: { success: [put('a', '2')] } }]);
    dup([put('a', '1'), { requestTxn: { failure: [del('a')] } }]);
    dup([], [put('a', '1'), put('a', '2')]);
    expect(h.sm.currentRevision).toBe(2);
  });

  it('allowed overlaps: the same key in both branches of a nested txn, overlapping deletes', () => {
    const h = new Harness();
    h.put('a', '0');
    h.ok({ kind: 'txn', request: { success: [{ requestTxn: { success: [put('a', '1')], failure: [put('a', '2')] } }] } });
    const r = h.ok({ kind: 'txn', request: { success: [del('a'), del('a', 'b')] } });
    const [first, second] = r.responses;
    expect('responseDeleteRange' in first && first.responseDeleteRange.deleted).toBe(1);
    expect('responseDeleteRange' in second && second.responseDeleteRange.deleted).toBe(0);
    expect(h.sm.currentRevision).toBe(4);
    // The same key in the success and failure lists of one txn is not a duplicate either.
    h.ok({ kind: 'txn', request: { success: [put('a', '1')], failure: [put('a', '2')] } });
  });

  it('too many operations: more than 128 in any list', () => {
    const h = new Harness();
    const ops = Array.from({ length: 129 }, (_, i) => put(`k${i}`, 'v'));
    const e = h.err({ kind: 'txn', request: { success: ops } });
    expect(e.message).toBe('etcdserver: too many operations in txn request');
    expect(e.code).toBe(GrpcCode.InvalidArgument);
    h.ok({ kind: 'txn', request: { success: ops.slice(0, 128) } });
    expect(h.sm.currentRevision).toBe(2);
    expect(h.ok({ kind: 'range', request: { key: b('k'), rangeEnd: b('l'), countOnly: true } }).count).toBe(128);
  });

  it('a txn whose taken branch puts with an unknown lease fails whole', () => {
    const h = new Harness();
    const e = h.err({
      kind: 'txn',
      request: { success: [put('a', '1'), { requestPut: { key: b('b'), value: b('1'), lease: 42n } }] },
    });
    expect(e.message).toBe('etcdserver: requested lease not found');
    expect(h.sm.currentRevision).toBe(1);
    expect(h.get('a').kvs).toEqual([]);
  });

  it('a range in a txn at a future or compacted revision fails the txn before any write', () => {
    const h = new Harness();
    h.put('a', '1');
    h.put('a', '2');
    h.ok({ kind: 'compaction', request: { revision: 3 } });
    const future = h.err({ kind: 'txn', request: { success: [put('b', '1'), { requestRange: { key: b('a'), revision: 4 } }] } });
    expect(future.message).toBe('etcdserver: mvcc: required revision is a future revision');
    const old = h.err({ kind: 'txn', request: { success: [put('b', '1'), { requestRange: { key: b('a'), revision: 2 } }] } });
    expect(old.message).toBe('etcdserver: mvcc: required revision has been compacted');
    expect(h.sm.currentRevision).toBe(3);
  });
});

describe('compaction', () => {
  it('reads below the compaction fail; at and above it they work', () => {
    const h = new Harness();
    h.put('a', '1'); // 2
    h.put('a', '2'); // 3
    h.put('a', '3'); // 4
    const c = h.ok({ kind: 'compaction', request: { revision: 3 } });
    expect(c.header.revision).toBe(4);
    const e = h.err({ kind: 'range', request: { key: b('a'), revision: 2 } });
    expect(e.message).toBe('etcdserver: mvcc: required revision has been compacted');
    expect(e.code).toBe(GrpcCode.OutOfRange);
    expect(str(h.get('a', 3).kvs[0].value)).toBe('2');
    expect(str(h.get('a').kvs[0].value)).toBe('3');
    expect(h.sm.compactRevision).toBe(3);
  });

  it('compacting at or below the last compaction, or in the future, fails', () => {
    const h = new Harness();
    h.put('a', '1');
    h.put('a', '2');
    expect(h.err({ kind: 'compaction', request: { revision: 4 } }).message).toBe(
      'etcdserver: mvcc: required revision is a future revision',
    );
    h.ok({ kind: 'compaction', request: { revision: 2 } });
    expect(h.err({ kind: 'compaction', request: { revision: 2 } }).message).toBe(
      'etcdserver: mvcc: required revision has been compacted',
    );
    expect(h.err({ kind: 'compaction', request: { revision: 1 } }).message).toBe(
      'etcdserver: mvcc: required revision has been compacted',
    );
    h.ok({ kind: 'compaction', request: { revision: 3 } });
  });

  it('keeps each key latest version at or below the revision, drops deleted keys', () => {
    const h = new Harness();
    h.put('a', '1'); // 2
    h.put('b', '1'); // 3
    h.del('b'); // 4
    h.put('c', '1'); // 5
    h.put('a', '2'); // 6
    h.ok({ kind: 'compaction', request: { revision: 5 } });
    const at5 = h.ok({ kind: 'range', request: { key: b('a'), rangeEnd: b('z'), revision: 5 } });
    expect(at5.kvs.map(kv).map((x) => [x.key, x.value, x.mod])).toEqual([
      ['a', '1', 2],
      ['c', '1', 5],
    ]);
    expect(h.sm.keyCount).toBe(2);
    // A key's version keeps counting across the compaction.
    h.put('a', '3');
    expect(kv(h.get('a').kvs[0])).toMatchObject({ version: 3, create: 2 });
  });

  it('a compaction that removes a tombstone at the compact revision leaves a correct index', () => {
    const h = new Harness();
    h.put('a', '1'); // 2
    h.del('a'); // 3
    h.ok({ kind: 'compaction', request: { revision: 3 } });
    expect(h.get('a').kvs).toEqual([]);
    expect(h.sm.keyCount).toBe(0);
    h.put('a', '2');
    expect(kv(h.get('a').kvs[0])).toMatchObject({ version: 1, create: 4 });
  });
});

describe('txn validation details', () => {
  it('a nested txn may use only what its parent leaves of the 128-op budget', () => {
    const h = new Harness();
    const outer = Array.from({ length: 99 }, (_, i) => put(`o${i}`, 'v'));
    const nested = (n: number): RequestOp => ({ requestTxn: { success: Array.from({ length: n }, (_, i) => put(`n${i}`, 'v')) } });
    // The outer list has 100 ops, so the nested txn may have 28.
    expect(h.err({ kind: 'txn', request: { success: [...outer, nested(29)] } }).message).toBe(
      'etcdserver: too many operations in txn request',
    );
    h.ok({ kind: 'txn', request: { success: [...outer, nested(28)] } });
  });

  it('a compare with an empty key is refused', () => {
    const h = new Harness();
    const e = h.err({ kind: 'txn', request: { compare: [cmp('', CompareTarget.VERSION, CompareResult.EQUAL, { version: 0 })] } });
    expect(e.message).toBe('etcdserver: key is not provided');
  });

  it('etcd takes a delete range_end of "\\0" literally in the duplicate check', () => {
    const h = new Harness();
    h.put('b', 'old');
    // Accepted, as by etcd: the delete takes b at sub 0, the put recreates it at sub 1.
    const r = h.ok({
      kind: 'txn',
      request: { success: [{ requestDeleteRange: { key: b('a'), rangeEnd: new Uint8Array([0]) } }, put('b', 'new')] },
    });
    expect(r.header.revision).toBe(3);
    expect(kv(h.get('b').kvs[0])).toMatchObject({ value: 'new', version: 1, create: 3 });
    // With ignore_value the put would need the key the delete just removed: refused up front.
    const e = h.err({
      kind: 'txn',
      request: {
        success: [
          { requestDeleteRange: { key: b('a'), rangeEnd: new Uint8Array([0]) } },
          { requestPut: { key: b('b'), ignoreValue: true } },
        ],
      },
    });
    expect(e.message).toBe('etcdserver: key not found');
    expect(h.sm.currentRevision).toBe(3);
  });

  it('a txn too large as a whole is refused', () => {
    const h = new Harness();
    const chunk = new Uint8Array(400 * 1024);
    const ops = Array.from({ length: 4 }, (_, i): RequestOp => ({ requestPut: { key: b(`k${i}`), value: chunk } }));
    expect(h.err({ kind: 'txn', request: { success: ops } }).message).toBe('etcdserver: request is too large');
    h.ok({ kind: 'txn', request: { success: ops.slice(0, 3) } });
  });
});
