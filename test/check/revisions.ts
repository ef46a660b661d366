// Revision checks: what etcd's revisions add to a history (see linearizable.ts for the list).
// Each acknowledged write carries its revision, so the revision order is a total order of the
// acknowledged writes; every read is a snapshot of the store at its header revision.

import type { CheckResult, HistoryOp } from './history.ts';
import { acknowledgedWrite, countReturnedBefore, describeOp, possibleWrite, type Write } from './ops.ts';

type Value = string | null;

/** A fact a response states about one key at one revision. */
interface Observation {
  op: HistoryOp;
  key: string;
  revision: number;
  what: string;
  accepts(value: Value): boolean;
}

interface Violation {
  anomaly: string;
  witness: unknown;
}

export function checkRevisions(history: HistoryOp[]): CheckResult {
  const acknowledged = history.filter((op) => op.output !== null);
  const violation = uniqueWriteRevisions(acknowledged) ?? revisionsFollowRealTime(acknowledged) ?? readsAreSnapshots(history);
  if (violation !== null) return { ok: false, checked: acknowledged.length, ...violation };
  return { ok: true, checked: acknowledged.length };
}

function uniqueWriteRevisions(acknowledged: HistoryOp[]): Violation | null {
  const byRevision = new Map<number, HistoryOp>();
  for (const op of acknowledged) {
    const write = acknowledgedWrite(op);
    if (write === null) continue;
    const other = byRevision.get(write.revision);
    if (other !== undefined) {
      return { anomaly: 'duplicate-write-revision', witness: { revision: write.revision, explanation: `two acknowledged writes got revision ${write.revision}; every write transaction gets a revision of its own`, ops: [describeOp(other), describeOp(op)] } };
    }
    byRevision.set(write.revision, op);
  }
  return null;
}

/** An operation that starts after another returned sees at least its revision; a write, more. */
function revisionsFollowRealTime(acknowledged: HistoryOp[]): Violation | null {
  const byRet = [...acknowledged].sort((a, b) => a.ret - b.ret);
  // highest[i]: the op with the greatest revision among byRet[0..i].
  const highest: HistoryOp[] = [];
  for (const op of byRet) {
    const last = highest[highest.length - 1];
    highest.push(last !== undefined && last.output!.revision >= op.output!.revision ? last : op);
  }
  for (const op of acknowledged) {
    const returned = countReturnedBefore(byRet, op.call);
    if (returned === 0) continue;
    const before = highest[returned - 1];
    const seen = before.output!.revision;
    const revision = op.output!.revision;
    const isWrite = acknowledgedWrite(op) !== null;
    if (revision < seen || (isWrite && revision === seen)) {
      return {
        anomaly: 'revision-went-back',
        witness: {
          explanation: `${isWrite ? 'a write' : 'an operation'} that started after another returned at revision ${seen} ${isWrite ? 'must get a greater revision' : 'must see at least that revision'}, but got ${revision}`,
          earlier: describeOp(before),
          later: describeOp(op),
        },
      };
    }
  }
  return null;
}

function readsAreSnapshots(history: HistoryOp[]): Violation | null {
  const writes = new Map<string, { revision: number; value: Value; op: HistoryOp }[]>();
  const unknownWrites = new Map<string, Write[]>();
  const keys = new Set<string>();
  for (const op of history) {
    if (op.input.f !== 'range') keys.add(op.input.key);
    const write = acknowledgedWrite(op);
    if (write !== null) push(writes, write.key, { revision: write.revision, value: write.value, op });
    const maybe = possibleWrite(op);
    if (maybe !== null) push(unknownWrites, maybe.key, maybe);
  }
  for (const list of writes.values()) list.sort((a, b) => a.revision - b.revision);

  for (const op of history) {
    const observations = observationsOf(op, keys);
    if (!Array.isArray(observations)) return observations;
    for (const o of observations) {
      const latest = latestAtOrBefore(writes.get(o.key) ?? [], o.revision);
      const value = latest === null ? null : latest.value;
      if (o.accepts(value)) continue;
      const explanation = (unknownWrites.get(o.key) ?? []).find((w) => w.op.call <= op.ret && o.accepts(w.value));
      if (explanation !== undefined) continue;
      return {
        anomaly: 'read-not-at-revision',
        witness: {
          key: o.key,
          explanation: `at revision ${o.revision} ${JSON.stringify(o.key)} held ${latest === null ? 'nothing (no acknowledged write at or before it)' : JSON.stringify(value)}, but the response says ${o.what}, and no write with unknown outcome could explain it`,
          op: describeOp(op),
          latestWriteAtOrBefore: latest === null ? null : describeOp(latest.op),
          laterWrites: (writes.get(o.key) ?? []).filter((w) => w.revision > o.revision).slice(0, 3).map((w) => describeOp(w.op)),
        },
      };
    }
  }
  return null;
}

/** What a response says about keys at revisions, or a violation for a malformed range result. */
function observationsOf(op: HistoryOp, keys: Set<string>): Observation[] | Violation {
  const { input, output } = op;
  if (output === null) return [];
  const R = output.revision;
  const is = (expected: Value) => (v: Value) => v === expected;
  const show = (v: Value) => (v === null ? 'it was absent' : `it held ${JSON.stringify(v)}`);
  if (input.f === 'get' && output.f === 'get') return [{ op, key: input.key, revision: R, what: show(output.value), accepts: is(output.value) }];
  if (input.f === 'range' && output.f === 'range') {
    const outside = Object.keys(output.kvs).find((k) => !k.startsWith(input.prefix));
    if (outside !== undefined) {
      return { anomaly: 'range-outside-prefix', witness: { explanation: `a range over prefix ${JSON.stringify(input.prefix)} returned key ${JSON.stringify(outside)}`, op: describeOp(op) } };
    }
    const covered = new Set([...keys].filter((k) => k.startsWith(input.prefix)).concat(Object.keys(output.kvs)));
    return [...covered].map((key) => {
      const value = output.kvs[key] ?? null;
      return { op, key, revision: R, what: show(value), accepts: is(value) };
    });
  }
  if (input.f === 'cas' && output.f === 'cas') {
    if (output.succeeded) return [{ op, key: input.key, revision: R - 1, what: `a CAS succeeded, so it held ${JSON.stringify(input.expected)} just before`, accepts: is(input.expected) }];
    return [{ op, key: input.key, revision: R, what: `a failed CAS read ${JSON.stringify(output.value)}`, accepts: is(output.value) }];
  }
  if (input.f === 'delete' && output.f === 'delete') {
    if (output.deleted > 0) return [{ op, key: input.key, revision: R - 1, what: 'a delete removed it, so it existed just before', accepts: (v) => v !== null }];
    return [{ op, key: input.key, revision: R, what: 'a delete found nothing to delete', accepts: is(null) }];
  }
  return [];
}

function latestAtOrBefore<T extends { revision: number }>(sorted: T[], revision: number): T | null {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid].revision <= revision) lo = mid + 1;
    else hi = mid;
  }
  return lo === 0 ? null : sorted[lo - 1];
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [value]);
  else list.push(value);
}
