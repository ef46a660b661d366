import { describe, expect, it } from 'vitest';
import { Inflights, Progress, ProgressState } from '../../../src/raft/progress.ts';

describe('Inflights', () => {
  it('is full at messagesMax and frees every message at or below an index', () => {
    const inf = new Inflights(10, 0);
    for (let i = 0; i < 10; i++) {
      expect(inf.full()).toBe(false);
      inf.add(i, 100);
    }
    expect(inf.count).toBe(10);
    expect(inf.bytes).toBe(1000);
    expect(inf.full()).toBe(true);
    expect(() => inf.add(10, 100)).toThrow(/add while full/);

    inf.freeLE(4);
    expect(inf.count).toBe(5);
    expect(inf.bytes).toBe(500);
    expect(inf.full()).toBe(false);

    inf.freeLE(4); // idempotent
    expect(inf.count).toBe(5);
    inf.freeLE(2); // below the window: nothing to free
    expect(inf.count).toBe(5);

    inf.freeLE(8);
    expect(inf.count).toBe(1);
    expect(inf.bytes).toBe(100);
    inf.freeLE(100);
    expect(inf.count).toBe(0);
    expect(inf.bytes).toBe(0);
  });

  it('is full by bytes once the total reaches bytesMax', () => {
    const inf = new Inflights(10, 1000);
    inf.add(1, 400);
    inf.add(2, 400);
    expect(inf.full()).toBe(false);
    inf.add(3, 200);
    expect(inf.bytes).toBe(1000);
    expect(inf.full()).toBe(true);
    inf.freeLE(1);
    expect(inf.bytes).toBe(600);
    expect(inf.full()).toBe(false);
  });

  it('accepts one message larger than bytesMax when empty, then is full', () => {
    const inf = new Inflights(10, 1000);
    inf.add(1, 5000);
    expect(inf.full()).toBe(true);
    inf.freeLE(1);
    expect(inf.full()).toBe(false);
  });

  it('refuses non-increasing indexes', () => {
    const inf = new Inflights(10, 0);
    inf.add(5, 1);
    expect(() => inf.add(5, 1)).toThrow(/not increasing/);
    expect(() => inf.add(4, 1)).toThrow(/not increasing/);
    inf.freeLE(5);
    inf.add(3, 1); // an empty window accepts any index (after a reset to probe, say)
    expect(inf.count).toBe(1);
  });

  it('reset empties the window', () => {
    const inf = new Inflights(3, 100);
    inf.add(1, 60);
    inf.add(2, 60);
    expect(inf.full()).toBe(true);
    inf.reset();
    expect(inf.count).toBe(0);
    expect(inf.bytes).toBe(0);
    expect(inf.full()).toBe(false);
  });

  it('keeps its storage bounded over many adds and frees', () => {
    const inf = new Inflights(8, 0);
    let next = 1;
    for (let i = 0; i < 5000; i++) {
      while (!inf.full()) inf.add(next++, 10);
      inf.freeLE(next - 5);
      expect(inf.count).toBe(4);
      expect(inf.bytes).toBe(40);
    }
    // The storage behind the window is compacted instead of growing with every add.
    const storage = (inf as unknown as { indexes: number[] }).indexes;
    expect(storage.length).toBeLessThan(200);
    inf.freeLE(next);
    expect(inf.count).toBe(0);
    expect(inf.bytes).toBe(0);
  });

  it('rejects a zero-sized window', () => {
    expect(() => new Inflights(0, 0)).toThrow(/messagesMax/);
  });
});

function progress(state: ProgressState, match: number, next: number, opts: { pendingSnapshot?: number; probeSent?: boolean } = {}) {
  const p = new Progress(next, 256, 0, false);
  if (state === ProgressState.Replicate) p.becomeReplicate();
  if (state === ProgressState.Snapshot) p.becomeSnapshot(opts.pendingSnapshot ?? 0);
  p.match = match;
  p.next = next;
  if (opts.probeSent !== undefined) p.probeSent = opts.probeSent;
  return p;
}

