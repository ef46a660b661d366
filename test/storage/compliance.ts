// The one compliance suite every Storage adapter runs in its own runtime (Node for memory and
// fs-wal, Chromium for IndexedDB). Runtime-agnostic: no node:* imports here.

import { describe, expect, it } from 'vitest';
import type { Entry, HardState, Snapshot } from '../../src/raft/types.ts';
import { EntryType, emptyHardState } from '../../src/raft/types.ts';
import type { PersistBatch, PersistedState, SnapshotPreparation, Storage } from '../../src/seams.ts';

/** One storage location that can be opened, closed and opened again (a member restart). */
export interface StorageHarness {
  /** Opens the storage at this location; the previous instance, if any, was closed. */
  open(): Promise<Storage>;
  /** Removes everything the harness created. */
  cleanup(): Promise<void>;
}

export type MakeStorage = () => Promise<StorageHarness>;

export function entry(index: number, term: number, data: Uint8Array | string = `e${index}t${term}`, type = EntryType.Normal): Entry {
  return { index, term, type, data: typeof data === 'string' ? new TextEncoder().encode(data) : data };
}

export function entries(from: number, to: number, term: number): Entry[] {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) out.push(entry(i, term));
  return out;
}

export function snapshot(index: number, term: number, data = `snap@${index}`): Snapshot {
  return {
    metadata: {
      index,
      term,
      confState: { voters: [1, 2, 3], learners: [4], votersOutgoing: [], learnersNext: [], autoLeave: false },
    },
    data: new TextEncoder().encode(data),
  };
}

export function batch(parts: Partial<PersistBatch>): PersistBatch {
  return { hardState: null, entries: [], snapshot: null, ...parts };
}

export function hs(term: number, vote: number, commit: number): HardState {
  return { term, vote, commit };
}

/** Deterministic PRNG (mulberry32) so a failing seed replays exactly. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A naive reference: every rule spelled out on a Map. */
export class StorageModel {
  hardState: HardState = emptyHardState();
  snapshot: Snapshot | null = null;
  log = new Map<number, Entry>();

  get snapshotIndex(): number {
    return this.snapshot?.metadata.index ?? 0;
  }

  get lastIndex(): number {
    let last = this.snapshotIndex;
    while (this.log.has(last + 1)) last++;
    return last;
  }

  save(b: PersistBatch): void {
    if (b.snapshot) {
      const { index, term } = b.snapshot.metadata;
      const matches = this.log.get(index)?.term === term;
      for (const i of [...this.log.keys()]) if (i <= index || !matches) this.log.delete(i);
      this.snapshot = b.snapshot;
    }
    for (const e of b.entries) {
      for (const i of [...this.log.keys()]) if (i >= e.index) this.log.delete(i);
      this.log.set(e.index, e);
    }
    if (b.hardState) this.hardState = b.hardState;
  }

  saveSnapshot(s: Snapshot): void {
    for (const i of [...this.log.keys()]) if (i <= s.metadata.index) this.log.delete(i);
    this.snapshot = s;
  }

  state(): PersistedState {
    const entries = [...this.log.values()].sort((a, b) => a.index - b.index);
    return { hardState: this.hardState, snapshot: this.snapshot, entries };
  }

  /** Values are never mutated after being stored, so sharing them is safe. */
  clone(): StorageModel {
    const c = new StorageModel();
    c.hardState = this.hardState;
    c.snapshot = this.snapshot;
    c.log = new Map(this.log);
    return c;
  }
}

export type RandomOp =
  | { kind: 'save'; batch: PersistBatch; sync: boolean }
  | { kind: 'saveSnapshot'; snapshot: Snapshot }
  | { kind: 'restart' };

/**
 * The next operation of a random workload against `model`: appends, tail overwrites by a new
 * term, hard-state-only batches, snapshots made (saveSnapshot) and received (save), restarts.
 * Applies the operation to `model` (except restart) before returning it.
 */
