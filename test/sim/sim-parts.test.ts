// The simulator's building blocks behave as the documentation says: if these were wrong, the
// checkers would be checking a different system than the one described.

import { describe, expect, it } from 'vitest';
import { Prng } from './prng.ts';
import { EventQueue } from './event-queue.ts';
import { SimDisk, SimPreparingStorage, SimStorage } from './seams.ts';
import { SimNetwork } from './network.ts';
import { EntryType, MessageType, newMessage } from '../../src/raft/types.ts';
import type { Entry, Message } from '../../src/raft/types.ts';
import type { PersistBatch } from '../../src/seams.ts';
import { storageCompliance } from '../storage/compliance.ts';

const entry = (index: number, term: number, text = `e${index}`): Entry => ({
  index,
  term,
  type: EntryType.Normal,
  data: new TextEncoder().encode(text),
});
describe('Prng', () => {
  it('replays a seed and keeps sub-streams independent of each other', () => {
    const a = Prng.derive(7, 'network');
    const b = Prng.derive(7, 'network');
    const seqA = Array.from({ length: 8 }, () => a.nextU32());
    expect(Array.from({ length: 8 }, () => b.nextU32())).toEqual(seqA);
    // Drawing from another stream does not shift this one.
    const c = Prng.derive(7, 'network');
    const other = Prng.derive(7, 'faults');
    other.nextU32();
    expect(Array.from({ length: 8 }, () => c.nextU32())).toEqual(seqA);
    expect(Prng.derive(8, 'network').nextU32()).not.toBe(seqA[0]);
  });

  it('stays in range', () => {
    const p = new Prng(1);
    for (let i = 0; i < 1000; i++) {
      const x = p.range(3, 5);
      expect(x >= 3 && x <= 5 && Number.isInteger(x)).toBe(true);
      const f = p.next();
      expect(f >= 0 && f < 1).toBe(true);
    }
    expect(() => p.int(0)).toThrow();
  });
});

describe('EventQueue', () => {
  it('orders by time, then by insertion', () => {
    const q = new EventQueue<string>();
    q.push(5, 'c');
    q.push(1, 'a');
    q.push(5, 'd');
    q.push(1, 'b');
    q.push(3, 'x');
    const out: string[] = [];
    for (let e = q.pop(); e; e = q.pop()) out.push(e.payload);
    expect(out).toEqual(['a', 'b', 'x', 'c', 'd']);
  });

  it('pops thousands of interleaved pushes in (time, insertion) order', () => {
    const q = new EventQueue<number>();
    const pushed: { timeMs: number; n: number }[] = [];
    let x = 12345;
    const next = () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0);
    const popped: { timeMs: number; n: number }[] = [];
    for (let n = 0; n < 5000; n++) {
      const timeMs = next() % 200;
      q.push(timeMs, n);
      pushed.push({ timeMs, n });
      // Pop now and then, so the heap is exercised at every size, not only filled then emptied.
      if (next() % 3 === 0) {
        const e = q.pop()!;
        popped.push({ timeMs: e.timeMs, n: e.payload });
      }
    }
    for (let e = q.pop(); e; e = q.pop()) popped.push({ timeMs: e.timeMs, n: e.payload });
    expect(popped).toHaveLength(pushed.length);
    // Every pop returned the smallest (time, insertion) among the items pushed and not yet popped.
    const waiting = new Set<number>();
    let pushedNext = 0;
    let x2 = 12345;
    const next2 = () => (x2 = (Math.imul(x2, 1103515245) + 12345) >>> 0);
    const checkPop = (p: { timeMs: number; n: number }) => {
      let best = -1;
      for (const n of waiting) if (best < 0 || pushed[n].timeMs < pushed[best].timeMs || (pushed[n].timeMs === pushed[best].timeMs && n < best)) best = n;
      expect(p).toEqual(pushed[best]);
      waiting.delete(best);
    };
    let popIndex = 0;
    for (let n = 0; n < 5000; n++) {
      next2();
      waiting.add(pushedNext++);
      if (next2() % 3 === 0) checkPop(popped[popIndex++]);
    }
    while (popIndex < popped.length) checkPop(popped[popIndex++]);
  });
});

storageCompliance('sim disk', async () => {
  // One disk across incarnations; a reopen after close() keeps what was written, as a restart does.
  const disk = new SimDisk();
  return {
    async open() {
      return new SimStorage(disk);
    },
    async cleanup() {},
  };
});

