// The in-memory Backend: for unit tests, the simulator, and tabs until the IndexedDB backend
// exists. Memory-only: nothing survives the process, but a new MemoryBackend can take over
// another's committed contents (a simulated restart). Commits apply synchronously, so reads see
// a batch as soon as commit() returns.

import { BTree } from '../mvcc/btree.ts';
import { toBinaryString, fromBinaryString } from '../mvcc/bytes.ts';
import {
  backendBuckets,
  type Backend,
  type BackendBatch,
  type BackendBucket,
  type BackendOp,
  type BackendReadView,
  type BackendReader,
  type BackendStaging,
} from '../seams.ts';
import { checkBatchIndex, encodeU64, metaKeys } from './layout.ts';

/** Bucket → (binary-string key → value). Binary strings compare bytewise (see mvcc/bytes.ts). */
type Buckets = Map<BackendBucket, BTree<string, Uint8Array>>;

function emptyBuckets(): Buckets {
  return new Map(backendBuckets.map((b) => [b, new BTree<string, Uint8Array>()]));
}

function readerOver(buckets: Buckets): BackendReader {
  const tree = (bucket: BackendBucket): BTree<string, Uint8Array> => {
    const t = buckets.get(bucket);
    if (t === undefined) throw new Error(`memoryBackend: unknown bucket ${JSON.stringify(bucket)}`);
    return t;
  };
  return {
    get: (bucket, key) => tree(bucket).get(toBinaryString(key)),
    range(bucket, start, end, visit) {
      const t = tree(bucket);
      const low = toBinaryString(start);
      const high = end === null ? t.maxKey() : toBinaryString(end);
      if (high === undefined || high < low) return;
      t.forRange(low, high, end === null, (k, v) => (visit(fromBinaryString(k), v) === false ? { break: true } : undefined));
    },
  };
}

export class MemoryBackend implements Backend {
  private buckets: Buckets;
  private applied: number;
  /** Reads `buckets`; replaced with it when a staging area is adopted. */
  private reader: BackendReader;
  /** The staging area's buckets; a newer stage() or an adopt() detaches them. */
  private staged: Buckets | null = null;
  private closed = false;

  /** A fresh backend, or one that takes over `previous`'s committed contents (a restart). */
  constructor(previous?: MemoryBackend) {
    this.buckets = previous === undefined ? emptyBuckets() : previous.buckets;
    this.applied = previous?.applied ?? 0;
    this.reader = readerOver(this.buckets);
  }

  get appliedIndex(): number {
    return this.applied;
  }

  readonly persistent = false;

  get(bucket: BackendBucket, key: Uint8Array): Uint8Array | undefined {
    return this.reader.get(bucket, key);
  }

  range(bucket: BackendBucket, start: Uint8Array, end: Uint8Array | null, visit: (key: Uint8Array, value: Uint8Array) => boolean | void): void {
    this.reader.range(bucket, start, end, visit);
  }

  commit(batch: BackendBatch): Promise<void> {
    if (this.closed) return Promise.reject(new Error('memoryBackend: commit after close'));
    checkBatchIndex(batch, this.applied);
    if (batch.clear) for (const tree of this.buckets.values()) tree.clear();
    writeOps(this.buckets, batch.ops);
    this.buckets.get('meta')!.set(toBinaryString(metaKeys.consistentIndex), encodeU64(batch.appliedIndex));
    this.applied = batch.appliedIndex;
    return Promise.resolve();
  }

  durable(): Promise<number> {
    return Promise.resolve(this.applied);
  }

  /** O(1): copy-on-write clones of every bucket. */
  view(): BackendReadView {
    const clones: Buckets = new Map([...this.buckets].map(([b, t]) => [b, t.clone()]));
    return { ...readerOver(clones), release() {} };
  }

  /** A second set of buckets; adopting it swaps it in, in O(1). */
  stage(): BackendStaging {
    const staged = emptyBuckets();
    this.staged = staged;
    const current = (what: string): void => {
      if (this.staged !== staged) throw new Error(`memoryBackend: ${what} on a staging area that was adopted, abandoned or replaced`);
    };
    return {
      write: (ops) => {
        current('write');
        if (ops.some((op) => op.value === null)) return Promise.reject(new Error('memoryBackend: a staging area takes puts only'));
        writeOps(staged, ops);
        return Promise.resolve();
      },
      adopt: (appliedIndex) => {
        current('adopt');
        if (this.closed) return Promise.reject(new Error('memoryBackend: adopt after close'));
        checkBatchIndex({ clear: true, ops: [], appliedIndex }, this.applied);
        staged.get('meta')!.set(toBinaryString(metaKeys.consistentIndex), encodeU64(appliedIndex));
        this.staged = null;
        this.buckets = staged;
        this.reader = readerOver(staged);
        this.applied = appliedIndex;
        return Promise.resolve();
      },
      abandon: () => {
        if (this.staged === staged) this.staged = null;
      },
    };
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
}


function writeOps(buckets: Buckets, ops: readonly BackendOp[]): void {
  for (const op of ops) {
    const tree = buckets.get(op.bucket);
    if (tree === undefined) throw new Error(`memoryBackend: unknown bucket ${JSON.stringify(op.bucket)}`);
    const key = toBinaryString(op.key);
    if (op.value === null) tree.delete(key);
    else tree.set(key, op.value.slice());
  }
}
