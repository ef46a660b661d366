import { describe, expect, it } from 'vitest';
import { del, deleted, get, lost, op, put, read, wrote } from './build.ts';
import { checkWatches } from './index.ts';
import type { CheckResult, WatchEvent, WatchRecord } from './history.ts';

const putEvent = (key: string, value: string, modRevision: number): WatchEvent => ({ type: 'put', key, value, modRevision });
const delEvent = (key: string, modRevision: number): WatchEvent => ({ type: 'delete', key, value: null, modRevision });

function watcher(responses: WatchEvent[][], startRevision = 1, prefix = 'k/'): WatchRecord {
  return { client: 9, prefix, startRevision, responses: responses.map((events) => ({ events })) };
}

function anomaly(result: CheckResult): string | null {
  return result.ok === false ? result.anomaly : null;
}

// Revisions 2..5: put k/a=1, put k/b=1, put x/c=1 (outside the prefix), delete k/a.
const history = [
  op(1, 0, 10, put('k/a', '1'), wrote(2)),
  op(1, 11, 20, put('k/b', '1'), wrote(3)),
  op(2, 21, 30, put('x/c', '1'), wrote(4)),
  op(2, 31, 40, del('k/a'), deleted(1, 5)),
];
const all = [putEvent('k/a', '1', 2), putEvent('k/b', '1', 3), delEvent('k/a', 5)];

describe('checkWatches accepts what a correct watch delivers', () => {
  it('every event in order, in one response or resumed across reconnects', () => {
    expect(checkWatches(history, [watcher([all])])).toEqual({ ok: true, checked: 3 });
    expect(checkWatches(history, [watcher([[all[0]], [all[1], all[2]]])]).ok).toBe(true);
  });

  it('a watch from a later start revision, and one that has not caught up yet', () => {
    expect(checkWatches(history, [watcher([[all[1], all[2]]], 3)]).ok).toBe(true);
    expect(checkWatches(history, [watcher([[all[0]]])]).ok).toBe(true);
  });

  it('an event from a write with unknown outcome: it happened', () => {
    const withLost = [...history, lost(3, 50, put('k/z', 'q'))];
    expect(checkWatches(withLost, [watcher([[...all, putEvent('k/z', 'q', 6)]])]).ok).toBe(true);
  });
});

describe('checkWatches catches watch anomalies', () => {
  it('gap: an acknowledged write under the prefix is skipped', () => {
    const result = checkWatches(history, [watcher([[all[0], all[2]]])]);
    expect(anomaly(result)).toBe('watch-gap');
    expect(JSON.stringify(result)).toContain('put(\\"k/b\\", \\"1\\") -> ok @rev 3');
  });

  it('gap on resume: the reconnect skips a revision', () => {
    expect(anomaly(checkWatches(history, [watcher([[all[0]], [all[2]]])]))).toBe('watch-gap');
  });

  it('duplicate: a reconnect that resumes from the last revision again', () => {
    expect(anomaly(checkWatches(history, [watcher([[all[0], all[1]], [all[1], all[2]]])]))).toBe('watch-duplicate');
  });

  it('reorder', () => {
    expect(anomaly(checkWatches(history, [watcher([[all[1], all[0], all[2]]])]))).toBe('watch-reorder');
  });

  it('split revision: one revision delivered in two responses', () => {
    expect(anomaly(checkWatches(history, [watcher([[all[0], all[1]], [putEvent('k/q', '1', 3), all[2]]])]))).toBe('watch-split-revision');
  });

  it('wrong value, wrong type, wrong key', () => {
    expect(anomaly(checkWatches(history, [watcher([[putEvent('k/a', '2', 2)]])]))).toBe('watch-wrong-event');
    expect(anomaly(checkWatches(history, [watcher([[delEvent('k/a', 2)]])]))).toBe('watch-wrong-event');
    expect(anomaly(checkWatches(history, [watcher([[putEvent('k/b', '1', 2)]])]))).toBe('watch-wrong-event');
  });

  it('phantom: an event no write could have made', () => {
    expect(anomaly(checkWatches(history, [watcher([[...all, putEvent('k/z', 'q', 6)]])]))).toBe('watch-phantom-event');
    // One unknown-outcome write cannot explain two revisions.
    const withLost = [...history, lost(3, 50, put('k/z', 'q'))];
    expect(anomaly(checkWatches(withLost, [watcher([[...all, putEvent('k/z', 'q', 6), putEvent('k/z', 'q', 7)]])]))).toBe('watch-phantom-event');
    // Nor a revision at or below one a response reported before it was called.
    const lateLost = [...history, op(4, 41, 45, get('k/b'), read('1', 7)), lost(3, 50, put('k/z', 'q'))];
    expect(anomaly(checkWatches(lateLost, [watcher([[putEvent('k/z', 'q', 6)]], 6)]))).toBe('watch-phantom-event');
    expect(checkWatches(lateLost, [watcher([[putEvent('k/z', 'q', 8)]], 6)]).ok).toBe(true);
  });

  it('outside the prefix or before the start revision', () => {
    expect(anomaly(checkWatches(history, [watcher([[putEvent('x/c', '1', 4)]])]))).toBe('watch-outside-prefix');
    expect(anomaly(checkWatches(history, [watcher([[all[0]]], 3)]))).toBe('watch-before-start');
  });

  it('two watchers that disagree about an unknown-outcome revision', () => {
    const withLost = [...history, lost(3, 50, put('k/z', 'q')), lost(3, 50, put('k/y', 'q'))];
    const a = watcher([[...all, putEvent('k/z', 'q', 6)]]);
    const b = watcher([[...all, putEvent('k/y', 'q', 6)]]);
    expect(anomaly(checkWatches(withLost, [a, b]))).toBe('watch-wrong-event');
  });

  it('a watcher cancelled by compaction is excused the revisions below it', () => {
    const compacted = { ...watcher([[all[0]], [all[2]]]), compactedAt: 4 };
    expect(checkWatches(history, [compacted]).ok).toBe(true);
  });
});