export function nextRandomOp(model: StorageModel, random: () => number, tag: string): RandomOp {
  const pick = (n: number) => Math.floor(random() * n);
  const term = Math.max(1, model.hardState.term, ...[...model.log.values()].slice(-1).map((e) => e.term));
  const roll = random();
  const last = model.lastIndex;
  const first = model.snapshotIndex + 1;
  if (roll < 0.05 && last > model.snapshotIndex) {
    const snap = snapshot(model.snapshotIndex + 1 + pick(last - model.snapshotIndex), model.log.get(last)!.term, `made-${tag}`);
    model.saveSnapshot(snap);
    return { kind: 'saveSnapshot', snapshot: snap };
  }
  if (roll < 0.08) {
    const index = model.snapshotIndex + 1 + pick(last - model.snapshotIndex + 3);
    const snapTerm = term + pick(2);
    const snap = snapshot(index, snapTerm, `received-${tag}`);
    // A leader sends a snapshot when the follower's log does not hold its last entry; a
    // matching one keeps its tail, so new entries would overlap it: send none then.
    const matches = model.log.get(index)?.term === snapTerm;
    const b = batch({ snapshot: snap, hardState: hs(snapTerm, 0, index), entries: matches ? [] : entries(index + 1, index + pick(3), snapTerm) });
    model.save(b);
    return { kind: 'save', batch: b, sync: true };
  }
  if (roll < 0.18) {
    const b = batch({ hardState: hs(term, pick(4), model.snapshotIndex + pick(2)) });
    model.save(b);
    return { kind: 'save', batch: b, sync: random() < 0.5 };
  }
  if (roll < 0.23) return { kind: 'restart' };
  const overwrite = roll < 0.35 && last >= first;
  const entryTerm = overwrite ? term + 1 : term;
  const from = overwrite ? first + pick(last - first + 1) : last + 1;
  const es = Array.from({ length: 1 + pick(8) }, (_, i) => entry(from + i, entryTerm, Uint8Array.from({ length: pick(40) }, () => pick(256))));
  const b = batch({ entries: es, hardState: random() < 0.5 ? hs(entryTerm, 1, model.snapshotIndex) : null });
  model.save(b);
  return { kind: 'save', batch: b, sync: random() < 0.8 };
}

/** Compares with byte-exact data as plain arrays, so a failure prints readable values. */
export function plainState(s: PersistedState): unknown {
  return {
    hardState: s.hardState,
    snapshot: s.snapshot && { metadata: s.snapshot.metadata, data: [...s.snapshot.data] },
    entries: s.entries.map((e) => ({ index: e.index, term: e.term, type: e.type, data: [...e.data] })),
  };
}

/** Index of the first differing byte, or -1: cheap on large buffers, unlike a deep equal. */
export function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

function expectState(actual: PersistedState, expected: PersistedState): void {
  expect(plainState(actual)).toEqual(plainState(expected));
  for (const e of actual.entries) expect(e.data).toBeInstanceOf(Uint8Array);
}

/** Optional capabilities the adapter declares; the suite checks the declaration against the adapter. */
export interface ComplianceOptions {
  /** Implements SnapshotPreparation (src/seams.ts). */
  preparesSnapshots?: boolean;
}

