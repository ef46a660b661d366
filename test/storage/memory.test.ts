import { describe, expect, it } from 'vitest';
import { MemoryStorage, pendingBatchesMax } from '../../adapters/storage/memory.ts';
import { batch, entries, hs, snapshot, storageCompliance } from './compliance.ts';

storageCompliance('memory', async () => {
  let previous: MemoryStorage | null = null;
  return {
    async open() {
      // A restart keeps only what was synced, like a crash.
      previous = new MemoryStorage(previous?.copyState('synced'));
      return previous;
    },
    async cleanup() {
      previous = null;
    },
  };
});

describe('MemoryStorage', () => {
  it('copyState("synced") leaves out saves made with sync=false until the next sync', async () => {
    const s = new MemoryStorage();
    await s.save(batch({ hardState: hs(1, 1, 0), entries: entries(1, 2, 1) }), true);
    await s.save(batch({ hardState: hs(1, 1, 2), entries: entries(3, 4, 1) }), false);
    expect(s.copyState('synced').entries.map((e) => e.index)).toEqual([1, 2]);
    expect(s.copyState('synced').hardState).toEqual(hs(1, 1, 0));
    expect(s.copyState('written').entries.map((e) => e.index)).toEqual([1, 2, 3, 4]);
    expect((await s.load()).entries.map((e) => e.index)).toEqual([1, 2, 3, 4]);
    await s.save(batch({ entries: entries(5, 5, 1) }), true);
    expect(s.copyState('synced').entries.map((e) => e.index)).toEqual([1, 2, 3, 4, 5]);
    expect(s.copyState('synced').hardState).toEqual(hs(1, 1, 2));
  });

  it('copyState returns a deep copy that later saves and mutations do not reach', async () => {
    const s = new MemoryStorage();
    await s.save(batch({ entries: entries(1, 2, 1), snapshot: null }), true);
    const copy = s.copyState();
    copy.entries[0].data[0] = 0xff;
    copy.entries.pop();
    await s.saveSnapshot(snapshot(1, 1));
    expect(copy.snapshot).toBeNull();
    const again = s.copyState();
    expect(again.entries.map((e) => e.index)).toEqual([2]);
    expect(again.snapshot?.metadata.index).toBe(1);
  });

  it('a snapshot syncs the unsynced saves before it', async () => {
    const s = new MemoryStorage();
    await s.save(batch({ entries: entries(1, 3, 1) }), false);
    await s.saveSnapshot(snapshot(2, 1));
    expect(s.copyState('synced').entries.map((e) => e.index)).toEqual([3]);
  });

  it('writes back unsynced saves beyond pendingBatchesMax', async () => {
    const s = new MemoryStorage();
    for (let i = 1; i <= pendingBatchesMax + 1; i++) await s.save(batch({ entries: entries(i, i, 1) }), false);
    expect(s.copyState('synced').entries.length).toBeGreaterThanOrEqual(pendingBatchesMax);
  });

  it('refuses use after close', async () => {
    const s = new MemoryStorage();
    await s.close();
    await expect(s.load()).rejects.toThrow(/after close/);
    expect(s.copyState().entries).toEqual([]);
  });

  it('rejects an initial state whose entries do not follow the snapshot', () => {
    expect(() => new MemoryStorage({ hardState: hs(1, 0, 0), snapshot: snapshot(5, 1), entries: entries(7, 8, 1) })).toThrow(
      /entry 0 has index 7, expected 6/,
    );
  });
});
