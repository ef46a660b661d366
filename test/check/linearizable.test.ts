import { describe, expect, it } from 'vitest';
import { cas, del, deleted, get, lost, op, put, range, ranged, read, swapped, wrote } from './build.ts';
import { checkKeyValues, checkLinearizable, checkRevisions } from './index.ts';
import type { CheckResult, HistoryOp } from './history.ts';

function anomaly(result: CheckResult): string | null {
  return result.ok === false ? result.anomaly : null;
}

describe('checkLinearizable accepts legitimate histories', () => {
  it('sequential and overlapping puts, gets, deletes, CAS and ranges', () => {
    const history = [
      op(1, 0, 10, put('k/a', '1'), wrote(2)),
      op(2, 5, 20, get('k/a'), read('1', 2)), // overlaps the put, sees it
      op(3, 5, 8, get('k/a'), read(null, 1)), // overlaps the put, does not see it
      op(1, 21, 30, cas('k/a', '1', '2'), swapped(true, null, 3)),
      op(2, 22, 31, cas('k/a', '1', '3'), swapped(false, '2', 3)),
      op(3, 32, 40, put('k/b', 'x'), wrote(4)),
      op(1, 41, 50, range('k/'), ranged({ 'k/a': '2', 'k/b': 'x' }, 4)),
      op(2, 51, 60, del('k/a'), deleted(1, 5)),
      op(3, 61, 70, del('k/a'), deleted(0, 5)),
      op(1, 71, 80, range('k/'), ranged({ 'k/b': 'x' }, 5)),
    ];
    expect(checkLinearizable(history)).toEqual({ ok: true, checked: history.length });
  });

  it('an unknown-outcome write may take effect (seen later) or never (not seen)', () => {
    const seen = [lost(1, 0, put('a', 'x')), op(2, 5, 10, get('a'), read('x', 2)), op(2, 11, 20, get('a'), read('x', 2))];
    expect(checkLinearizable(seen).ok).toBe(true);
    const never = [lost(1, 0, put('a', 'x')), op(2, 5, 10, get('a'), read(null, 1)), op(2, 100, 120, get('a'), read(null, 1))];
    expect(checkLinearizable(never).ok).toBe(true);
  });

  it('touching intervals (one returns when the other is called) count as concurrent', () => {
    const history = [op(1, 0, 10, put('a', '1'), wrote(2)), op(2, 10, 20, get('a'), read(null, 1))];
    expect(checkLinearizable(history).ok).toBe(true);
    const unknownAtTheReturn = [lost(1, 20, put('a', '1')), op(2, 10, 20, get('a'), read('1', 2))];
    expect(checkLinearizable(unknownAtTheReturn).ok).toBe(true);
  });
});

describe('checkLinearizable catches violations, with a witness naming the key and ops', () => {
  it('stale read: a get after a put returned sees the older value', () => {
    const put1 = op(1, 0, 10, put('a', '1'), wrote(2));
    const put2 = op(1, 20, 30, put('a', '2'), wrote(3));
    const staleGet = op(2, 40, 50, get('a'), read('1', 3));
    const result = checkKeyValues([put1, put2, staleGet]);
    expect(anomaly(result)).toBe('non-linearizable');
    const witness = (result as { witness: { key: string; stuck: string; linearizedPrefixEnd: string[] } }).witness;
    expect(witness.key).toBe('a');
    expect(witness.stuck).toContain(`#${staleGet.id} client 2 [40, 50] get("a") -> "1" @rev 3`);
    expect(witness.linearizedPrefixEnd).toEqual([expect.stringContaining(`#${put1.id}`), expect.stringContaining(`#${put2.id}`)]);
    // The revision check sees it too: revision 3 is the second put.
    expect(anomaly(checkRevisions([put1, put2, staleGet]))).toBe('read-not-at-revision');
    // A stale read with a stale header revision is caught by the real-time revision order.
    expect(anomaly(checkRevisions([put1, put2, op(2, 40, 50, get('a'), read('1', 2))]))).toBe('revision-went-back');
  });

  it('lost write: an acknowledged put is gone for a later read', () => {
    const history = [op(1, 0, 10, put('a', '1'), wrote(2)), op(2, 20, 30, get('a'), read(null, 2))];
    expect(anomaly(checkKeyValues(history))).toBe('non-linearizable');
    // With the revision the read reported, the revision check names the write it missed.
    const result = checkLinearizable(history);
    expect(anomaly(result)).toBe('read-not-at-revision');
    expect(JSON.stringify(result)).toContain(`#${history[0].id} client 1 [0, 10] put(\\"a\\", \\"1\\") -> ok @rev 2`);
  });

  it('read of an unacknowledged write that later vanished', () => {
    const history = [lost(1, 0, put('a', 'x')), op(2, 5, 10, get('a'), read('x', 2)), op(2, 11, 20, get('a'), read(null, 2))];
    // The revision check alone accepts this (the unknown write explains "x"); the search does not.
    expect(checkRevisions(history).ok).toBe(true);
    expect(anomaly(checkLinearizable(history))).toBe('non-linearizable');
  });

  it('lost update: two CAS from the same expected value both succeed', () => {
    const history = [
      op(1, 0, 10, put('a', '0'), wrote(2)),
      op(1, 20, 30, cas('a', '0', '1'), swapped(true, null, 3)),
      op(2, 20, 30, cas('a', '0', '2'), swapped(true, null, 4)),
    ];
    expect(anomaly(checkKeyValues(history))).toBe('non-linearizable');
    expect(anomaly(checkRevisions(history))).toBe('read-not-at-revision');
  });

  it('a failed CAS whose expected value was there, and a delete count that is wrong', () => {
    const failedCas = [op(1, 0, 10, put('a', '0'), wrote(2)), op(2, 20, 30, cas('a', '0', '1'), swapped(false, '0', 2))];
    expect(anomaly(checkKeyValues(failedCas))).toBe('non-linearizable');
    const phantomDelete = [op(1, 0, 10, del('a'), deleted(1, 2))];
    expect(anomaly(checkKeyValues(phantomDelete))).toBe('non-linearizable');
    expect(anomaly(checkRevisions(phantomDelete))).toBe('read-not-at-revision');
  });

  it('range: a key missing from the result reads as absent', () => {
    const history = [op(1, 0, 10, put('k/a', '1'), wrote(2)), op(2, 20, 30, range('k/'), ranged({}, 2))];
    const result = checkKeyValues(history);
    expect(anomaly(result)).toBe('non-linearizable');
    expect((result as { witness: { key: string } }).witness.key).toBe('k/a');
  });

  it('range: a snapshot that is not one revision (torn across keys) is caught by revisions', () => {
    // Each key alone is linearizable (both writes overlap the range), but revision 5 includes b=2 (rev 4).
    const history = [
      op(1, 0, 5, put('k/b', '1'), wrote(2)),
      op(1, 6, 9, put('k/a', '1'), wrote(3)),
      op(1, 10, 100, put('k/b', '2'), wrote(4)),
      op(2, 10, 100, put('k/a', '2'), wrote(5)),
      op(3, 50, 60, range('k/'), ranged({ 'k/a': '2', 'k/b': '1' }, 5)),
    ];
    expect(checkKeyValues(history).ok).toBe(true);
    const result = checkLinearizable(history);
    expect(anomaly(result)).toBe('read-not-at-revision');
    expect((result as { witness: { key: string } }).witness.key).toBe('k/b');
  });

  it('range: a key outside the prefix', () => {
    expect(anomaly(checkLinearizable([op(1, 0, 10, range('k/'), ranged({ 'x/a': '1' }, 1))]))).toBe('range-outside-prefix');
  });

  it('two acknowledged writes with one revision', () => {
    const history = [op(1, 0, 10, put('a', '1'), wrote(2)), op(2, 0, 10, put('b', '1'), wrote(2))];
    expect(anomaly(checkLinearizable(history))).toBe('duplicate-write-revision');
  });
});

