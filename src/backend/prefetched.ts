// The synchronous Backend the store needs, over an AsyncBackend (IndexedDB), without caching the
// values in memory: every read is planned, fetched, then executed (docs/architecture.md, "The
// browser: IndexedDB with asynchronous reads").
//
// `run(plan, execute)`:
// - *plan* runs `plan` in planning mode: every value of the `key` bucket it asks for is recorded
//   and answered with an empty placeholder, every range of it is recorded and visits nothing.
//   Which records a request visits comes from the in-memory index, never from values, so what
//   the plan asks for is what `execute` reads (src/mvcc/plan.ts says why for writes).
// - *fetch* gets what was recorded: values in read transactions of at most `fetchValuesMax`,
//   ranges in chunks of `scanPairsMax`. The plan then runs again with them at hand: a range's
//   records may lead to more values (prev_kv), and the store may have moved meanwhile (a batch
//   left the write buffer). At most `planRoundsMax` rounds.
// - *execute* runs in the same synchronous step as the last plan round, so the store is exactly
//   as planned; a value or range not fetched is a planning bug and fails loudly, never reads as
//   empty. What was fetched is dropped when the run ends: memory holds only one run's values.
// Fetched data is discarded when a batch that deletes from `key` commits meanwhile (a
// compaction or restore): values of a revision never change, but they can disappear.
//
// The small buckets (meta, lease, members, …; a few entries per lease or member) are kept in
// memory, loaded at open and updated at each commit, so the state machine reads them as
// before. The `key` bucket is ranged outside a run only by the restart scan (KvStore.open),
// which open() prepares holding each record without its value; `openingDone()` drops it.
// Adopting a staging area (a streamed snapshot) replaces the content, so it prepares the same
// scan again, with the small buckets, for the store to rebuild its index from.

import { decodeKeyValue, encodeKeyValue, parseRevisionKey } from './layout.ts';
import { BTree } from '../mvcc/btree.ts';
import { fromBinaryString, toBinaryString, type BinaryString } from '../mvcc/bytes.ts';
import {
  backendBuckets,
  type AsyncBackend,
  type Backend,
  type BackendBatch,
  type BackendBucket,
  type BackendReadView,
  type BackendStaging,
} from '../seams.ts';

/** Values fetched per read transaction. */
export const fetchValuesMax = 512;
/** Pairs per read transaction of the restart scan. */
export const scanPairsMax = 2_048;
/** Plan/fetch rounds one run may take before it gives up (the store kept changing under it). */
export const planRoundsMax = 8;

const placeholder = new Uint8Array(0);

export class PrefetchedBackend implements Backend {
  readonly persistent: boolean;
  /** Every bucket but `key`, whole: bucket → (binary-string key → value). */
  private readonly small = new Map<BackendBucket, BTree<BinaryString, Uint8Array>>();
  /** The restart scan: revision key → KeyValue without its value. Null once opening is done. */
  private opening: BTree<BinaryString, Uint8Array> | null;
  /** What the run being planned or executed has at hand; null outside a run's synchronous steps. */
  private fetched: Fetched | null = null;
  /** What the plan being run asked for and was not at hand; null while executing. */
  private wanted: Wanted | null = null;
  /** Counts committed batches that deleted from `key`: fetched data older than one is stale. */
  private deletions = 0;

  private constructor(readonly inner: AsyncBackend) {
    this.persistent = inner.persistent;
    this.opening = null;
    const stage = inner.stage?.bind(inner);
    if (stage !== undefined) {
      this.stage = () => {
        const staging = stage();
        return {
          write: (ops) => staging.write(ops),
          adopt: async (appliedIndex) => {
            await staging.adopt(appliedIndex);
            this.deletions++;
            await this.load();
          },
          abandon: () => staging.abandon(),
        };
      };
    }
  }

  /**
   * Loads the small buckets and prepares the restart scan (each record without its value), in
   * bounded chunks. The caller builds its store, then calls `openingDone()`.
   */
  static async open(inner: AsyncBackend): Promise<PrefetchedBackend> {
    const backend = new PrefetchedBackend(inner);
    await backend.load();
    return backend;
  }

