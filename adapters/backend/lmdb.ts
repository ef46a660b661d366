// The Node backend: LMDB (the `lmdb` package), a memory-mapped copy-on-write B+tree, one named
// database per etcd bucket (layout: src/backend/layout.ts). Node only: never import this from
// src/ or adapters/browser.
//
// Commits are coalesced: every commit() of one event turn runs in one LMDB write transaction,
// queued to lmdb's writer, with the applied index written last inside it, so the stored index
// and the data it describes always change together. lmdb commits without waiting for the disk
// flush (overlapping sync) and flushes in the background; durable() waits for that flush.

import { statSync } from 'node:fs';
import { join } from 'node:path';
import { open, type Database, type RootDatabase } from 'lmdb';
import { checkBatchIndex, decodeU64, encodeU64, metaKeys } from '../../src/backend/layout.ts';
import {
  backendBuckets,
  type Backend,
  type BackendBatch,
  type BackendBucket,
  type BackendReadView,
} from '../../src/seams.ts';

type BucketDb = Database<Uint8Array, Uint8Array>;

export interface LmdbBackendOptions {
  /** Address space reserved for the map; LMDB grows the file within it. */
  mapSizeBytes?: number;
}

/** 64 GiB of address space (not memory): room for any store this project targets. */
export const mapSizeBytesDefault = 64 * 2 ** 30;

export class LmdbBackend implements Backend {
  private readonly env: RootDatabase<Uint8Array, Uint8Array>;
  private readonly dbs: Map<BackendBucket, BucketDb>;
  /** Batches waiting for the scheduled write transaction; drained when it starts. */
  private queue: BackendBatch[] = [];
  /** The write transaction that will drain `queue`, until it starts. */
  private scheduled: Promise<void> | null = null;
  /** The latest write transaction: later ones commit after it. */
  private last: Promise<void> = Promise.resolve();
  private applied: number;
  /** The applied index of the last batch handed to commit(). Invariant: >= applied. */
  private queuedIndex: number;
  private failure: Error | null = null;
  private closed = false;

  private constructor(readonly path: string, options: LmdbBackendOptions) {
    this.env = open<Uint8Array, Uint8Array>({
      path,
      keyEncoding: 'binary',
      encoding: 'binary',
      maxDbs: backendBuckets.length + 1,
      mapSize: options.mapSizeBytes ?? mapSizeBytesDefault,
      // Freed pages are reused before being zeroed; the file holds only this member's data.
      noMemInit: true,
    });
    this.dbs = new Map(backendBuckets.map((b) => [b, this.env.openDB<Uint8Array, Uint8Array>(b, { keyEncoding: 'binary', encoding: 'binary' })]));
    const stored = this.db('meta').getBinary(metaKeys.consistentIndex);
    this.applied = stored === undefined ? 0 : decodeU64(stored);
    this.queuedIndex = this.applied;
  }

  /** Opens (creating if needed) the backend in directory `path`. */
  static open(path: string, options: LmdbBackendOptions = {}): LmdbBackend {
    return new LmdbBackend(path, options);
  }

  get appliedIndex(): number {
    return this.applied;
  }

  readonly persistent = true;

  get(bucket: BackendBucket, key: Uint8Array): Uint8Array | undefined {
    return this.db(bucket).getBinary(key);
  }

  range(bucket: BackendBucket, start: Uint8Array, end: Uint8Array | null, visit: (key: Uint8Array, value: Uint8Array) => boolean | void): void {
    rangeOf(this.db(bucket), start, end, visit, undefined);
  }

  commit(batch: BackendBatch): Promise<void> {
    if (this.closed) return Promise.reject(new Error(`lmdbBackend ${this.path}: commit after close`));
    if (this.failure !== null) return Promise.reject(this.failure);
    checkBatchIndex(batch, this.queuedIndex);
    this.queuedIndex = batch.appliedIndex;
    this.queue.push(batch);
    if (this.scheduled === null) {
      const txn = this.env
        .transaction(() => this.writeQueued())
        .then(
          (index) => {
            this.applied = index;
          },
          (err: unknown) => {
            this.failure ??= new Error(`lmdbBackend ${this.path}: commit failed: ${err instanceof Error ? err.message : String(err)}`);
            throw this.failure;
          },
        );
      this.scheduled = txn;
      this.last = txn;
    }
    return this.scheduled;
  }

  /** Runs inside the write transaction: every queued batch, then the last applied index. */
  private writeQueued(): number {
    const batches = this.queue;
    this.queue = [];
    this.scheduled = null;
    let index = this.applied;
    for (const batch of batches) {
      if (batch.clear) {
        for (const db of this.dbs.values()) for (const key of db.getKeys({ snapshot: false })) db.removeSync(key);
      }
      for (const op of batch.ops) {
        const db = this.db(op.bucket);
        if (op.value === null) db.removeSync(op.key);
        else db.putSync(op.key, op.value);
      }
      index = batch.appliedIndex;
    }
    this.db('meta').putSync(metaKeys.consistentIndex, encodeU64(index));
    return index;
  }

  async durable(): Promise<number> {
    await this.last;
    const index = this.applied;
    await this.env.flushed;
    return index;
  }

  /** An LMDB read transaction: a snapshot of the last committed batch until released. */
  view(): BackendReadView {
    const transaction = this.env.useReadTransaction();
    let released = false;
    const live = (): void => {
      if (released) throw new Error(`lmdbBackend ${this.path}: read view used after release`);
    };
    return {
      get: (bucket, key) => {
        live();
        return this.db(bucket).get(key, { transaction });
      },
      range: (bucket, start, end, visit) => {
        live();
        rangeOf(this.db(bucket), start, end, visit, transaction);
      },
      release: () => {
        if (released) return;
        released = true;
        transaction.done();
      },
    };
  }

  sizeBytes(): number {
    return statSync(join(this.path, 'data.mdb')).size;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.last;
      await this.env.flushed;
    } finally {
      await this.env.close();
    }
  }

  private db(bucket: BackendBucket): BucketDb {
    const db = this.dbs.get(bucket);
    if (db === undefined) throw new Error(`lmdbBackend: unknown bucket ${JSON.stringify(bucket)}`);
    return db;
  }
}

function rangeOf(
  db: BucketDb,
  start: Uint8Array,
  end: Uint8Array | null,
  visit: (key: Uint8Array, value: Uint8Array) => boolean | void,
  transaction: ReturnType<RootDatabase['useReadTransaction']> | undefined,
): void {
  for (const { key, value } of db.getRange({ start, end: end ?? undefined, transaction, snapshot: transaction !== undefined })) {
    if (visit(key, value) === false) return;
  }
}
