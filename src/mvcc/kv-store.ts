// The multi-version key-value store: an in-memory ordered index (key → its history) over the
// backend, which holds every record's value and the history by revision. Reads at any revision
// not yet compacted; writes happen inside a WriteTxn that takes exactly one main revision, and
// only if it changes something. Each write goes to the write buffer and into the next backend
// batch; `commit(appliedIndex)` hands that batch to the backend (see history.ts).

import { BTree } from './btree.ts';
import { EMPTY_BYTES, compareKeyStrings, fromBinaryString, type BinaryString, type KeyString, type RangeEnd } from './bytes.ts';
import { Errors } from './errors.ts';
import { KeyIndex, RecordSlab, entryGet, entryLive, entryLiveLease, type IndexEntry, type Record } from './key-index.ts';
import { rebuildKeyIndex } from './index-rebuild.ts';
import { History, WriteBuffer, revisionId, type StoredRecord } from './history.ts';
import { metaKeys, parseRevisionKey, recordPut, revisionKey } from '../backend/layout.ts';
import { MemoryBackend } from '../backend/memory.ts';
import type { Backend, BackendOp, BackendReadView } from '../seams.ts';
import type { KeyValue } from './types.ts';
import {
  CRC32C_INITIAL,
  crc32cFinish,
  crc32cUpdate,
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

/** The key index's B-tree node size (sorted-btree's default), for a new store and a rebuilt one alike. */
const indexNodeKeysMax = 32;

/** etcd's first revision: a fresh store is at revision 1 and its first write gets 2. */
export const INITIAL_REVISION = 1;
/** etcd's compactMainRev before any compaction. */
export const NO_COMPACTION = -1;

/** A consistent read view of the whole store (what snapshots serialize); release it when done. */
export interface StoreView {
  readonly history: History;
  readonly currentRevision: number;
  readonly compactRevision: number;
  /** Records in the history. */
  readonly recordCount: number;
  release(): void;
}

/** Batches whose buffered revisions and deletes leave the buffer when `committed` resolves. */
interface CommitGroup {
  readonly committed: Promise<void>;
  readonly mains: number[];
  readonly deleted: string[];
  clear: boolean;
}

export class KvStore {
  /** Key → history: a slot in `slab` (a bare record) or a non-empty KeyIndex (see IndexEntry). */
  /** Replaced only by `open`, with the rebuilt index. */
  private index = new BTree<KeyString, IndexEntry>(undefined, compareKeyStrings, indexNodeKeysMax);
  private slab = new RecordSlab();
  /** Applied writes not yet committed to the backend. */
  private readonly buffer = new WriteBuffer();
  readonly history: History;
  /** Records in the history (backend and buffer), kept so a snapshot header can state it without a scan. */
  private records = 0;
  /** The next backend batch: ops, and the buffered revisions and deletes it makes durable. */
  private batchOps: BackendOp[] = [];
  private batchMains: number[] = [];
  private batchDeleted: string[] = [];
  private batchClear = false;
  /** The applied index of the last batch handed to the backend. */
  private committedIndex: number;
  /**
   * The batches handed to the backend last that share one commit promise, while it is pending.
   * A backend that coalesces batches into one transaction (LMDB) hands every batch of it the
   * same promise, so their buffered revisions leave the buffer with one reaction, not one
   * reaction, promise and two closures per applied entry, all kept until the commit.
   */
  private committing: CommitGroup | null = null;
  /** Set once a backend commit failed: nothing more may be applied. */
  private failure: Error | null = null;
  /** Invariant: every stored record's main revision is at most `current`. */
  private current = INITIAL_REVISION;
  /** Invariant: `compacted` <= `current`; NO_COMPACTION until the first compaction. */
  private compacted = NO_COMPACTION;
  private activeTxn: WriteTxn | null = null;

  constructor(
    private readonly leases: LeaseKeyTracker | null = null,
    readonly backend: Backend = new MemoryBackend(),
  ) {
    this.history = new History(backend, this.buffer);
    this.committedIndex = backend.appliedIndex;
  }

  /** The applied index of the last batch handed to the backend. */
  get appliedIndex(): number {
    return this.committedIndex;
  }

  /** The value of a record the index holds (for compares, ignore_value and sorting). */
  value(record: Record): BinaryString {
    return this.history.value(record);
  }

  /** The value as fresh bytes. */
  valueBytes(record: Record): Uint8Array {
    return this.history.valueBytes(record);
  }

  /** The API's KeyValue for a record the index holds; the value is read through the backend. */
  keyValue(record: Record, keysOnly = false): KeyValue {
    return {
      key: fromBinaryString(record.key),
      createRevision: record.createRevision,
      modRevision: record.main,
      version: record.version,
      value: keysOnly ? EMPTY_BYTES : this.history.valueBytes(record),
      lease: record.lease,
    };
  }

  /**
   * Hands every write since the last commit to the backend as one batch, with `appliedIndex`
   * (the Raft index of the entry just applied). Buffered values leave the buffer once the
   * backend has committed them. A failed commit fails every later write.
   */
  commit(appliedIndex: number): void {
    if (this.activeTxn !== null) throw new Error('kvStore.commit: a write transaction is open');
    this.assertHealthy();
    const mains = this.batchMains;
    const deleted = this.batchDeleted;
    const clear = this.batchClear;
    const batch = { clear, ops: this.batchOps, appliedIndex };
    this.batchOps = [];
    this.batchMains = [];
    this.batchDeleted = [];
    this.batchClear = false;
    this.committedIndex = appliedIndex;
    const committed = this.backend.commit(batch);
    const group = this.committing;
    if (group !== null && group.committed === committed) {
      for (const main of mains) group.mains.push(main);
      for (const id of deleted) group.deleted.push(id);
      group.clear ||= clear;
      return;
    }
    const next: CommitGroup = { committed, mains, deleted, clear };
    this.committing = next;
    committed.then(
      () => {
        if (this.committing === next) this.committing = null;
        for (const main of next.mains) this.buffer.revisions.delete(main);
        for (const id of next.deleted) this.buffer.deleted.delete(id);
        if (next.clear) this.buffer.clearing = false;
      },
      (err: unknown) => {
        if (this.committing === next) this.committing = null;
        this.failure ??= err instanceof Error ? err : new Error(String(err));
      },
    );
  }

  /** Why the backend refused a commit, or null: once set, nothing more may be applied. */
  get backendFailure(): Error | null {
    return this.failure;
  }

  private assertHealthy(): void {
    if (this.failure !== null) throw new Error(`kvStore: the backend failed, nothing more can be applied: ${this.failure.message}`);
  }

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
    this.visitRange(key, end, (entry, k) => {
      const record = entryGet(this.slab, k, entry, atRev);
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
    const pair = this.storedPair(key);
    return pair === undefined ? undefined : entryGet(this.slab, pair[0], pair[1], atRev);
  }

  /** The key's live record now. */
  live(key: KeyString): Record | undefined {
    const pair = this.storedPair(key);
    return pair === undefined ? undefined : entryLive(this.slab, pair[0], pair[1]);
  }

  /**
   * The index's own key string and entry for `key`: records built from the slab carry the stored
   * string, so a key's later records share it rather than keep the request's copy.
   */
  private storedPair(key: KeyString): [KeyString, IndexEntry] | undefined {
    const pair = this.index.getPairOrNextHigher(key);
    return pair !== undefined && pair[0] === key ? pair : undefined;
  }

  /** Begins the one write transaction; it takes revision current+1 if it writes anything. */
  write(): WriteTxn {
    if (this.activeTxn !== null) throw new Error('kvStore.write: a write transaction is already open');
    this.assertHealthy();
    this.activeTxn = new WriteTxn(this, this.current);
    return this.activeTxn;
  }

  /**
   * Stored records with main in [fromMain, toMain], revision order, grouped by main revision.
   * Reads the backend: O(records visited).
   */
  forEachRevision(fromMain: number, toMain: number, visit: (main: number, records: readonly StoredRecord[]) => void): void {
    let main = -1;
    let group: StoredRecord[] = [];
    this.history.forEach(fromMain, toMain, (record) => {
      if (record.main !== main) {
        if (group.length > 0) visit(main, group);
        main = record.main;
        group = [];
      }
      group.push(record);
    });
    if (group.length > 0) visit(main, group);
  }

  /**
   * Drops history at or below `revision`, keeping every key's newest record at or below it
   * unless that is a tombstone; the dropped records are deleted from the backend in the next
   * batch, with etcd's compaction marks. O(keys + dropped records), no backend read.
   */
  compact(revision: number): void {
    if (revision <= this.compacted) throw Errors.compacted();
    if (revision > this.current) throw Errors.futureRevision();
    this.assertHealthy();
    const emptied: KeyString[] = [];
    const drop = (record: Record): void => {
      const id = revisionId(record.main, record.sub);
      this.buffer.deleted.add(id);
      this.batchDeleted.push(id);
      this.batchOps.push({ bucket: 'key', key: revisionKey(record.main, record.sub, record.version === 0), value: null });
      this.records--;
    };
    const demoted: Record[] = [];
    this.index.forEachPair((key, entry) => {
      // A bare record is a live put: compaction always keeps it.
      if (typeof entry === 'number') return;
      entry.compact(revision, drop);
      if (entry.isEmpty()) emptied.push(key);
      const single = entry.single();
      if (single !== undefined) demoted.push(single);
    });
    this.index.deleteKeys(emptied);
    for (const record of demoted) this.index.set(record.key, this.slab.add(record));
    const mark = revisionKey(revision, 0);
    this.batchOps.push({ bucket: 'meta', key: metaKeys.scheduledCompactRev, value: mark });
    this.batchOps.push({ bucket: 'meta', key: metaKeys.finishedCompactRev, value: mark });
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
    this.history.forEach(0, upTo, (record) => {
      state = hashRecord(state, record);
    });
    return { hash: crc32cFinish(state), compactRevision: this.compacted, hashRevision: upTo };
  }

  /**
   * Self-check of every invariant, for tests (O(records), reads the backend): the index and the
   * history hold the same records; generations are well formed; versions count up within a generation; no
   * record is newer than the current revision; at or below the compaction, each key keeps at
   * most one record and never a tombstone. `againstHistory` false skips reading the history
   * back and only counts the indexed records: for a store just built by restore(), which puts
   * each record in both from a stream whose revisions strictly increase (the snapshot decoder
   * checks that), so they can differ only in count.
   */
  checkValid(againstHistory = true): void {
    const fail = (why: string): never => {
      throw new Error(`kvStore.checkValid: ${why}`);
    };
    const indexed = new Map<string, Record>();
    let indexedCount = 0;
    this.index.forEachPair((key, entry) => {
      if (entry instanceof KeyIndex && entry.isEmpty()) fail(`empty key index for ${JSON.stringify(key)}`);
      if (entry instanceof KeyIndex && entry.single() !== undefined) fail(`one-record key index for ${JSON.stringify(key)} not held bare`);
      const gens = entry instanceof KeyIndex ? entry.generations : [[this.slab.read(entry, key)]];
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
          if (againstHistory) indexed.set(revisionId(record.main, record.sub), record);
          indexedCount++;
          previous = record;
        });
      });
      if (atOrBelowCompaction > 1) fail(`${atOrBelowCompaction} records of ${JSON.stringify(key)} at or below the compaction`);
    });
    if (!againstHistory) {
      if (indexedCount !== this.records) fail(`record count ${this.records}, found ${indexedCount}`);
      return;
    }
    let stored = 0;
    this.history.forEach(0, Number.MAX_SAFE_INTEGER - 1, (record) => {
      const same = indexed.get(revisionId(record.main, record.sub));
      if (same === undefined) fail(`record ${record.main}.${record.sub} missing from the index`);
      else if (same.key !== record.key || same.createRevision !== record.createRevision || same.version !== record.version || same.lease !== record.lease) {
        fail(`record ${record.main}.${record.sub} differs between the index and the backend`);
      }
      stored++;
    });
    if (stored !== indexed.size) fail(`${indexed.size} records indexed, ${stored} stored`);
    if (stored !== this.records) fail(`record count ${this.records}, found ${stored}`);
  }

  /** Adds an op on another bucket (leases) to the next batch, so it commits with this entry's writes. */
  stage(op: BackendOp): void {
    if (op.bucket === 'key') throw new Error('kvStore.stage: the key bucket is written by write transactions only');
    this.batchOps.push(op);
  }

  /**
   * Opens the store a backend holds (a restart, or an adopted snapshot stream): rebuilds the key
   * index with one ordered scan of the `key` bucket, values left in place (index-rebuild.ts).
   * O(records). The current revision is the newest stored one, or the compaction's if that is
   * newer (its tombstones may be gone), as etcd's. Lease attachments are not made here: restore
   * the lessor, then call `attachLeases`.
   */
  static open(leases: LeaseKeyTracker | null, backend: Backend): KvStore {
    const store = new KvStore(leases, backend);
    const rebuilt = rebuildKeyIndex(backend, indexNodeKeysMax);
    store.index = rebuilt.index;
    store.slab = rebuilt.slab;
    store.records = rebuilt.records;
    const finished = backend.get('meta', metaKeys.finishedCompactRev);
    store.compacted = finished === undefined ? NO_COMPACTION : parseRevisionKey(finished).main;
    store.current = Math.max(INITIAL_REVISION, rebuilt.newestMain, store.compacted);
    return store;
  }

  /** O(1) plus a copy of the write buffer: a backend read view under a copy of the overlay. */
  view(): StoreView {
    if (this.activeTxn !== null) throw new Error('kvStore.view: a write transaction is open');
    const backendView: BackendReadView = this.backend.view();
    return {
      history: new History(backendView, this.buffer.copy()),
      currentRevision: this.current,
      compactRevision: this.compacted,
      recordCount: this.records,
      release: () => backendView.release(),
    };
  }

  /**
   * Builds a store from a view's contents (records in revision order) over `backend`, whose
   * contents its first commit() replaces: every record is buffered until that clearing batch
   * lands, and nothing reaches the backend before that commit(), so a store refused after
   * checking leaves the backend as it was. Lease attachments are not made here: restore the
   * lessor, then call `attachLeases`.
   */
  static restore(
    records: Iterable<StoredRecord>,
    currentRevision: number,
    compactRevision: number,
    leases: LeaseKeyTracker | null,
    backend: Backend,
  ): KvStore {
    const store = new KvStore(leases, backend);
    store.buffer.clearing = true;
    store.batchClear = true;
    let main = -1;
    let group: { records: Record[]; ops: BackendOp[] } = { records: [], ops: [] };
    for (const stored of records) {
      if (stored.main > currentRevision) {
        throw new Error(`kvStore.restore: record at ${stored.main} beyond revision ${currentRevision}`);
      }
      if (stored.main !== main) {
        main = stored.main;
        group = { records: [], ops: [] };
        store.buffer.revisions.set(main, group);
        store.batchMains.push(main);
      }
      const { value, ...record } = stored;
      group.records.push(record);
      const op = store.encodeRecord(record, value);
      group.ops[record.sub] = op;
      store.batchOps.push(op);
      store.indexRecord(record);
      store.records++;
    }
    if (compactRevision !== NO_COMPACTION) {
      const mark = revisionKey(compactRevision, 0);
      store.batchOps.push({ bucket: 'meta', key: metaKeys.scheduledCompactRev, value: mark });
      store.batchOps.push({ bucket: 'meta', key: metaKeys.finishedCompactRev, value: mark });
    }
    store.current = currentRevision;
    store.compacted = compactRevision;
    return store;
  }

  /** A live key attached to a lease not in `leases` (a damaged restore), or undefined. O(keys). */
  findKeyOutsideLeases(leases: ReadonlySet<bigint>): { key: KeyString; lease: bigint } | undefined {
    let found: { key: KeyString; lease: bigint } | undefined;
    this.index.forEachPair((key, entry) => {
      const lease = entryLiveLease(this.slab, entry);
      if (found === undefined && lease !== undefined && lease !== 0n && !leases.has(lease)) found = { key, lease };
    });
    return found;
  }

  /** Tells the lease tracker about every live key's lease (after a restore). O(keys). */
  attachLeases(): void {
    const leases = this.leases;
    if (leases === null) return;
    this.index.forEachPair((key, entry) => {
      const lease = entryLiveLease(this.slab, entry);
      if (lease !== undefined && lease !== 0n) leases.attach(lease, key);
    });
  }

  // ---- used by WriteTxn ----

  /** @internal The live record of an entry `visitRange` handed out. */
  liveOf(key: KeyString, entry: IndexEntry): Record | undefined {
    return entryLive(this.slab, key, entry);
  }

  /** @internal */
  visitRange(key: KeyString, end: RangeEnd, visit: (entry: IndexEntry, key: KeyString) => void): void {
    if (end === null) {
      const entry = this.index.get(key);
      if (entry !== undefined) visit(entry, key);
      return;
    }
    if (end !== '' && end <= key) return;
    if (end === '') {
      const max = this.index.maxKey();
      if (max === undefined || max < key) return;
      this.index.forRange(key, max, true, (k, entry) => visit(entry, k));
      return;
    }
    this.index.forRange(key, end, false, (k, entry) => visit(entry, k));
  }

  /**
   * @internal Indexes a write of the open transaction and buffers it as its backend op: `value`
   * is copied into the op here and not kept, and reads of the buffered value decode the op.
   */
  appendRecord(record: Record, value: Uint8Array): void {
    this.indexRecord(record);
    const op = this.encodeRecord(record, value);
    const buffered = this.buffer.revisions.get(record.main);
    // Fresh one-element arrays for a revision's first write (most write one key): an empty
    // array grown by push reserves room for 17, and these live until the backend commits.
    if (buffered === undefined) this.buffer.revisions.set(record.main, { records: [record], ops: [op] });
    else {
      buffered.records.push(record);
      buffered.ops.push(op);
    }
  }

  private encodeRecord(record: Record, value: Uint8Array): BackendOp {
    return recordPut(record.key, record.main, record.sub, record.createRevision, record.version, record.version === 0 ? EMPTY_BYTES : value, record.lease);
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
    for (const op of this.buffer.revisions.get(txn.main)!.ops) this.batchOps.push(op);
    this.batchMains.push(txn.main);
    this.records += txn.changes.length;
    this.current = txn.main;
  }

  private indexRecord(record: Record): void {
    const entry = this.index.get(record.key);
    if (entry === undefined) {
      if (record.version === 0) throw new Error(`kvStore: tombstone at ${record.main}.${record.sub} for a key with no history`);
      this.index.set(record.key, this.slab.add(record));
      return;
    }
    let keyIndex: KeyIndex;
    if (typeof entry !== 'number') keyIndex = entry;
    else {
      this.index.set(record.key, (keyIndex = KeyIndex.of(this.slab.read(entry, record.key))));
      this.slab.free(entry);
    }
    if (record.version === 0) keyIndex.tombstone(record);
    else keyIndex.put(record);
  }
}