  /**
   * Present when the inner backend stages. Adopting resolves once the new content is live, the
   * small buckets reloaded and the restart scan prepared over it (the caller rebuilds its store,
   * then calls `openingDone()`); data fetched before is stale.
   */
  readonly stage?: () => BackendStaging;

  /** Loads the small buckets and the restart scan from the inner backend, then puts them in place. */
  private async load(): Promise<void> {
    const opening = new BTree<BinaryString, Uint8Array>();
    const small = new Map<BackendBucket, BTree<BinaryString, Uint8Array>>();
    for (const bucket of backendBuckets) {
      const into = bucket === 'key' ? opening : new BTree<BinaryString, Uint8Array>();
      if (bucket !== 'key') small.set(bucket, into);
      await scanChunks(this.inner, bucket, (k, v) => {
        into.set(toBinaryString(k), bucket === 'key' ? withoutValue(v) : v);
      });
    }
    for (const [bucket, tree] of small) this.small.set(bucket, tree);
    this.opening = opening;
  }

  /** Drops the restart scan: from now on the `key` bucket is read only through `read()`. */
  openingDone(): void {
    this.opening = null;
  }

  get appliedIndex(): number {
    return this.inner.appliedIndex;
  }

  get(bucket: BackendBucket, key: Uint8Array): Uint8Array | undefined {
    if (bucket !== 'key') return this.small.get(bucket)!.get(toBinaryString(key));
    const id = toBinaryString(key);
    const value = this.fetched?.values.get(id);
    if (value !== undefined) return value;
    if (this.wanted !== null) {
      this.wanted.values.add(id);
      return placeholder;
    }
    const { main, sub } = parseRevisionKey(key);
    throw new Error(`prefetchedBackend: the value of revision ${main}.${sub} was read without being fetched first (a read outside run(), or a planning bug)`);
  }

  range(bucket: BackendBucket, start: Uint8Array, end: Uint8Array | null, visit: (key: Uint8Array, value: Uint8Array) => boolean | void): void {
    let tree = bucket === 'key' ? this.opening : this.small.get(bucket)!;
    if (bucket === 'key' && this.fetched !== null) {
      const low = toBinaryString(start);
      const high = end === null ? null : toBinaryString(end);
      const covering = this.fetched.ranges.find((r) => r.start <= low && (r.end === null || (high !== null && high <= r.end)));
      if (covering === undefined) {
        if (this.wanted === null) throw new Error('prefetchedBackend: a range of the key bucket was read without being fetched first (a planning bug)');
        this.wanted.ranges.push({ start: low, end: high });
        return;
      }
      tree = covering.pairs;
    }
    if (tree === null) throw new Error('prefetchedBackend: the key bucket is ranged outside run() only by the restart scan');
    const low = toBinaryString(start);
    const high = end === null ? tree.maxKey() : toBinaryString(end);
    if (high === undefined || high < low) return;
    tree.forRange(low, high, end === null, (k, v) => (visit(fromBinaryString(k), v) === false ? { break: true } : undefined));
  }

  commit(batch: BackendBatch): Promise<void> {
    const committed = this.inner.commit(batch);
    if (batch.clear || batch.ops.some((op) => op.bucket === 'key' && op.value === null)) {
      void committed.then(
        () => this.deletions++,
        () => {},
      );
    }
    // The inner backend checked the batch (it throws before queueing a bad one): mirror the small buckets now.
    if (batch.clear) for (const tree of this.small.values()) tree.clear();
    for (const op of batch.ops) {
      if (op.bucket === 'key') continue;
      const tree = this.small.get(op.bucket)!;
      if (op.value === null) tree.delete(toBinaryString(op.key));
      else tree.set(toBinaryString(op.key), op.value.slice());
    }
    return committed;
  }

  durable(): Promise<number> {
    return this.inner.durable();
  }

