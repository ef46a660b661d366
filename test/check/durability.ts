// The durability checker: the state every member holds at the end of a run.
// - Every member reports the same revision and the same key-values (else the first member
//   that differs from the first one is named, with the keys on which they differ).
// - The final revision is at least every revision a response reported.
// - For every key, the final value is the one written by the acknowledged write with the
//   greatest revision (an acknowledged write is present unless a later one overwrote it), or
//   absent if nothing acknowledged wrote it — unless a write with unknown outcome could have
//   come last: same key and value, and room for a revision between the last acknowledged
//   write and the final revision.
// Histories start from an empty store; the final state must cover every key the history wrote.

import type { CheckResult, FinalState, HistoryOp } from './history.ts';
import { acknowledgedWrite, describeOp, possibleWrite, validateHistory, type Write } from './ops.ts';

export function checkDurability(history: HistoryOp[], finals: FinalState[]): CheckResult {
  validateHistory(history);
  if (finals.length === 0) throw new Error('checkDurability: no final state given (read at least one member at the end of the run)');
  const latest = new Map<string, Write & { revision: number }>();
  let checked = 0;
  for (const op of history) {
    const write = acknowledgedWrite(op);
    if (write === null) continue;
    checked++;
    const before = latest.get(write.key);
    if (before === undefined || before.revision < write.revision) latest.set(write.key, write);
  }
  const diverged = firstDivergence(finals);
  if (diverged !== null) return { ok: false, checked, anomaly: 'diverged-member', witness: diverged };

  const final = finals[0];
  const newest = history.filter((op) => op.output !== null).reduce<HistoryOp | null>((a, op) => (a === null || a.output!.revision < op.output!.revision ? op : a), null);
  if (newest !== null && newest.output!.revision > final.revision) {
    return { ok: false, checked, anomaly: 'lost-write', witness: { member: final.member, explanation: `the final revision ${final.revision} is below revision ${newest.output!.revision} that a response reported`, op: describeOp(newest) } };
  }
  const unknown = history.map(possibleWrite).filter((w): w is Write => w !== null);
  const keys = new Set([...latest.keys(), ...Object.keys(final.kvs)]);
  for (const key of [...keys].sort()) {
    const write = latest.get(key);
    const expected = write === undefined ? null : write.value;
    const actual = final.kvs[key] ?? null;
    if (actual === expected) continue;
    const lastRevision = write?.revision ?? 0;
    const later = unknown.filter((w) => w.key === key && w.value === actual);
    if (later.length > 0 && final.revision > lastRevision) continue;
    return {
      ok: false,
      checked,
      anomaly: write === undefined ? 'unexplained-final-value' : 'lost-write',
      witness: {
        key,
        member: final.member,
        finalRevision: final.revision,
        explanation: write === undefined
          ? `the final state has ${JSON.stringify(key)} = ${JSON.stringify(actual)} but nothing wrote that`
          : `the last acknowledged write to ${JSON.stringify(key)} left ${JSON.stringify(expected)}, but the final state has ${JSON.stringify(actual)} and no write with unknown outcome could have come after it`,
        lastAcknowledgedWrite: write === undefined ? null : describeOp(write.op),
        unknownOutcomeWritesOfThatValue: later.map((w) => describeOp(w.op)),
      },
    };
  }
  return { ok: true, checked };
}

function firstDivergence(finals: FinalState[]): unknown {
  const [first, ...rest] = finals;
  for (const other of rest) {
    const keys = [...new Set([...Object.keys(first.kvs), ...Object.keys(other.kvs)])].sort();
    const differing = keys.filter((k) => first.kvs[k] !== other.kvs[k]);
    if (differing.length === 0 && first.revision === other.revision) continue;
    return {
      member: other.member,
      comparedWith: first.member,
      explanation: `member ${other.member} ends at revision ${other.revision} with ${differing.length} key(s) differing from member ${first.member} at revision ${first.revision}`,
      differingKeys: differing.slice(0, 10).map((k) => ({ key: k, [first.member]: first.kvs[k] ?? null, [other.member]: other.kvs[k] ?? null })),
    };
  }
  return null;
}
