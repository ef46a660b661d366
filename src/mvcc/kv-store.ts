// The multi-version key-value store: an ordered index (key → KeyIndex) over a revision-keyed
// store of immutable records. Reads at any revision not yet compacted; writes happen inside a
// WriteTxn that takes exactly one main revision, and only if it changes something.

import { BTree } from './btree.ts';
import { compareKeyStrings, type BinaryString, type KeyString, type RangeEnd } from './bytes.ts';
import { Errors } from './errors.ts';
import { KeyIndex, type Record } from './key-index.ts';
import {
  CRC32C_INITIAL,
  crc32cFinish,
  crc32cUpdateBinaryString,
  crc32cUpdateUint53,
} from '../codec/crc32c.ts';

/** One write of a transaction, with the record it replaced (for prev_kv and leases). */
export interface Change {
  readonly record: Record;
  /** The key's live record before this write; undefined if the key did not exist. */
  readonly prev: Record | undefined;
}

/** Told about lease attachments as keys are written and deleted (the lessor implements it). */
export interface LeaseKeyTracker {
  attach(lease: bigint, key: KeyString): void;
  detach(lease: bigint, key: KeyString): void;
}

/** etcd's first revision: a fresh store is at revision 1 and its first write gets 2. */
export const INITIAL_REVISION = 1;
/** etcd's compactMainRev before any compaction. */
export const NO_COMPACTION = -1;

/** An O(1) copy-on-write view of the whole store: what snapshots serialize. */
export interface StoreView {
  readonly revisions: BTree<number, readonly Record[]>;
  readonly currentRevision: number;
  readonly compactRevision: number;
  /** Records in `revisions`. */
  readonly recordCount: number;
}

export class KvStore {
  /** Key → history. Every KeyIndex here is non-empty. */
  private readonly index = new BTree<KeyString, KeyIndex>(undefined, compareKeyStrings);
  /**
   * Main revision → the records written at it, in sub order. Arrays are never mutated once
   * their transaction ended (compaction replaces them), so clones can share them.
   */
  private revisions = new BTree<number, readonly Record[]>();
  /** Records in `revisions`, kept so a snapshot header can state it without a scan. */
  private records = 0;
  /** Invariant: every stored record's main revision is at most `current`. */
  private current = INITIAL_REVISION;
  /** Invariant: `compacted` <= `current`; NO_COMPACTION until the first compaction. */
  private compacted = NO_COMPACTION;
  private activeTxn: WriteTxn | null = null;

  constructor(private readonly leases: LeaseKeyTracker | null = null) {}

  get currentRevision(): number {
    return this.current;
  }

  /** The last compaction's revision, or -1 (NO_COMPACTION). */
  get compactRevision(): number {
    return this.compacted;
  }

  get keyCount(): number {
    return this.index.size;
  }

  /**
   * Records visible at `atRev` for keys in [key, end), in key order. Collects at most
   * `collectMax` records (Infinity: all; 0: none) but counts every visible key, as etcd's `count`
   * does. O(keys in range).
   */
  rangeRecords(key: KeyString, end: RangeEnd, atRev: number, collectMax: number): { records: Record[]; count: number } {
    const records: Record[] = [];
    let count = 0;
    this.visitRange(key, end, (keyIndex) => {
      const record = keyIndex.get(atRev);
      if (record === undefined) return;
      count++;
      if (records.length < collectMax) records.push(record);
    });
    return { records, count };
  }

  /** Checks a read revision the way etcd does; 0 (or less) means the current revision. */
  resolveReadRevision(revision: number, currentRev: number): number {
    if (revision > currentRev) throw Errors.futureRevision();
    const atRev = revision <= 0 ? currentRev : revision;
    if (atRev < this.compacted) throw Errors.compacted();
    return atRev;
  }

  /** The record of `key` visible at `atRev` (used for watch prev_kv), if still in history. */
  getAt(key: KeyString, atRev: number): Record | undefined {
    if (atRev < this.compacted) return undefined;
    return this.index.get(key)?.get(atRev);
  }

  /** The key's live record now. */
  live(key: KeyString): Record | undefined {
    return this.index.get(key)?.live();
  }

