// Cross-key atomicity of multi-key transactions, including those whose outcome is unknown.
//
// The workload's multi-key txns each put one unique value on two or more keys at once, on keys
// nothing else writes and nothing deletes. A read is a linearizable range over those keys that
// reports each key's modRevision. etcd gives a txn one revision and a range one snapshot, so a
// read that shows a txn's value on one key has learned that txn's revision r — even when the
// client never learned whether the txn happened — and then must show every other key of the txn
// written at r with the same value, or overwritten later (modRevision > r). Anything else is a
// torn transaction. Acknowledged txns add real-time facts: a read called after a txn returned
// shows each of its keys at the txn's revision or later.

import type { CheckResult } from './history.ts';

/** A txn putting `value` on every key of `keys`. Unknown outcome: `ret` Infinity, `revision` null. */
export interface TxnRecord {
  keys: string[];
  value: string;
  call: number;
  ret: number;
  revision: number | null;
}

/** A linearizable range over the txn keys: each key present, with its value and modRevision. */
export interface TxnRead {
  call: number;
  ret: number;
  revision: number;
  kvs: Record<string, { value: string; modRevision: number }>;
}

function describeTxn(t: TxnRecord): string {
  const ret = t.ret === Infinity ? 'unknown outcome' : `returned ${Math.round(t.ret)}`;
  return `txn put ${JSON.stringify(t.value)} on ${t.keys.join(', ')} (called ${Math.round(t.call)}, ${ret}${t.revision === null ? '' : `, revision ${t.revision}`})`;
}

function describeRead(r: TxnRead): string {
  const kvs = Object.entries(r.kvs)
    .map(([k, v]) => `${k}=${JSON.stringify(v.value)}@${v.modRevision}`)
    .join(' ');
  return `range [${Math.round(r.call)}, ${Math.round(r.ret)}] @rev ${r.revision}: ${kvs || '(empty)'}`;
}

export function checkTxnAtomicity(txns: readonly TxnRecord[], reads: readonly TxnRead[]): CheckResult {
  const byValue = new Map<string, TxnRecord>();
  for (const t of txns) {
    if (t.keys.length < 2) throw new Error(`a multi-key txn needs two keys or more: ${describeTxn(t)}`);
    if (byValue.has(t.value)) throw new Error(`two txns write the value ${JSON.stringify(t.value)}: values must be unique`);
    if ((t.ret === Infinity) !== (t.revision === null)) throw new Error(`a txn has an unknown outcome exactly when it has no revision: ${describeTxn(t)}`);
    byValue.set(t.value, t);
  }
  const fail = (anomaly: string, read: TxnRead, txn: TxnRecord, why: string): CheckResult => ({
    ok: false,
    checked: reads.length,
    anomaly,
    witness: `${why}\n  ${describeRead(read)}\n  ${describeTxn(txn)}`,
  });
  for (const read of reads) {
    for (const [key, seen] of Object.entries(read.kvs)) {
      if (seen.modRevision > read.revision) {
        return { ok: false, checked: reads.length, anomaly: 'txn-read-from-future', witness: `${key} at modRevision ${seen.modRevision} in a read at revision ${read.revision}\n  ${describeRead(read)}` };
      }
      const txn = byValue.get(seen.value);
      if (txn === undefined || !txn.keys.includes(key)) {
        return { ok: false, checked: reads.length, anomaly: 'txn-phantom-value', witness: `${key} holds ${JSON.stringify(seen.value)}, which no txn wrote to it\n  ${describeRead(read)}` };
      }
      if (txn.call > read.ret) return fail('txn-phantom-value', read, txn, `${key} holds the value of a txn called after the read returned`);
      const r = seen.modRevision;
      if (txn.revision !== null && txn.revision !== r) return fail('txn-wrong-revision', read, txn, `${key} holds the txn's value at revision ${r}, but the txn was acknowledged at ${txn.revision}`);
      for (const other of txn.keys) {
        const o = read.kvs[other];
        if (o === undefined) return fail('txn-torn', read, txn, `the read shows the txn on ${key} (revision ${r}) but ${other} does not exist`);
        if (o.modRevision < r) return fail('txn-torn', read, txn, `the read shows the txn on ${key} (revision ${r}) but ${other} still holds an older write (revision ${o.modRevision})`);
        if (o.modRevision === r && o.value !== txn.value) return fail('txn-torn', read, txn, `${other} was written at the txn's revision ${r} with another value`);
      }
    }
    for (const txn of txns) {
      if (txn.revision === null || txn.ret >= read.call) continue;
      for (const key of txn.keys) {
        const o = read.kvs[key];
        if (o === undefined || o.modRevision < txn.revision) {
          return fail('txn-stale-read', read, txn, `the read was called after the txn returned, yet ${key} ${o === undefined ? 'does not exist' : `is at revision ${o.modRevision}`}, before the txn's revision`);
        }
      }
    }
  }
  return { ok: true, checked: reads.length };
}