describe('the search cap', () => {
  // n concurrent writes of distinct values with unknown outcome, n concurrent reads that saw
  // each of them, then a read of "absent" that no order can give (nothing deletes): the search
  // must visit every interleaving of the writes and reads before it can answer.
  function pathological(n: number): HistoryOp[] {
    const puts = Array.from({ length: n }, (_, i) => lost(i, 0, put('a', `v${i}`)));
    const reads = Array.from({ length: n }, (_, i) => op(100 + i, 10, 20, get('a'), read(`v${i}`, 2 + i)));
    return [...puts, ...reads, op(200, 30, 40, get('a'), read(null, 2 + n))];
  }

  // The wall-clock search alone (checkKeyValues): checkLinearizable places the acknowledged
  // reads by revision, which answers this shape at once (revision-order.test.ts).
  it('returns unknown quickly instead of hanging (step limit and time limit)', () => {
    const started = performance.now();
    const bySteps = checkKeyValues(pathological(40), { stepLimit: 200_000 });
    expect(bySteps.ok).toBe('unknown');
    const byTime = checkKeyValues(pathological(40), { timeLimitMs: 300 });
    expect(byTime.ok).toBe('unknown');
    expect((byTime as { reason: string }).reason).toContain('"a"');
    expect(performance.now() - started).toBeLessThan(3000);
  });

  it('a small instance of the same shape is answered: not linearizable', () => {
    expect(anomaly(checkKeyValues(pathological(4)))).toBe('non-linearizable');
  });

  it('unknown-outcome writes nothing observed are left out: a violation among many of them is found at once', () => {
    const unobserved = Array.from({ length: 40 }, (_, i) => lost(i, 0, put('a', `u${i}`)));
    const history = [...unobserved, op(100, 10, 20, put('a', '1'), wrote(2)), op(100, 30, 40, get('a'), read(null, 2))];
    const result = checkKeyValues(history, { stepLimit: 10_000 });
    expect(anomaly(result)).toBe('non-linearizable');
    // The same writes, observed, are kept: a read of one of them after the put is legitimate.
    const observedLater = [...unobserved, op(100, 10, 20, put('a', '1'), wrote(2)), op(100, 30, 40, get('a'), read('u7', 3))];
    expect(checkKeyValues(observedLater).ok).toBe(true);
  });
});

describe('malformed histories are refused with a clear error', () => {
  it('duplicate ids, unknown outcome with a finite ret, mismatched output kind', () => {
    const a = op(1, 0, 10, put('a', '1'), wrote(2));
    expect(() => checkLinearizable([a, { ...a }])).toThrow(/duplicate op id/);
    expect(() => checkLinearizable([{ ...a, output: null }])).toThrow(/must have ret Infinity/);
    expect(() => checkLinearizable([{ ...a, output: read('1', 2) }])).toThrow(/input is a put but output is a get/);
    expect(() => checkLinearizable([{ ...a, ret: -1 }])).toThrow(/not a finite time at or after call/);
  });
});
