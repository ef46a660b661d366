import { describe, expect, it } from 'vitest';
import { bigHistory } from './big-history.ts';
import { get, lost, op, put, read, wrote } from './build.ts';
import { checkKeyValues, checkLinearizable } from './index.ts';
import type { CheckResult, HistoryOp } from './history.ts';

function anomaly(result: CheckResult): string | null {
  return result.ok === false ? result.anomaly : null;
}

describe('the revision-order search (checkLinearizable, after the revision checks)', () => {
  it('answers at once what the wall-clock search gives up on: unknown writes each seen once, then a read no order explains', () => {
    // 40 concurrent puts with unknown outcome, 40 concurrent reads each seeing one of them at
    // its own revision, then a read of "absent" that nothing can explain (nothing deletes).
    const puts = Array.from({ length: 40 }, (_, i) => lost(i, 0, put('a', `v${i}`)));
    const reads = Array.from({ length: 40 }, (_, i) => op(100 + i, 10, 20, get('a'), read(`v${i}`, 2 + i)));
    const history = [...puts, ...reads, op(200, 30, 40, get('a'), read(null, 42))];
    expect(checkKeyValues(history, { stepLimit: 200_000 }).ok).toBe('unknown');
    const started = performance.now();
    const result = checkLinearizable(history, { stepLimit: 2_500_000 });
    expect(anomaly(result)).toBe('non-linearizable-at-revisions');
    expect(JSON.stringify(result)).toContain('get(\\"a\\") -> nil @rev 42');
    expect(performance.now() - started).toBeLessThan(10_000);
    // Without the impossible read, the same shape is linearizable and found so at once.
    expect(checkLinearizable(history.slice(0, -1), { stepLimit: 100_000 }).ok).toBe(true);
  });

  it('a read that shows a write called after a later revision was acknowledged: linearizable by wall clock, not at the revisions', () => {
    const history = [
      op(1, 0, 100, get('a'), read('x', 5)),
      op(2, 30, 40, put('b', 'y'), wrote(6)),
      lost(3, 50, put('a', 'x')), // had it taken effect, it would have a revision above 6
    ];
    expect(checkKeyValues(history).ok).toBe(true);
    const result = checkLinearizable(history);
    expect(anomaly(result)).toBe('non-linearizable-at-revisions');
    expect((result as { witness: { key: string } }).witness.key).toBe('a');
  });

  it('an unknown write called before that revision may explain the read', () => {
    const history = [op(1, 0, 100, get('a'), read('x', 5)), lost(3, 20, put('a', 'x')), op(2, 30, 40, put('b', 'y'), wrote(6))];
    expect(checkLinearizable(history).ok).toBe(true);
  });

  it('one unknown write cannot explain two separate appearances of its value', () => {
    const history = [
      lost(1, 0, put('a', 'x')),
      op(2, 10, 20, get('a'), read('x', 3)),
      op(2, 30, 40, put('a', 'y'), wrote(4)),
      op(2, 50, 60, get('a'), read('x', 4)),
    ];
    expect(checkLinearizable(history).ok).toBe(false);
  });

  it('interchangeable unknown deletes: each explains one disappearance, no more', () => {
    const base = [
      lost(1, 0, { f: 'delete', key: 'a' }),
      op(2, 10, 20, put('a', '1'), wrote(2)),
      op(2, 30, 40, get('a'), read(null, 3)),
      op(2, 50, 60, put('a', '2'), wrote(4)),
      op(2, 70, 80, get('a'), read(null, 5)),
    ];
    expect(checkLinearizable(base).ok).toBe(false);
    const twoDeletes = [lost(3, 0, { f: 'delete', key: 'a' }), ...base];
    expect(checkLinearizable(twoDeletes).ok).toBe(true);
  });

  it('a long history with heavy overlap and unknown outcomes is answered, and one inconsistent read in it is found', () => {
    const history = bigHistory({ ops: 30_000, keys: 6, seed: 15, spreadMs: 900, lostShare: 0.03 });
    const started = performance.now();
    expect(checkLinearizable(history, { timeLimitMs: 60_000 })).toEqual({ ok: true, checked: history.length });
    const elapsedMs = performance.now() - started;
    expect(elapsedMs).toBeLessThan(60_000);
    // A read that returned at the same revision as another read of the key, after it, and
    // sees another value: no order that follows the revisions gives both.
    const reads = history.filter((h) => h.output?.f === 'get' && h.ret < h.call + 100);
    const victim = reads[Math.floor(reads.length / 2)] as HistoryOp & { input: { key: string }; output: { value: string | null; revision: number } };
    const writes = history.filter((h) => h.input.f === 'put' && h.output !== null && h.input.key === victim.input.key && h.input.value !== victim.output.value && h.call > victim.ret);
    const other = writes[0].input as { value: string };
    const twin = { id: 1_000_000, client: 99, call: victim.ret + 1, ret: victim.ret + 2, input: victim.input, output: { ...victim.output, value: other.value } };
    const result = checkLinearizable([...history, twin], { timeLimitMs: 60_000 });
    expect(result.ok).toBe(false);
  }, 180_000);
});