describe('Progress state transitions', () => {
  it('starts in probe', () => {
    const p = new Progress(5, 256, 0, false);
    expect(p.state).toBe(ProgressState.Probe);
    expect(p.next).toBe(5);
    expect(p.match).toBe(0);
  });

  it('replicate → probe resets next to match + 1', () => {
    const p = progress(ProgressState.Replicate, 1, 5);
    p.becomeProbe();
    expect(p.state).toBe(ProgressState.Probe);
    expect(p.next).toBe(2);
    expect(p.match).toBe(1);
  });

  it('snapshot → probe resumes after the pending snapshot', () => {
    const p = progress(ProgressState.Snapshot, 1, 5, { pendingSnapshot: 10 });
    p.becomeProbe();
    expect(p.state).toBe(ProgressState.Probe);
    expect(p.next).toBe(11);
    expect(p.pendingSnapshot).toBe(0);
  });

  it('snapshot → probe after a failed snapshot (pending 0) resumes at match + 1', () => {
    const p = progress(ProgressState.Snapshot, 1, 5, { pendingSnapshot: 0 });
    p.becomeProbe();
    expect(p.next).toBe(2);
  });

  it('probe → replicate sets next to match + 1 and clears the window', () => {
    const p = progress(ProgressState.Probe, 1, 5, { probeSent: true });
    p.becomeReplicate();
    expect(p.state).toBe(ProgressState.Replicate);
    expect(p.next).toBe(2);
    expect(p.probeSent).toBe(false);
    expect(p.inflights.count).toBe(0);
  });

  it('replicate → snapshot records the snapshot index and drops the window', () => {
    const p = progress(ProgressState.Replicate, 1, 2);
    p.sentEntries(4, 10);
    expect(p.inflights.count).toBe(1);
    p.becomeSnapshot(10);
    expect(p.state).toBe(ProgressState.Snapshot);
    expect(p.pendingSnapshot).toBe(10);
    expect(p.inflights.count).toBe(0);
    expect(p.match).toBe(1);
  });

  it('cycles probe → replicate → snapshot → probe', () => {
    const p = new Progress(1, 256, 0, false);
    expect(p.maybeUpdate(3)).toBe(true);
    p.becomeReplicate();
    expect(p.next).toBe(4);
    p.becomeSnapshot(20);
    p.becomeProbe();
    expect(p.state).toBe(ProgressState.Probe);
    expect(p.next).toBe(21);
    expect(p.match).toBe(3);
  });
});

describe('Progress.sentEntries', () => {
  it('in replicate advances next optimistically and fills the window', () => {
    const p = new Progress(1, 2, 0, false);
    p.becomeReplicate();
    p.sentEntries(3, 30);
    expect(p.next).toBe(4);
    p.sentEntries(5, 20);
    expect(p.next).toBe(6);
    expect(p.inflights.count).toBe(2);
    expect(p.isPaused()).toBe(true);
  });

  it('in replicate ignores an empty append (nothing new sent)', () => {
    const p = progress(ProgressState.Replicate, 3, 4);
    p.sentEntries(3, 0);
    expect(p.next).toBe(4);
    expect(p.inflights.count).toBe(0);
  });

  it('in probe pauses until an answer', () => {
    const p = progress(ProgressState.Probe, 0, 5);
    p.sentEntries(7, 10);
    expect(p.probeSent).toBe(true);
    expect(p.next).toBe(5);
    expect(p.isPaused()).toBe(true);
  });
});

describe('Progress.maybeUpdate', () => {
  // etcd-io/raft TestProgressUpdate: match 3, next 5.
  const cases: [number, number, number, boolean][] = [
    [2, 3, 5, false], // stale
    [3, 3, 5, false], // same as match
    [4, 4, 5, true],
    [5, 5, 6, true],
  ];
  it.each(cases)('update(%i) → match %i next %i updated %s', (n, wantMatch, wantNext, wantOk) => {
    const p = progress(ProgressState.Probe, 3, 5, { probeSent: true });
    expect(p.maybeUpdate(n)).toBe(wantOk);
    expect(p.match).toBe(wantMatch);
    expect(p.next).toBe(wantNext);
    // A real update resumes a paused probe; a stale one does not.
    expect(p.probeSent).toBe(!wantOk);
  });
});

