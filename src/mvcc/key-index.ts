// A key's history. Every write is a Record identified by its revision {main, sub}: main is the
// write transaction's revision, sub the operation's position inside it. Records are immutable
// and hold no value: values live in the backend (history.ts), so the index costs the same
// whatever the value sizes. A key written once costs its record's fields in a RecordSlab and no
// object of its own (see IndexEntry).

import type { KeyString } from './bytes.ts';

export interface Record {
  readonly key: KeyString;
  readonly main: number;
  readonly sub: number;
  /** 0 for a tombstone. */
  readonly createRevision: number;
  /** 0 marks a tombstone (a delete); a live record has version >= 1. */
  readonly version: number;
  /** 0n: no lease. */
  readonly lease: bigint;
}

export function isTombstone(record: Record): boolean {
  return record.version === 0;
}

/** Revision order: main first, then sub. */
export function recordAfter(a: Record, b: Record): boolean {
  return a.main > b.main || (a.main === b.main && a.sub > b.sub);
}

/**
 * Generations of a key. A generation starts with the put that creates the key and ends with the
 * tombstone that deletes it; the last generation is open (no tombstone) and may be empty, which
 * means the key is currently deleted.
 *
 * Invariants: records in revision order across all generations; every generation but the last
 * is non-empty and ends with its only tombstone; the last holds no tombstone.
 */
export class KeyIndex {
  generations: Record[][] = [[]];

  /** The newest record, tombstone or not. */
  newest(): Record | undefined {
    const gens = this.generations;
    for (let g = gens.length - 1; g >= 0; g--) {
      const gen = gens[g];
      if (gen.length > 0) return gen[gen.length - 1];
    }
    return undefined;
  }

  /** The live record now, or undefined if the key is deleted. */
  live(): Record | undefined {
    const gen = this.generations[this.generations.length - 1];
    return gen.length > 0 ? gen[gen.length - 1] : undefined;
  }

  put(record: Record): void {
    this.assertAppendable(record);
    if (record.version === 0) throw new Error(`keyIndex.put: tombstone ${record.main}.${record.sub}`);
    const last = this.generations.length - 1;
    // A fresh one-element array: most keys are written once, and an empty array grown by push
    // reserves room for 17.
    if (this.generations[last].length === 0) this.generations[last] = [record];
    else this.generations[last].push(record);
  }

  tombstone(record: Record): void {
    this.assertAppendable(record);
    const gen = this.generations[this.generations.length - 1];
    if (gen.length === 0 || record.version !== 0) {
      throw new Error(`keyIndex.tombstone: key not live or record not a tombstone at ${record.main}.${record.sub}`);
    }
    gen.push(record);
    this.generations.push([]);
  }

  /** The record visible at revision `atRev`, or undefined if the key did not exist then. */
  get(atRev: number): Record | undefined {
    const gens = this.generations;
    for (let g = gens.length - 1; g >= 0; g--) {
      const gen = gens[g];
      if (gen.length === 0 || gen[0].main > atRev) continue;
      // Binary search for the last record with main <= atRev.
      let low = 0;
      let high = gen.length - 1;
      while (low < high) {
        const mid = (low + high + 1) >>> 1;
        if (gen[mid].main <= atRev) low = mid;
        else high = mid - 1;
      }
      const record = gen[low];
      return record.version === 0 ? undefined : record;
    }
    return undefined;
  }

  /**
   * Drops history at or below `atRev`, keeping the newest record at or below it unless that is a
   * tombstone (then its whole generation goes). Calls `drop` for every record dropped.
   */
  compact(atRev: number, drop: (record: Record) => void): void {
    const gens = this.generations;
    let g = 0;
    while (g < gens.length - 1 && gens[g][gens[g].length - 1].main <= atRev) {
      for (const record of gens[g]) drop(record);
      g++;
    }
    const gen = gens[g];
    let newestAtOrBelow = -1;
    for (let i = gen.length - 1; i >= 0; i--) {
      if (gen[i].main <= atRev) {
        newestAtOrBelow = i;
        break;
      }
    }
    const survivors = g === 0 ? gens : gens.slice(g);
    if (newestAtOrBelow > 0) {
      for (let i = 0; i < newestAtOrBelow; i++) drop(gen[i]);
      survivors[0] = gen.slice(newestAtOrBelow);
    }
    this.generations = survivors;
  }

  isEmpty(): boolean {
    return this.generations.length === 1 && this.generations[0].length === 0;
  }

  /** A key index holding just `record`, a live put (what a bare entry becomes on its next write). */
  static of(record: Record): KeyIndex {
    if (record.version === 0) throw new Error(`keyIndex.of: tombstone ${record.main}.${record.sub}`);
    const keyIndex = new KeyIndex();
    keyIndex.generations = [[record]];
    return keyIndex;
  }

  /** The only record, if the whole history is one live put (then the index holds it bare). */
  single(): Record | undefined {
    const gens = this.generations;
    return gens.length === 1 && gens[0].length === 1 ? gens[0][0] : undefined;
  }

  private assertAppendable(record: Record): void {
    const newest = this.newest();
    if (newest !== undefined && !recordAfter(record, newest)) {
      throw new Error(
        `keyIndex: revision ${record.main}.${record.sub} not after ${newest.main}.${newest.sub} for key`,
      );
    }
  }
}

/** A slot in a RecordSlab: where a bare record's fields are. */
export type SlabSlot = number;