  /** Begins the one write transaction; it takes revision current+1 if it writes anything. */
  write(): WriteTxn {
    if (this.activeTxn !== null) throw new Error('kvStore.write: a write transaction is already open');
    this.activeTxn = new WriteTxn(this, this.current);
    return this.activeTxn;
  }

  /** Records with main in [fromMain, toMain], revision order. */
  forEachRevision(fromMain: number, toMain: number, visit: (main: number, records: readonly Record[]) => void): void {
    if (fromMain > toMain) return;
    this.revisions.forRange(fromMain, toMain, true, visit);
  }

  /**
   * Drops history at or below `revision`, keeping every key's newest record at or below it
   * unless that is a tombstone. O(keys + records at or below `revision`).
   */
  compact(revision: number): void {
    if (revision <= this.compacted) throw Errors.compacted();
    if (revision > this.current) throw Errors.futureRevision();
    const kept = new Set<Record>();
    const emptied: KeyString[] = [];
    const keep = (record: Record): void => {
      kept.add(record);
    };
    this.index.forEachPair((key, keyIndex) => {
      keyIndex.compact(revision, keep);
      if (keyIndex.isEmpty()) emptied.push(key);
    });
    this.index.deleteKeys(emptied);
    const rewritten: [number, Record[]][] = [];
    const dropped: number[] = [];
    this.revisions.forRange(Number.MIN_SAFE_INTEGER, revision, true, (main, records) => {
      const survivors = records.filter((record) => kept.has(record));
      this.records -= records.length - survivors.length;
      if (survivors.length === 0) dropped.push(main);
      else if (survivors.length !== records.length) rewritten.push([main, survivors]);
    });
    this.revisions.deleteKeys(dropped);
    for (const [main, survivors] of rewritten) this.revisions.set(main, survivors);
    this.compacted = revision;
  }

  /**
   * CRC-32C over every stored record with main revision <= `revision` (0: current), in revision
   * order. Equal on replicas that applied the same entries, and preserved by snapshot/restore.
   */
  hashKV(revision: number): { hash: number; compactRevision: number; hashRevision: number } {
    if (revision > 0 && revision <= this.compacted) throw Errors.compacted();
    if (revision > this.current) throw Errors.futureRevision();
    const upTo = revision <= 0 ? this.current : revision;
    let state = CRC32C_INITIAL;
    this.revisions.forRange(Number.MIN_SAFE_INTEGER, upTo, true, (_main, records) => {
      for (const record of records) state = hashRecord(state, record);
    });
    return { hash: crc32cFinish(state), compactRevision: this.compacted, hashRevision: upTo };
  }

  /**
   * Self-check of every invariant, for tests (O(records)): the index and the revision store hold
   * the same records; generations are well formed; versions count up within a generation; no
   * record is newer than the current revision; at or below the compaction, each key keeps at
   * most one record and never a tombstone.
   */
  checkValid(): void {
    const fail = (why: string): never => {
      throw new Error(`kvStore.checkValid: ${why}`);
    };
    const indexed = new Set<Record>();
    this.index.forEachPair((key, keyIndex) => {
      if (keyIndex.isEmpty()) fail(`empty key index for ${JSON.stringify(key)}`);
      const gens = keyIndex.generations;
      let previous: Record | undefined;
      let atOrBelowCompaction = 0;
      gens.forEach((gen, g) => {
        const last = g === gens.length - 1;
        if (!last && gen.length === 0) fail(`empty closed generation ${g} of ${JSON.stringify(key)}`);
        gen.forEach((record, i) => {
          if (record.key !== key) fail(`record of ${JSON.stringify(record.key)} under ${JSON.stringify(key)}`);
          if (previous !== undefined && !(record.main > previous.main || (record.main === previous.main && record.sub > previous.sub))) {
            fail(`revision ${record.main}.${record.sub} not after ${previous.main}.${previous.sub}`);
          }
          const tombstone = record.version === 0;
          if (tombstone !== (!last && i === gen.length - 1)) fail(`misplaced tombstone at ${record.main}.${record.sub}`);
          if (!tombstone && i > 0 && record.version !== gen[i - 1].version + 1) fail(`version gap at ${record.main}`);
          if (!tombstone && record.createRevision !== gen[0].createRevision) fail(`create revision differs at ${record.main}`);
          if (record.main > this.current) fail(`record at ${record.main} beyond revision ${this.current}`);
          if (record.main <= this.compacted) {
            atOrBelowCompaction++;
            if (tombstone) fail(`tombstone at ${record.main} kept at or below compaction ${this.compacted}`);
          }
          indexed.add(record);
          previous = record;
        });
      });
      if (atOrBelowCompaction > 1) fail(`${atOrBelowCompaction} records of ${JSON.stringify(key)} at or below the compaction`);
    });
    let stored = 0;
    this.revisions.forEachPair((main, records) => {
      if (records.length === 0) fail(`empty revision ${main}`);
      for (const record of records) {
        if (record.main !== main) fail(`record ${record.main} filed under ${main}`);
        if (!indexed.has(record)) fail(`record ${record.main}.${record.sub} missing from the index`);
        stored++;
      }
    });
    if (stored !== indexed.size) fail(`${indexed.size} records indexed, ${stored} stored`);
    if (stored !== this.records) fail(`record count ${this.records}, found ${stored}`);
  }

