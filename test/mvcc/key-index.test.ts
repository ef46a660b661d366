import { describe, expect, it } from 'vitest';
import { KeyIndex, RecordSlab, type Record } from '../../src/mvcc/key-index.ts';
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

describe('KvStore index entries', () => {
  // A key written once is held as its bare record; these reads cross every promotion (second
  // write) and demotion (compaction down to one record), on the live store and after reopening.
  it('reads every revision across promotion, deletion and compaction, and after reopening', async () => {
    const store = new KvStore();
    const bytes = (s: string) => new TextEncoder().encode(s);
    const write = (fn: (txn: ReturnType<KvStore['write']>) => void, index: number) => {
      const txn = store.write();
      fn(txn);
      txn.end();
      store.commit(index);
    };
    write((t) => t.put('k', bytes('v1'), 0n), 1); // rev 2, bare
    write((t) => t.put('other', bytes('o'), 0n), 2); // rev 3, stays bare
    write((t) => t.put('k', bytes('v2'), 0n), 3); // rev 4, promoted
    write((t) => t.deleteRange('k', null), 4); // rev 5
    write((t) => t.put('k', bytes('v3'), 0n), 5); // rev 6
    await store.backend.durable();
    const at = (s: KvStore, rev: number) =>
      s.rangeRecords('k', null, rev, Infinity).records.map((r) => `${r.main}:v${r.version}:${s.value(r)}`);
    const expected = { 1: [], 2: ['2:v1:v1'], 3: ['2:v1:v1'], 4: ['4:v2:v2'], 5: [], 6: ['6:v1:v3'] };
    for (const [rev, want] of Object.entries(expected)) expect(at(store, +rev)).toEqual(want);
    store.checkValid();
    const reopened = KvStore.open(null, store.backend);
    reopened.checkValid();
    for (const [rev, want] of Object.entries(expected)) expect(at(reopened, +rev)).toEqual(want);

    store.compact(6);
    await store.backend.durable();
    // checkValid fails on a one-record KeyIndex: compaction must have demoted 'k' to its record.
    store.checkValid();
    expect(at(store, 6)).toEqual(['6:v1:v3']);
    expect(store.rangeRecords('', '', 6, Infinity).records.map((r) => r.key)).toEqual(['k', 'other']);
    expect(() => store.resolveReadRevision(5, store.currentRevision)).toThrow(/required revision has been compacted/);
  });
});

describe('RecordSlab', () => {
  it('gives back every field of a record, revisions past 2^32 and 64-bit leases included', () => {
    const slab = new RecordSlab();
    const big: Record = { key: 'a', main: 2 ** 40 + 3, sub: 127, createRevision: 2 ** 40, version: 2 ** 33, lease: 0x7fff_ffff_ffff_fff0n };
    const slot = slab.add(big);
    expect(slab.read(slot, 'a')).toEqual(big);
    expect(slab.main(slot)).toBe(2 ** 40 + 3);
    expect(() => slab.add(tomb(5))).toThrow(/tombstone 5.0/);
  });

  it('reuses freed slots and keeps the others intact across chunks', () => {
    const slab = new RecordSlab();
    const n = 10_000; // more than two chunks of 4096
    const slots = Array.from({ length: n }, (_, i) => slab.add({ ...put(i + 1, 1, i + 1), sub: i % 7, lease: BigInt(i) }));
    expect(new Set(slots).size).toBe(n);
    for (let i = 0; i < n; i += 2) slab.free(slots[i]);
    const again = Array.from({ length: n / 2 }, (_, i) => slab.add(put(n + i + 1, 2, 1)));
    // Every new record took a freed slot: the slab did not grow.
    expect(new Set(again)).toEqual(new Set(slots.filter((_, i) => i % 2 === 0)));
    for (let i = 1; i < n; i += 2) expect(slab.read(slots[i], 'k')).toEqual({ ...put(i + 1, 1, i + 1), sub: i % 7, lease: BigInt(i) });
  });
});
