// The synchronous Backend the store needs, over an AsyncBackend (IndexedDB), without caching the
// values in memory: reads are planned, fetched, then executed (docs/architecture.md, "The
// browser: IndexedDB with asynchronous reads").
//
// - `read(request)` runs a read-only request three steps at a time: *plan* runs it once in
//   planning mode, where every value the store asks for is recorded and answered with an empty
//   placeholder (the set of records a read visits comes from the in-memory index, never from
//   values, so the plan is what the real run reads); *fetch* gets those values from the backend
//   in read transactions of at most `fetchValuesMax`; *execute* runs the request again against
//   the fetched values. Anything the store changed during the fetch (a batch that committed and
//   left the write buffer, a newer current revision) shows up as a value not fetched: it is
//   fetched and the request runs again, at most `readAttemptsMax` times.
// - Outside `read`, a value the store asks for is a planning bug and fails loudly; it never
//   reads as empty.
// - The small buckets (meta, lease, members, …; a few entries per lease or member) are kept in
//   memory, loaded at open and updated at each commit, so the state machine reads them as before.
// - The `key` bucket is ranged only by the restart scan (KvStore.open), which open() prepares in
//   chunks holding each record without its value; `openingDone()` drops it.

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
} from '../seams.ts';

/** Values fetched per read transaction. */
export const fetchValuesMax = 512;
/** Pairs per read transaction of the restart scan. */
export const scanPairsMax = 2_048;
/** Plan/fetch rounds one read may take before it gives up (the store kept changing under it). */
export const readAttemptsMax = 8;

const placeholder = new Uint8Array(0);

export class PrefetchedBackend implements Backend {
  readonly persistent: boolean;
  /** Every bucket but `key`, whole: bucket → (binary-string key → value). */
  private readonly small = new Map<BackendBucket, BTree<BinaryString, Uint8Array>>();
  /** The restart scan: revision key → KeyValue without its value. Null once opening is done. */
  private opening: BTree<BinaryString, Uint8Array> | null;
  /** Values of the read being executed (revision key → stored KeyValue); null outside one. */
  private fetched: Map<BinaryString, Uint8Array> | null = null;
  /** Revisions the read being planned asked for; null outside planning. */
  private wanted: Set<BinaryString> | null = null;

  private constructor(readonly inner: AsyncBackend, opening: BTree<BinaryString, Uint8Array>) {
    this.persistent = inner.persistent;
    this.opening = opening;
    for (const bucket of backendBuckets) if (bucket !== 'key') this.small.set(bucket, new BTree());
  }

  /**
   * Loads the small buckets and prepares the restart scan (each record without its value), in
   * bounded chunks. The caller builds its store, then calls `openingDone()`.
   */
  static async open(inner: AsyncBackend): Promise<PrefetchedBackend> {
    const backend = new PrefetchedBackend(inner, new BTree());
    for (const bucket of backendBuckets) {
      const into = bucket === 'key' ? backend.opening! : backend.small.get(bucket)!;
      await scanChunks(inner, bucket, (k, v) => {
        into.set(toBinaryString(k), bucket === 'key' ? withoutValue(v) : v);
      });
    }
    return backend;
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
    const value = this.fetched?.get(id);
    if (value !== undefined) return value;
    if (this.wanted !== null) {
      this.wanted.add(id);
      return placeholder;
    }
    const { main, sub } = parseRevisionKey(key);
    throw new Error(`prefetchedBackend: the value of revision ${main}.${sub} was read without being fetched first (a read outside read(), or a planning bug)`);
  }

  range(bucket: BackendBucket, start: Uint8Array, end: Uint8Array | null, visit: (key: Uint8Array, value: Uint8Array) => boolean | void): void {
    const tree = bucket === 'key' ? this.opening : this.small.get(bucket)!;
    if (tree === null) throw new Error('prefetchedBackend: the key bucket is ranged only by the restart scan; read history through rangeChunk');
    const low = toBinaryString(start);
    const high = end === null ? tree.maxKey() : toBinaryString(end);
    if (high === undefined || high < low) return;
    tree.forRange(low, high, end === null, (k, v) => (visit(fromBinaryString(k), v) === false ? { break: true } : undefined));
  }

  commit(batch: BackendBatch): Promise<void> {
    const committed = this.inner.commit(batch);
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

  view(): BackendReadView {
    throw new Error('prefetchedBackend: no synchronous read views over an asynchronous backend');
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  /**
   * Plan, fetch, execute: runs the read-only `request` against the values it reads, fetched
   * from the backend first. `request` must not change the store (it may run several times).
   */
  async read<T>(request: () => T): Promise<T> {
    if (this.fetched !== null || this.wanted !== null) throw new Error('prefetchedBackend.read: reads do not nest');
    const values = new Map<BinaryString, Uint8Array>();
    for (let attempt = 1; ; attempt++) {
      const wanted = new Set<BinaryString>();
      this.fetched = values;
      this.wanted = wanted;
      let result: T;
      try {
        result = request();
      } finally {
        this.fetched = null;
        this.wanted = null;
      }
      if (wanted.size === 0) return result;
      if (attempt === readAttemptsMax) throw new Error(`prefetchedBackend.read: still missing ${wanted.size} values after ${attempt} rounds (the store kept changing)`);
      await this.fetch([...wanted], values);
    }
  }

  private async fetch(ids: BinaryString[], into: Map<BinaryString, Uint8Array>): Promise<void> {
    for (let at = 0; at < ids.length; at += fetchValuesMax) {
      const chunk = ids.slice(at, at + fetchValuesMax);
      const values = await this.inner.getMany('key', chunk.map(fromBinaryString));
      for (const [i, value] of values.entries()) {
        // Absent: compacted since it was planned. The next run no longer reads it (the index
        // dropped it) or fails on it as the synchronous path would.
        if (value !== undefined) into.set(chunk[i], value);
      }
    }
  }
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