  /**
   * Inside a run only (a snapshot image is encoded within one): a view reading what the run
   * fetched, valid for that synchronous step.
   */
  view(): BackendReadView {
    if (this.fetched === null) throw new Error('prefetchedBackend: no read view outside run(): an asynchronous backend is read by plan, fetch, execute');
    return { get: (bucket, key) => this.get(bucket, key), range: (bucket, start, end, visit) => this.range(bucket, start, end, visit), release() {} };
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  /**
   * Plan, fetch, execute. `plan` must read what `execute` reads and change nothing (it may run
   * several times); `execute` runs once, synchronously after the last round of `plan`.
   */
  async run<T>(plan: () => void, execute: () => T): Promise<T> {
    if (this.fetched !== null) throw new Error('prefetchedBackend.run: runs do not nest');
    let fetched: Fetched = { values: new Map(), ranges: [], deletions: this.deletions };
    for (let round = 1; ; round++) {
      if (fetched.deletions !== this.deletions) fetched = { values: new Map(), ranges: [], deletions: this.deletions };
      const wanted: Wanted = { values: new Set(), ranges: [] };
      this.fetched = fetched;
      this.wanted = wanted;
      try {
        plan();
      } finally {
        this.wanted = null;
        this.fetched = null;
      }
      if (wanted.values.size === 0 && wanted.ranges.length === 0) {
        this.fetched = fetched;
        try {
          return execute();
        } finally {
          this.fetched = null;
        }
      }
      if (round === planRoundsMax) throw new Error(`prefetchedBackend.run: still missing ${wanted.values.size} values and ${wanted.ranges.length} ranges after ${round} rounds (the store kept changing)`);
      await this.fetch(wanted, fetched);
    }
  }

  /** A read-only request: its own plan. */
  read<T>(request: () => T): Promise<T> {
    return this.run(request, request);
  }

  private async fetch(wanted: Wanted, into: Fetched): Promise<void> {
    const ids = [...wanted.values];
    for (let at = 0; at < ids.length; at += fetchValuesMax) {
      const chunk = ids.slice(at, at + fetchValuesMax);
      const values = await this.inner.getMany('key', chunk.map(fromBinaryString));
      for (const [i, value] of values.entries()) {
        // Absent: deleted since it was planned; `deletions` makes the next round start over.
        if (value !== undefined) into.values.set(chunk[i], value);
      }
    }
    for (const { start, end } of wanted.ranges) {
      const pairs = new BTree<BinaryString, Uint8Array>();
      await scanChunks(this.inner, 'key', (k, v) => pairs.set(toBinaryString(k), v), fromBinaryString(start), end === null ? null : fromBinaryString(end));
      into.ranges.push({ start, end, pairs });
    }
  }
}

interface Fetched {
  /** Revision key → stored KeyValue. */
  values: Map<BinaryString, Uint8Array>;
  /** Whole ranges [start, end) of the key bucket. */
  ranges: { start: BinaryString; end: BinaryString | null; pairs: BTree<BinaryString, Uint8Array> }[];
  /** `deletions` when fetching began. */
  deletions: number;
}

interface Wanted {
  values: Set<BinaryString>;
  ranges: { start: BinaryString; end: BinaryString | null }[];
}

/** Visits every pair of a bucket, a read transaction of at most `scanPairsMax` pairs at a time. */
export async function scanChunks(
  backend: AsyncBackend,
  bucket: BackendBucket,
  visit: (key: Uint8Array, value: Uint8Array) => void,
  start: Uint8Array = new Uint8Array(0),
  end: Uint8Array | null = null,
): Promise<void> {
  let from = start;
  for (;;) {
    const chunk = await backend.rangeChunk(bucket, from, end, scanPairsMax);
    for (const [k, v] of chunk) visit(k, v);
    if (chunk.length < scanPairsMax) return;
    from = successor(chunk[chunk.length - 1][0]);
  }
}

/** The smallest key after `key` in bytewise order. */
function successor(key: Uint8Array): Uint8Array {
  const next = new Uint8Array(key.length + 1);
  next.set(key);
  return next;
}

/** A stored KeyValue without its value: what the restart scan needs of a record. */
function withoutValue(stored: Uint8Array): Uint8Array {
  const kv = decodeKeyValue(stored);
  return kv.value.length === 0 ? stored : encodeKeyValue({ ...kv, value: placeholder });
}