function hashRecord(state: number, record: StoredRecord): number {
  let s = crc32cUpdateUint53(state, record.main);
  s = crc32cUpdateUint53(s, record.sub);
  s = crc32cUpdateUint53(s, record.key.length);
  s = crc32cUpdateBinaryString(s, record.key);
  s = crc32cUpdateUint53(s, record.createRevision);
  s = crc32cUpdateUint53(s, record.version);
  s = crc32cUpdateBinaryString(s, record.lease === 0n ? '' : record.lease.toString(16));
  s = crc32cUpdateUint53(s, record.value.length);
  return crc32cUpdate(s, record.value);
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

  /** `value` is copied into the record's backend op at once: the caller keeps its bytes. */
  put(key: KeyString, value: Uint8Array, lease: bigint): void {
    this.assertOpen();
    const prev = this.store.live(key);
    const record: Record = {
      // Reuse the stored key string: one copy per key, not one per version.
      key: prev === undefined ? key : prev.key,
      main: this.main,
      sub: this.changes.length,
      createRevision: prev === undefined ? this.main : prev.createRevision,
      version: prev === undefined ? 1 : prev.version + 1,
      lease,
    };
    this.store.appendRecord(record, value);
    const change: Change = { record, prev };
    this.changes.push(change);
    this.store.trackLease(change);
  }

  /** Deletes the live keys in [key, end); returns their records before the delete, key order. */
  deleteRange(key: KeyString, end: RangeEnd): Record[] {
    this.assertOpen();
    const victims: Record[] = [];
    this.store.visitRange(key, end, (entry, k) => {
      const live = this.store.liveOf(k, entry);
      if (live !== undefined) victims.push(live);
    });
    for (const prev of victims) {
      const record: Record = {
        key: prev.key,
        main: this.main,
        sub: this.changes.length,
        createRevision: 0,
        version: 0,
        lease: 0n,
      };
      this.store.appendRecord(record, EMPTY_BYTES);
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