describe('Progress.maybeDecrTo', () => {
  // etcd-io/raft TestProgressMaybeDecr: [state, match, next, rejected, matchHint, ok, wantNext].
  const cases: [ProgressState, number, number, number, number, boolean, number][] = [
    // replicate: rejected <= match is stale
    [ProgressState.Replicate, 5, 10, 5, 5, false, 10],
    [ProgressState.Replicate, 5, 10, 4, 4, false, 10],
    // replicate: rejected > match drops straight to match + 1
    [ProgressState.Replicate, 5, 10, 9, 9, true, 6],
    // probe: only a rejection of next - 1 counts
    [ProgressState.Probe, 0, 0, 0, 0, false, 0],
    [ProgressState.Probe, 0, 10, 5, 5, false, 10],
    // probe: decrement by one
    [ProgressState.Probe, 0, 10, 9, 9, true, 9],
    [ProgressState.Probe, 0, 2, 1, 1, true, 1],
    // probe: never below 1
    [ProgressState.Probe, 0, 1, 0, 0, true, 1],
    // probe: jump to the follower's hint
    [ProgressState.Probe, 0, 10, 9, 2, true, 3],
    [ProgressState.Probe, 0, 10, 9, 0, true, 1],
    // probe: never below match + 1
    [ProgressState.Probe, 4, 10, 9, 1, true, 5],
  ];
  it.each(cases)('%s match %i next %i rejected %i hint %i → %s next %i', (state, match, next, rejected, hint, wantOk, wantNext) => {
    const p = progress(state, match, next);
    expect(p.maybeDecrTo(rejected, hint)).toBe(wantOk);
    expect(p.next).toBe(wantNext);
    expect(p.match).toBe(match);
    expect(p.state).toBe(state);
  });

  it('a valid rejection resumes a paused probe; a stale one does not', () => {
    const p = progress(ProgressState.Probe, 0, 5, { probeSent: true });
    expect(p.maybeDecrTo(2, 2)).toBe(false);
    expect(p.isPaused()).toBe(true);
    expect(p.maybeDecrTo(4, 4)).toBe(true);
    expect(p.isPaused()).toBe(false);
  });

  it('in snapshot state a rejection not for next - 1 is stale', () => {
    const p = progress(ProgressState.Snapshot, 3, 6, { pendingSnapshot: 10 });
    expect(p.maybeDecrTo(9, 9)).toBe(false);
    expect(p.next).toBe(6);
  });
});

describe('Progress.isPaused', () => {
  it('probe: paused only while a probe is outstanding', () => {
    expect(progress(ProgressState.Probe, 0, 1, { probeSent: false }).isPaused()).toBe(false);
    expect(progress(ProgressState.Probe, 0, 1, { probeSent: true }).isPaused()).toBe(true);
  });

  it('replicate: paused only while the inflight window is full', () => {
    const p = new Progress(1, 2, 0, false);
    p.becomeReplicate();
    expect(p.isPaused()).toBe(false);
    p.sentEntries(1, 1);
    expect(p.isPaused()).toBe(false);
    p.sentEntries(2, 1);
    expect(p.isPaused()).toBe(true);
    p.maybeUpdate(1);
    p.inflights.freeLE(1);
    expect(p.isPaused()).toBe(false);
  });

  it('replicate: paused by the byte budget', () => {
    const p = new Progress(1, 100, 50, false);
    p.becomeReplicate();
    p.sentEntries(1, 60);
    expect(p.isPaused()).toBe(true);
  });

  it('snapshot: always paused', () => {
    expect(progress(ProgressState.Snapshot, 0, 1, { probeSent: false }).isPaused()).toBe(true);
    expect(progress(ProgressState.Snapshot, 0, 1, { probeSent: true }).isPaused()).toBe(true);
  });
});
