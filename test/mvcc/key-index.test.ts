import { describe, expect, it } from 'vitest';
import { KeyIndex, type Record } from '../../src/mvcc/key-index.ts';
import { KvStore } from '../../src/mvcc/kv-store.ts';
import { revisionKey } from '../../src/backend/layout.ts';

const put = (main: number, version: number, create: number): Record => ({
  key: 'k',
  main,
  sub: 0,
  createRevision: create,
  version,
  lease: 0n,
});
const tomb = (main: number): Record => ({ key: 'k', main, sub: 0, createRevision: 0, version: 0, lease: 0n });

function history(): KeyIndex {
  // Generation 1: puts at 2, 4, deleted at 6. Generation 2: puts at 8, 10 (open).
  const ki = new KeyIndex();
  ki.put(put(2, 1, 2));
  ki.put(put(4, 2, 2));
  ki.tombstone(tomb(6));
  ki.put(put(8, 1, 8));
  ki.put(put(10, 2, 8));
  return ki;
}

describe('KeyIndex', () => {
  it('get finds the record visible at a revision across generations', () => {
    const ki = history();
    expect(ki.get(1)).toBeUndefined();
    expect(ki.get(3)?.main).toBe(2);
    expect(ki.get(5)?.main).toBe(4);
    expect(ki.get(6)).toBeUndefined();
    expect(ki.get(7)).toBeUndefined();
    expect(ki.get(9)?.main).toBe(8);
    expect(ki.get(100)?.main).toBe(10);
    expect(ki.generations.length).toBe(2);
  });

  it('refuses out-of-order writes and deleting a deleted key', () => {
    const ki = history();
    expect(() => ki.put(put(9, 3, 8))).toThrow(/not after/);
    ki.tombstone(tomb(12));
    expect(() => ki.tombstone(tomb(13))).toThrow(/not live/);
  });

  it('compaction keeps the newest record at or below the revision', () => {
    const dropped: number[] = [];
    const ki = history();
    ki.compact(5, (r) => dropped.push(r.main));
    expect(dropped).toEqual([2]);
    expect(ki.get(5)?.main).toBe(4);
    expect(ki.generations.map((g) => g.map((r) => r.main))).toEqual([[4, 6], [8, 10]]);
  });

  it('compaction past a tombstone drops its generation', () => {
    const dropped: number[] = [];
    const ki = history();
    ki.compact(7, (r) => dropped.push(r.main));
    expect(dropped).toEqual([2, 4, 6]);
    expect(ki.generations.map((g) => g.map((r) => r.main))).toEqual([[8, 10]]);
    ki.compact(10, (r) => dropped.push(r.main));
    expect(dropped).toEqual([2, 4, 6, 8]);
    expect(ki.generations.map((g) => g.map((r) => r.main))).toEqual([[10]]);
  });

  it('a key deleted at or below the compaction becomes empty', () => {
    const ki = new KeyIndex();
    ki.put(put(2, 1, 2));
    ki.tombstone(tomb(3));
    const dropped: number[] = [];
    ki.compact(3, (r) => dropped.push(r.main));
    expect(ki.isEmpty()).toBe(true);
    expect(dropped).toEqual([2, 3]);
  });
});

describe('KvStore.checkValid', () => {
  it('passes on a consistent store and reports a corrupted one', async () => {
    const store = new KvStore();
    const txn = store.write();
    txn.put('a', new Uint8Array([120]), 0n);
    txn.put('b', new Uint8Array([121]), 0n);
    txn.end();
    store.commit(1);
    await store.backend.durable();
    store.checkValid();
    // Corrupt it: delete a record from the backend behind the index's back.
    await store.backend.commit({ clear: false, ops: [{ bucket: 'key', key: revisionKey(2, 1), value: null }], appliedIndex: 1 });
    expect(() => store.checkValid()).toThrow(/checkValid: 2 records indexed, 1 stored/);
  });
});