storageCompliance(
  'sim disk, preparing snapshots (a Node member\'s)',
  async () => {
    const disk = new SimDisk();
    return {
      async open() {
        return new SimPreparingStorage(disk);
      },
      async cleanup() {},
    };
  },
  { preparesSnapshots: true },
);

describe('SimDisk and SimStorage', () => {
  const save = (s: SimDisk, parts: Partial<PersistBatch>, sync = true) => s.applyBatch({ hardState: null, entries: [], snapshot: null, ...parts }, sync);

  it('replaces entries at the same or later indexes, and refuses a gap with the adapters\' error', () => {
    const s = new SimDisk();
    save(s, { hardState: { term: 1, vote: 1, commit: 0 }, entries: [entry(1, 1), entry(2, 1), entry(3, 1)] });
    save(s, { entries: [entry(2, 2, 'new')] });
    expect(s.lastIndex()).toBe(2);
    expect(s.term(2)).toBe(2);
    expect(s.entry(3)).toBeNull();
    expect(() => save(s, { entries: [entry(5, 2)] })).toThrow(/would leave a gap after the last stored index 2/);
    expect(s.lastIndex()).toBe(2);
  });

  it('a crash may lose what was saved without a sync, never what was synced', () => {
    const s = new SimDisk();
    save(s, { hardState: { term: 2, vote: 1, commit: 0 }, entries: [entry(1, 2)] });
    save(s, { hardState: { term: 2, vote: 1, commit: 1 } }, false);
    expect(s.crash(false)).toBe(false);
    expect(s.persistedHardState().commit).toBe(1);
    expect(s.crash(true)).toBe(true);
    expect(s.persistedHardState().commit).toBe(0);
    expect(s.entry(1)?.term).toBe(2);
    expect(s.crash(true)).toBe(false);
  });

  it('a write lands only when the simulated disk completes it; one never completed is lost', async () => {
    const disk = new SimDisk();
    let complete: (() => void) | null = null;
    const storage = new SimStorage(disk, { writeLatencyMs: () => 5, after: () => new Promise<void>((resolve) => (complete = resolve)) });
    const saved = storage.save({ hardState: { term: 1, vote: 1, commit: 0 }, entries: [entry(1, 1)], snapshot: null }, true);
    await Promise.resolve();
    expect(disk.lastIndex()).toBe(0);
    complete!();
    await saved;
    expect(disk.lastIndex()).toBe(1);
    // A bad batch is refused at once, before any time passes.
    await expect(storage.save({ hardState: null, entries: [entry(3, 1)], snapshot: null }, true)).rejects.toThrow(/gap/);
    // A crashed process's write never completes: nothing lands.
    void storage.save({ hardState: null, entries: [entry(2, 1)], snapshot: null }, true);
    expect(disk.crash(true)).toBe(false);
    expect(disk.lastIndex()).toBe(1);
  });
});

describe('SimNetwork', () => {
  it('loses what a cut link carried, even in flight, and copies what it delivers', () => {
    const delivered: { atMs: number; message: Message }[] = [];
    const drops: string[] = [];
    const net = new SimNetwork(
      new Prng(3),
      (atMs, _sender, message) => delivered.push({ atMs, message }),
      (kind, _m, reason) => {
        if (kind === 'drop') drops.push(reason);
      },
    );
    const m = newMessage(MessageType.App, 2, 1, 1);
    m.entries = [entry(1, 1)];
    net.send(0, 1, m);
    expect(delivered.length).toBe(1);
    expect(delivered[0].atMs).toBeGreaterThanOrEqual(1);
    expect(delivered[0].message).not.toBe(m);
    expect(delivered[0].message.entries[0].data).not.toBe(m.entries[0].data);

    net.block(1, 2);
    expect(net.admits(1, delivered[0].message)).toBe(false);
    net.send(0, 1, m);
    expect(delivered.length).toBe(1);
    // One direction only: the reverse link still works.
    net.send(0, 2, newMessage(MessageType.AppResp, 1, 2, 1));
    expect(delivered.length).toBe(2);
    expect(drops).toEqual(['link cut in flight', 'link cut']);
    net.healAll();
    expect(net.admits(1, delivered[0].message)).toBe(true);
  });
});