/**
 * What the store's ordered index maps a key to. Most keys are written once, and a KeyIndex with
 * its two generation arrays costs ~80 bytes more than the record itself (measured in
 * docs/benchmarks.md), so a key whose whole history is one live put is held bare: its record's
 * fields sit in a RecordSlab and the index holds the slot, a small integer that V8 stores inline
 * (no object per key for the collector to trace). The store promotes it to a KeyIndex on the
 * key's next write and demotes a KeyIndex that compaction leaves with one record.
 *
 * Invariant: a slot holds a live put (version >= 1).
 */
export type IndexEntry = SlabSlot | KeyIndex;

const SLAB_CHUNK_BITS = 12;
const SLAB_CHUNK_SLOTS = 1 << SLAB_CHUNK_BITS;

/** One chunk of slots; fixed size, so growing the slab never copies what it holds. */
class SlabChunk {
  readonly main = new Float64Array(SLAB_CHUNK_SLOTS);
  readonly createRevision = new Float64Array(SLAB_CHUNK_SLOTS);
  readonly version = new Float64Array(SLAB_CHUNK_SLOTS);
  readonly lease = new BigInt64Array(SLAB_CHUNK_SLOTS);
  /** The record's sub; on a free slot, the next free slot (-1: none). */
  readonly sub = new Int32Array(SLAB_CHUNK_SLOTS);
}

/**
 * The fields of bare records (see IndexEntry) packed in typed arrays: 36 bytes a record, where a
 * Record object costs 72 on 64-bit V8 plus a BigInt for a lease. The key is not stored: the
 * index holds it, and `read` takes it back from the caller. Freed slots are reused (a free list
 * threaded through `sub`), so the slab holds as many slots as the most bare records it ever held
 * at once.
 */
export class RecordSlab {
  private readonly chunks: SlabChunk[] = [];
  private slotsUsed = 0;
  private freeHead = -1;

  add(record: Record): SlabSlot {
    return this.addFields(record.main, record.sub, record.createRevision, record.version, record.lease);
  }

  /** As `add`, from the fields: the restart's rebuild builds no Record for a key written once. */
  addFields(main: number, sub: number, createRevision: number, version: number, lease: bigint): SlabSlot {
    if (version === 0) throw new Error(`recordSlab.add: tombstone ${main}.${sub}`);
    let slot = this.freeHead;
    if (slot >= 0) {
      this.freeHead = this.chunks[slot >>> SLAB_CHUNK_BITS].sub[slot & (SLAB_CHUNK_SLOTS - 1)];
    } else {
      slot = this.slotsUsed++;
      if (slot >>> SLAB_CHUNK_BITS === this.chunks.length) this.chunks.push(new SlabChunk());
    }
    const chunk = this.chunks[slot >>> SLAB_CHUNK_BITS];
    const i = slot & (SLAB_CHUNK_SLOTS - 1);
    chunk.main[i] = main;
    chunk.sub[i] = sub;
    chunk.createRevision[i] = createRevision;
    chunk.version[i] = version;
    chunk.lease[i] = lease;
    return slot;
  }

  /** The record in `slot`, as a new object with `key` (the index's key for that slot). */
  read(slot: SlabSlot, key: KeyString): Record {
    const chunk = this.chunks[slot >>> SLAB_CHUNK_BITS];
    const i = slot & (SLAB_CHUNK_SLOTS - 1);
    const lease = chunk.lease[i];
    return {
      key,
      main: chunk.main[i],
      sub: chunk.sub[i],
      createRevision: chunk.createRevision[i],
      version: chunk.version[i],
      // One shared 0n: most keys have no lease.
      lease: lease === 0n ? 0n : lease,
    };
  }

  /** The main revision in `slot`, without building the record. */
  main(slot: SlabSlot): number {
    return this.chunks[slot >>> SLAB_CHUNK_BITS].main[slot & (SLAB_CHUNK_SLOTS - 1)];
  }

  /** The lease in `slot` (0n: none), without building the record. */
  lease(slot: SlabSlot): bigint {
    return this.chunks[slot >>> SLAB_CHUNK_BITS].lease[slot & (SLAB_CHUNK_SLOTS - 1)];
  }

  free(slot: SlabSlot): void {
    this.chunks[slot >>> SLAB_CHUNK_BITS].sub[slot & (SLAB_CHUNK_SLOTS - 1)] = this.freeHead;
    this.freeHead = slot;
  }
}

/** The live record now, or undefined if the key is deleted. */
export function entryLive(slab: RecordSlab, key: KeyString, entry: IndexEntry): Record | undefined {
  return typeof entry === 'number' ? slab.read(entry, key) : entry.live();
}

/** The record visible at revision `atRev`, or undefined if the key did not exist then. */
export function entryGet(slab: RecordSlab, key: KeyString, entry: IndexEntry, atRev: number): Record | undefined {
  if (typeof entry !== 'number') return entry.get(atRev);
  return slab.main(entry) <= atRev ? slab.read(entry, key) : undefined;
}

/**
 * The live record's lease (0n: none), or undefined if the key is deleted: what the passes over
 * every key at open need, without a Record built for each key written once.
 */
export function entryLiveLease(slab: RecordSlab, entry: IndexEntry): bigint | undefined {
  return typeof entry === 'number' ? slab.lease(entry) : entry.live()?.lease;
}