  view(): StoreView {
    if (this.activeTxn !== null) throw new Error('kvStore.view: a write transaction is open');
    return {
      revisions: this.revisions.clone(),
      currentRevision: this.current,
      compactRevision: this.compacted,
      recordCount: this.records,
    };
  }

  /**
   * Rebuilds a store from a view's contents (records in revision order). Lease attachments are
   * not made here: restore the lessor, then call `attachLeases`.
   */
  static restore(
    records: Iterable<Record>,
    currentRevision: number,
    compactRevision: number,
    leases: LeaseKeyTracker | null,
  ): KvStore {
    const store = new KvStore(leases);
    let main = -1;
    const batch: Record[] = [];
    const flush = (): void => {
      // An exact-size copy, as live writes store (a pushed-to array reserves spare room).
      if (batch.length > 0) store.revisions.set(main, batch.slice());
      batch.length = 0;
    };
    for (const record of records) {
      if (record.main > currentRevision) {
        throw new Error(`kvStore.restore: record at ${record.main} beyond revision ${currentRevision}`);
      }
      if (record.main !== main) {
        flush();
        main = record.main;
      }
      batch.push(record);
      store.indexRecord(record);
      store.records++;
    }
    flush();
    store.current = currentRevision;
    store.compacted = compactRevision;
    return store;
  }

  /** A live key attached to a lease not in `leases` (a damaged restore), or undefined. O(keys). */
  findKeyOutsideLeases(leases: ReadonlySet<bigint>): { key: KeyString; lease: bigint } | undefined {
    let found: { key: KeyString; lease: bigint } | undefined;
    this.index.forEachPair((key, keyIndex) => {
      const live = keyIndex.live();
      if (found === undefined && live !== undefined && live.lease !== 0n && !leases.has(live.lease)) found = { key, lease: live.lease };
    });
    return found;
  }

  /** Tells the lease tracker about every live key's lease (after a restore). O(keys). */
  attachLeases(): void {
    const leases = this.leases;
    if (leases === null) return;
    this.index.forEachPair((key, keyIndex) => {
      const live = keyIndex.live();
      if (live !== undefined && live.lease !== 0n) leases.attach(live.lease, key);
    });
  }

  // ---- used by WriteTxn ----

  /** @internal */
  visitRange(key: KeyString, end: RangeEnd, visit: (keyIndex: KeyIndex, key: KeyString) => void): void {
    if (end === null) {
      const keyIndex = this.index.get(key);
      if (keyIndex !== undefined) visit(keyIndex, key);
      return;
    }
    if (end !== '' && end <= key) return;
    if (end === '') {
      const max = this.index.maxKey();
      if (max === undefined || max < key) return;
      this.index.forRange(key, max, true, (k, keyIndex) => visit(keyIndex, k));
      return;
    }
    this.index.forRange(key, end, false, (k, keyIndex) => visit(keyIndex, k));
  }

  /** @internal */
  appendRecord(record: Record): void {
    this.indexRecord(record);
  }