export function storageCompliance(name: string, makeStorage: MakeStorage, options: ComplianceOptions = {}): void {
  describe(`Storage compliance: ${name}`, () => {
    /** Runs `body` with a fresh harness, always cleaning up. */
    async function withHarness(body: (h: StorageHarness) => Promise<void>): Promise<void> {
      const h = await makeStorage();
      try {
        await body(h);
      } finally {
        await h.cleanup();
      }
    }

    async function reopen(h: StorageHarness, s: Storage): Promise<[Storage, PersistedState]> {
      await s.close();
      const next = await h.open();
      return [next, await next.load()];
    }

    it('loads an empty state from fresh storage', () =>
      withHarness(async (h) => {
        const s = await h.open();
        expectState(await s.load(), { hardState: emptyHardState(), snapshot: null, entries: [] });
        await s.close();
      }));

    it('reloads saved entries and hard state after a restart', () =>
      withHarness(async (h) => {
        let s = await h.open();
        await s.load();
        await s.save(batch({ hardState: hs(1, 2, 0), entries: entries(1, 3, 1) }), true);
        await s.save(batch({ hardState: hs(1, 2, 3), entries: entries(4, 5, 1) }), true);
        let loaded: PersistedState;
        [s, loaded] = await reopen(h, s);
        expectState(loaded, { hardState: hs(1, 2, 3), snapshot: null, entries: entries(1, 5, 1) });
        await s.close();
      }));

    it('replaces a conflicting tail, before and after a restart', () =>
      withHarness(async (h) => {
        let s = await h.open();
        await s.load();
        await s.save(batch({ hardState: hs(1, 1, 2), entries: entries(1, 6, 1) }), true);
        await s.save(batch({ hardState: hs(2, 3, 2), entries: entries(4, 5, 2) }), true);
        let loaded: PersistedState;
        [s, loaded] = await reopen(h, s);
        const expected = [...entries(1, 3, 1), ...entries(4, 5, 2)];
        expectState(loaded, { hardState: hs(2, 3, 2), snapshot: null, entries: expected });
        await s.save(batch({ hardState: hs(3, 4, 3), entries: entries(4, 4, 3) }), true);
        [s, loaded] = await reopen(h, s);
        expectState(loaded, { hardState: hs(3, 4, 3), snapshot: null, entries: [...entries(1, 3, 1), entry(4, 3)] });
        await s.close();
      }));

    it('drops entries at or below a snapshot saved in a batch, keeping a matching tail', () =>
      withHarness(async (h) => {
        let s = await h.open();
        await s.load();
        await s.save(batch({ hardState: hs(1, 1, 5), entries: entries(1, 10, 1) }), true);
        await s.save(batch({ snapshot: snapshot(5, 1), hardState: hs(1, 1, 6) }), true);
        expectState(await s.load(), { hardState: hs(1, 1, 6), snapshot: snapshot(5, 1), entries: entries(6, 10, 1) });
        let loaded: PersistedState;
        [s, loaded] = await reopen(h, s);
        expectState(loaded, { hardState: hs(1, 1, 6), snapshot: snapshot(5, 1), entries: entries(6, 10, 1) });
        await s.close();
      }));

    it('drops every entry when a snapshot in a batch conflicts with the log, then appends after it', () =>
      withHarness(async (h) => {
        let s = await h.open();
        await s.load();
        await s.save(batch({ hardState: hs(1, 1, 3), entries: entries(1, 10, 1) }), true);
        await s.save(batch({ snapshot: snapshot(8, 2), hardState: hs(2, 0, 8), entries: entries(9, 9, 2) }), true);
        const expected = { hardState: hs(2, 0, 8), snapshot: snapshot(8, 2), entries: entries(9, 9, 2) };
        expectState(await s.load(), expected);
        let loaded: PersistedState;
        [s, loaded] = await reopen(h, s);
        expectState(loaded, expected);
        await s.save(batch({ entries: entries(10, 11, 2) }), true);
        [s, loaded] = await reopen(h, s);
        expectState(loaded, { ...expected, entries: entries(9, 11, 2) });
        await s.close();
      }));

    it(`${options.preparesSnapshots ? 'implements' : 'does not implement'} SnapshotPreparation, as declared`, () =>
      withHarness(async (h) => {
        const s = await h.open();
        expect(typeof (s as Partial<SnapshotPreparation>).prepareSnapshot).toBe(options.preparesSnapshots ? 'function' : 'undefined');
        await s.close();
      }));

    if (options.preparesSnapshots) {
      it('SnapshotPreparation: a prepared snapshot is invisible until saveSnapshot stores it, while save() goes on', () =>
        withHarness(async (h) => {
          let s = (await h.open()) as Storage & SnapshotPreparation;
          await s.load();
          await s.save(batch({ hardState: hs(1, 1, 6), entries: entries(1, 6, 1) }), true);
          const preparing = s.prepareSnapshot(snapshot(4, 1));
          await s.save(batch({ hardState: hs(1, 1, 8), entries: entries(7, 8, 1) }), true);
          await preparing;
          let loaded: PersistedState;
          [s, loaded] = (await reopen(h, s)) as [Storage & SnapshotPreparation, PersistedState];
          expectState(loaded, { hardState: hs(1, 1, 8), snapshot: null, entries: entries(1, 8, 1) });
          const snap = snapshot(5, 1);
          await s.prepareSnapshot(snap);
          await s.save(batch({ entries: entries(9, 9, 1) }), true);
          // The member stores its own copy of the prepared snapshot: the same point and image.
          await s.saveSnapshot({ metadata: { ...snap.metadata }, data: snap.data });
          const expected = { hardState: hs(1, 1, 8), snapshot: snap, entries: entries(6, 9, 1) };
          expectState(await s.load(), expected);
          [s, loaded] = (await reopen(h, s)) as [Storage & SnapshotPreparation, PersistedState];
          expectState(loaded, expected);
          await s.close();
        }));
    }

    it('saveSnapshot then reload returns the snapshot and only the later entries', () =>
      withHarness(async (h) => {
        let s = await h.open();
        await s.load();
        await s.save(batch({ hardState: hs(1, 1, 8), entries: entries(1, 10, 1) }), true);
        await s.saveSnapshot(snapshot(7, 1));
        let loaded: PersistedState;
        [s, loaded] = await reopen(h, s);
        expectState(loaded, { hardState: hs(1, 1, 8), snapshot: snapshot(7, 1), entries: entries(8, 10, 1) });
        await s.save(batch({ hardState: hs(1, 1, 10), entries: entries(11, 12, 1) }), true);
        await s.saveSnapshot(snapshot(12, 1, 'second'));
        [s, loaded] = await reopen(h, s);
        expectState(loaded, { hardState: hs(1, 1, 10), snapshot: snapshot(12, 1, 'second'), entries: [] });
        await s.save(batch({ entries: entries(13, 13, 1) }), true);
        [s, loaded] = await reopen(h, s);
        expectState(loaded, { hardState: hs(1, 1, 10), snapshot: snapshot(12, 1, 'second'), entries: entries(13, 13, 1) });
        await s.close();
      }));

    it('reloads many batches', () =>
      withHarness(async (h) => {
        let s = await h.open();
        await s.load();
        let index = 0;
        for (let b = 0; b < 300; b++) {
          const es = entries(index + 1, index + 1 + (b % 7), 1 + Math.floor(b / 100));
          index += es.length;
          await s.save(batch({ hardState: hs(1 + Math.floor(b / 100), 1, Math.max(0, index - 3)), entries: es }), b % 5 !== 0);
        }
        let loaded: PersistedState;
        [s, loaded] = await reopen(h, s);
        expect(loaded.entries.length).toBe(index);
        expect(loaded.entries.map((e) => e.index)).toEqual(Array.from({ length: index }, (_, i) => i + 1));
        expect(loaded.hardState).toEqual(hs(3, 1, index - 3));
        await s.close();
      }));

    it('round-trips a 1 MiB entry', () =>
      withHarness(async (h) => {
        let s = await h.open();
        await s.load();
        const big = new Uint8Array(1024 * 1024);
        for (let i = 0; i < big.length; i++) big[i] = (i * 2654435761) >>> 24;
        await s.save(batch({ entries: [entry(1, 1), entry(2, 1, big), entry(3, 1)] }), true);
        let loaded: PersistedState;
        [s, loaded] = await reopen(h, s);
        expect(loaded.entries.map((e) => e.data.length)).toEqual([4, big.length, 4]);
        expect(firstDifference(loaded.entries[1].data, big)).toBe(-1);
        await s.close();
      }));

    it('round-trips data byte-exact: empty, every byte value, views into larger buffers, entry types', () =>
      withHarness(async (h) => {
        let s = await h.open();
        await s.load();
        const backing = Uint8Array.from({ length: 64 }, (_, i) => 200 - i);
        const all = Uint8Array.from({ length: 256 }, (_, i) => i);
        const written = [
          entry(1, 1, new Uint8Array(0)),
          entry(2, 1, all),
          entry(3, 1, backing.subarray(10, 20)),
          entry(4, 1, new Uint8Array([0, 0, 0]), EntryType.ConfChange),
          entry(5, 1, new Uint8Array(0), EntryType.ConfChange),
        ];
        const snap: Snapshot = { ...snapshot(0, 0), data: new Uint8Array(0) };
        await s.save(batch({ entries: written, hardState: hs(1, 0, 0) }), true);
        let loaded: PersistedState;
        [s, loaded] = await reopen(h, s);
        expectState(loaded, { hardState: hs(1, 0, 0), snapshot: null, entries: written });
        expect(loaded.entries[2].data.byteLength).toBe(10);
        const emptySnap = { ...snap, metadata: { ...snap.metadata, index: 5, term: 1 } };
        await s.saveSnapshot(emptySnap);
        [s, loaded] = await reopen(h, s);
        expectState(loaded, { hardState: hs(1, 0, 0), snapshot: emptySnap, entries: [] });
        await s.close();
      }));

    it('keeps its own copy: mutating saved buffers afterwards changes nothing', () =>
      withHarness(async (h) => {
        let s = await h.open();
        await s.load();
        const data = new Uint8Array([1, 2, 3]);
        const e = entry(1, 1, data);
        await s.save(batch({ entries: [e] }), true);
        data.fill(9);
        e.term = 7;
        let loaded: PersistedState;
        [s, loaded] = await reopen(h, s);
        expectState(loaded, { hardState: emptyHardState(), snapshot: null, entries: [entry(1, 1, new Uint8Array([1, 2, 3]))] });
        await s.close();
      }));

    it('persists hard-state-only batches', () =>
      withHarness(async (h) => {
        let s = await h.open();
        await s.load();
        await s.save(batch({ hardState: hs(1, 0, 0) }), true);
        await s.save(batch({ hardState: hs(2, 3, 0) }), true);
        await s.save(batch({ entries: entries(1, 2, 2) }), true);
        await s.save(batch({ hardState: hs(2, 3, 2) }), true);
        let loaded: PersistedState;
        [s, loaded] = await reopen(h, s);
        expectState(loaded, { hardState: hs(2, 3, 2), snapshot: null, entries: entries(1, 2, 2) });
        await s.close();
      }));

    it('survives repeated close and reopen, appending after each', () =>
      withHarness(async (h) => {
        let s = await h.open();
        let loaded = await s.load();
        for (let round = 1; round <= 5; round++) {
          expect(loaded.entries.length).toBe(round - 1);
          await s.save(batch({ hardState: hs(round, 1, round - 1), entries: [entry(round, round)] }), true);
          [s, loaded] = await reopen(h, s);
          expect(loaded.hardState).toEqual(hs(round, 1, round - 1));
        }
        expectState(loaded, { hardState: hs(5, 1, 4), snapshot: null, entries: [1, 2, 3, 4, 5].map((i) => entry(i, i)) });
        await s.close();
      }));

    it('rejects a batch that would leave a gap, and a stale snapshot, without changing anything', () =>
      withHarness(async (h) => {
        let s = await h.open();
        await s.load();
        await s.save(batch({ hardState: hs(1, 1, 1), entries: entries(1, 3, 1) }), true);
        await expect(s.save(batch({ entries: entries(5, 6, 1) }), true)).rejects.toThrow(/gap/);
        await expect(s.save(batch({ entries: [entry(4, 1), entry(6, 1)] }), true)).rejects.toThrow(/not contiguous/);
        await s.saveSnapshot(snapshot(2, 1));
        await expect(s.saveSnapshot(snapshot(2, 1))).rejects.toThrow(/snapshot index 2 is not after the stored snapshot index 2/);
        await expect(s.save(batch({ snapshot: snapshot(1, 1) }), true)).rejects.toThrow(/not after/);
        let loaded: PersistedState;
        [s, loaded] = await reopen(h, s);
        expectState(loaded, { hardState: hs(1, 1, 1), snapshot: snapshot(2, 1), entries: entries(3, 3, 1) });
        await s.close();
      }));

    for (const seed of [1, 2, 3]) {
      it(`matches a naive model over random batches, overwrites, snapshots and restarts (seed ${seed})`, () =>
        withHarness(async (h) => {
          const random = prng(seed);
          const model = new StorageModel();
          let s = await h.open();
          expectState(await s.load(), model.state());
          for (let step = 0; step < 200; step++) {
            const op = nextRandomOp(model, random, `seed${seed}step${step}`);
            if (op.kind === 'save') await s.save(op.batch, op.sync);
            else if (op.kind === 'saveSnapshot') await s.saveSnapshot(op.snapshot);
            else {
              const [next, loaded] = await reopen(h, s);
              s = next;
              expectState(loaded, model.state());
            }
          }
          const [last, loaded] = await reopen(h, s);
          expectState(loaded, model.state());
          await last.close();
        }));
    }
  });
}