  /** @internal */
  trackLease(change: Change): void {
    if (this.leases === null) return;
    const oldLease = change.prev?.lease ?? 0n;
    const newLease = change.record.lease;
    if (oldLease === newLease) return;
    if (oldLease !== 0n) this.leases.detach(oldLease, change.record.key);
    if (newLease !== 0n) this.leases.attach(newLease, change.record.key);
  }

  /** @internal */
  endTxn(txn: WriteTxn): void {
    if (this.activeTxn !== txn) throw new Error('kvStore.endTxn: not the open transaction');
    this.activeTxn = null;
    if (txn.changes.length === 0) return;
    if (txn.main !== this.current + 1) {
      throw new Error(`kvStore.endTxn: txn revision ${txn.main} does not follow current ${this.current}`);
    }
    // An exact-size array: the revision store holds one per revision for as long as it lives.
    this.revisions.set(txn.main, txn.changes.map((change) => change.record));
    this.records += txn.changes.length;
    this.current = txn.main;
  }

  private indexRecord(record: Record): void {
    let keyIndex = this.index.get(record.key);
    if (keyIndex === undefined) {
      keyIndex = new KeyIndex();
      this.index.set(record.key, keyIndex);
    }
    if (record.version === 0) keyIndex.tombstone(record);
    else keyIndex.put(record);
  }
}

function hashRecord(state: number, record: Record): number {
  let s = crc32cUpdateUint53(state, record.main);
  s = crc32cUpdateUint53(s, record.sub);
  s = crc32cUpdateUint53(s, record.key.length);
  s = crc32cUpdateBinaryString(s, record.key);
  s = crc32cUpdateUint53(s, record.createRevision);
  s = crc32cUpdateUint53(s, record.version);
  s = crc32cUpdateBinaryString(s, record.lease === 0n ? '' : record.lease.toString(16));
  s = crc32cUpdateUint53(s, record.value.length);
  return crc32cUpdateBinaryString(s, record.value);
}

/**
 * The single open write transaction. All of its writes share main revision `main`; reads
 * inside it see its earlier writes. Callers validate everything before the first write: a
 * WriteTxn never rolls back.
 */
export class WriteTxn {
  /** The main revision this transaction's writes get. */
  readonly main: number;
  readonly changes: Change[] = [];
  private ended = false;

  constructor(
    private readonly store: KvStore,
    /** The store revision when the transaction began. */
    readonly beginRevision: number,
  ) {
    this.main = beginRevision + 1;
  }

  /** The revision reads inside the transaction see: main once it has written, else begin. */
  get readRevision(): number {
    return this.changes.length > 0 ? this.main : this.beginRevision;
  }

  put(key: KeyString, value: BinaryString, lease: bigint): void {
    this.assertOpen();
    const prev = this.store.live(key);
    const record: Record = {
      // Reuse the stored key string: one copy per key, not one per version.
      key: prev === undefined ? key : prev.key,
      main: this.main,
      sub: this.changes.length,
      createRevision: prev === undefined ? this.main : prev.createRevision,
      version: prev === undefined ? 1 : prev.version + 1,
      value,
      lease,
    };
    this.store.appendRecord(record);
    const change: Change = { record, prev };
    this.changes.push(change);
    this.store.trackLease(change);
  }

  /** Deletes the live keys in [key, end); returns their records before the delete, key order. */
  deleteRange(key: KeyString, end: RangeEnd): Record[] {
    this.assertOpen();
    const victims: Record[] = [];
    this.store.visitRange(key, end, (keyIndex) => {
      const live = keyIndex.live();
      if (live !== undefined) victims.push(live);
    });
    for (const prev of victims) {
      const record: Record = {
        key: prev.key,
        main: this.main,
        sub: this.changes.length,
        createRevision: 0,
        version: 0,
        value: '',
        lease: 0n,
      };
      this.store.appendRecord(record);
      const change: Change = { record, prev };
      this.changes.push(change);
      this.store.trackLease(change);
    }
    return victims;
  }

  /** Ends the transaction; the store's revision becomes `main` if anything was written. */
  end(): Change[] {
    this.assertOpen();
    this.ended = true;
    this.store.endTxn(this);
    return this.changes;
  }

  private assertOpen(): void {
    if (this.ended) throw new Error(`writeTxn at ${this.main}: already ended`);
  }
}
