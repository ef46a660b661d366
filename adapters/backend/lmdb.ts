// The Node backend: LMDB (the `lmdb` package), a memory-mapped copy-on-write B+tree, one named
// database per etcd bucket (layout: src/backend/layout.ts). Node only: never import this from
// src/ or adapters/browser.
//
// Commits are coalesced: every commit() until the write transaction starts runs in that one
// LMDB write transaction, with the applied index written last inside it, so the stored index
// and the data it describes always change together. The transaction starts `batchIntervalMs`
// after the first commit that is not yet in one (etcd's backend batch interval), or at once
// when the waiting batches reach `batchOpsMax` ops, or when durable(), stage() or close() needs
// it: a write transaction and its flush per applied entry cost more than the entry itself.
// Nothing is lost by the wait: the WAL holds every entry the backend has not yet made durable,
// and the member cuts the WAL only at durable()'s index. lmdb commits without waiting for the
// disk flush (overlapping sync) and flushes in the background; durable() waits for that flush.
//
// Staging (a snapshot streamed from the leader): every bucket exists twice, as two slots of
// named databases (slot 0 under etcd's bucket names, slot 1 under `1.<bucket>`), and the
// `meshkv_live_slot` database names the live one. A stream is written into the other slot;
// adopting it flips that one byte in one write transaction, so a crash before the flip leaves
// the old content live and a crash after it the new one, never a mix. The old slot is emptied
// afterwards, and any slot that is not live is emptied again when the next staging starts.
// A stream's chunks reach the staging slot through a worker thread of their own
// (`writeChunk`, lmdb-staging-worker.ts): it checks, splits and writes them, so the receiving
// member's thread does not spend its time in LMDB puts.

import { statSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { open, type Database, type DatabaseOptions, type RootDatabase } from 'lmdb';
import { checkBatchIndex, decodeU64, encodeU64, metaKeys } from '../../src/backend/layout.ts';
import {
  backendBuckets,
  type Backend,
  type BackendBatch,
  type BackendBucket,
  type BackendOp,
  type BackendReadView,
  type BackendStaging,
  type ChunkProducer,
  type ProducedChunk,
} from '../../src/seams.ts';

type BucketDb = Database<Uint8Array, Uint8Array>;
type Slot = 0 | 1;

const liveSlotKey = new TextEncoder().encode('live');

function slotDbName(slot: Slot, bucket: BackendBucket): string {
  return slot === 0 ? bucket : `1.${bucket}`;
}

export interface LmdbBackendOptions {
  /** Address space reserved for the map; LMDB grows the file within it. */
  mapSizeBytes?: number;
  /**
   * How long committed batches wait to be written together (etcd's --backend-batch-interval).
   * 0: the transaction starts at the first commit and takes what arrives before lmdb runs it.
   */
  batchIntervalMs?: number;
  /** Ops waiting for the write transaction that start it at once (etcd's --backend-batch-limit). */
  batchOpsMax?: number;
}

/** etcd's default backend batch limit. */
export const batchOpsMaxDefault = 10_000;

/** 64 GiB of address space (not memory): room for any store this project targets. */
export const mapSizeBytesDefault = 64 * 2 ** 30;

type ReadTransaction = ReturnType<RootDatabase['useReadTransaction']>;

/**
 * Values handed out as views of lmdb's shared read buffer (or of the map), not copies: valid
 * only until the next read, so only for a reader that copies each value at once (the chunk
 * worker frames pairs straight into its chunk). Ranging 20,000 values of 100 B and 4 KiB took
 * 56-76 ms so, 153-233 ms with lmdb copying each value into a Buffer first.
 */
const valueViews = {
  encode: (v: Uint8Array): Uint8Array => v,
  // Ranges pass the value's size (their buffer may be longer); gets pass options and a buffer of the value's length.
  decode: (bytes: Uint8Array, size: unknown): Uint8Array => (typeof size === 'number' ? bytes.subarray(0, size) : bytes),
};

/**
 * Opens the environment in `path` with every slot's databases: the backend's thread, and the
 * chunk worker's (lmdb-chunk-worker.ts), which must open it with the same options; with
 * `viewValues`, reads return views (see valueViews) instead of copies.
 */
export function openLmdbEnvironment(path: string, mapSizeBytes: number, viewValues = false) {
  const env = open<Uint8Array, Uint8Array>({
    path,
    keyEncoding: 'binary',
    encoding: 'binary',
    maxDbs: 2 * backendBuckets.length + 1,
    mapSize: mapSizeBytes,
    // Freed pages are reused before being zeroed; the file holds only this member's data.
    noMemInit: true,
  });
  // lmdb's options type has no `encoder`; the encoding is a name lmdb does not know, so that it
  // neither copies values (as for 'binary') nor sets up msgpack (as for no encoding).
  const openDb = (name: string, views: boolean): BucketDb =>
    env.openDB<Uint8Array, Uint8Array>(name, views ? ({ keyEncoding: 'binary', encoding: 'value-views', encoder: valueViews } as unknown as DatabaseOptions) : { keyEncoding: 'binary', encoding: 'binary' });
  const slotDbs = (slot: Slot, views: boolean) => new Map(backendBuckets.map((b) => [b, openDb(slotDbName(slot, b), views)]));
  const liveSlotDb = openDb('meshkv_live_slot', viewValues);
  return {
    env,
    slotDbs: [slotDbs(0, viewValues), slotDbs(1, viewValues)] as [Map<BackendBucket, BucketDb>, Map<BackendBucket, BucketDb>],
    /** Each slot's databases again, through handles that read values as views (see valueViews). */
    slotViewDbs: () => [slotDbs(0, true), slotDbs(1, true)] as [Map<BackendBucket, BucketDb>, Map<BackendBucket, BucketDb>],
    liveSlotDb,
    /** The live slot as of `transaction` (or the latest commit). */
    liveSlotOf: (transaction?: ReadTransaction): Slot => ((transaction === undefined ? liveSlotDb.getBinary(liveSlotKey) : liveSlotDb.get(liveSlotKey, { transaction }))?.[0] === 1 ? 1 : 0),
  };
}

/** A read view over `dbs` through `transaction`, until released (which ends the transaction). */
export function readViewOver(dbs: Map<BackendBucket, BucketDb>, transaction: ReadTransaction, path: string): BackendReadView {
  const db = (bucket: BackendBucket): BucketDb => {
    const found = dbs.get(bucket);
    if (found === undefined) throw new Error(`lmdbBackend: unknown bucket ${JSON.stringify(bucket)}`);
    return found;
  };
  let released = false;
  const live = (): void => {
    if (released) throw new Error(`lmdbBackend ${path}: read view used after release`);
  };
  return {
    get: (bucket, key) => {
      live();
      return db(bucket).get(key, { transaction });
    },
    range: (bucket, start, end, visit) => {
      live();
      rangeOf(db(bucket), start, end, visit, transaction);
    },
    release: () => {
      if (released) return;
      released = true;
      transaction.done();
    },
  };
}

/** What lmdb-chunk-worker.ts is started with. */
export interface LmdbChunkWorkerData {
  path: string;
  mapSizeBytes: number;
  chunkBytesMax: number;
}

/** What lmdb-staging-worker.ts is started with. */
export interface LmdbStagingWorkerData {
  path: string;
  mapSizeBytes: number;
  slot: Slot;
  /** An Int32Array's buffer: non-zero once the staging area is adopted, abandoned or replaced. */
  stopFlag: SharedArrayBuffer;
}

/**
 * Starts the worker in `name`.ts or `name`.js beside this module: from the sources (tests, tsx)
 * its TypeScript runs through tsx; from dist/, the compiled JavaScript.
 */
function startWorker(name: string, data: LmdbChunkWorkerData | LmdbStagingWorkerData): Worker {
  const fromSource = import.meta.url.endsWith('.ts');
  const script = new URL(`./${name}${fromSource ? '.ts' : '.js'}`, import.meta.url);
  // Node 20 does not pass `--import tsx` on to a worker's own loader: it registers tsx itself.
  return fromSource
    ? new Worker(`import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(script.href)}); })`, { eval: true, workerData: data })
    : new Worker(script, { workerData: data });
}

type WorkerReply =
  | { kind: 'opened'; appliedIndex: number }
  | { kind: 'chunk'; pairs: Uint8Array; crc: number; last: boolean }
  | { kind: 'end' }
  | { kind: 'error'; message: string };

/**
 * Chunks produced by a worker thread (lmdb-chunk-worker.ts) reading its own read transaction
 * of this environment, begun after every batch committed so far.
 */
class WorkerChunkProducer implements ChunkProducer {
  private worker: Worker | null = null;
  private opened: Promise<number> | null = null;
  private readonly waiting: { resolve: (c: ProducedChunk | null) => void; reject: (e: Error) => void }[] = [];
  private failure: Error | null = null;
  private released = false;

  constructor(private readonly data: LmdbChunkWorkerData) {}

  open(): Promise<number> {
    if (this.opened !== null) return this.opened;
    const worker = startWorker('lmdb-chunk-worker', this.data);
    this.worker = worker;
    this.opened = new Promise<number>((resolve, reject) => {
      const failed = (err: Error): void => {
        this.failure ??= new Error(`snapshot chunk worker for ${this.data.path}: ${err.message}`);
        reject(this.failure);
        for (const w of this.waiting.splice(0)) w.reject(this.failure);
      };
      worker.on('message', (m: WorkerReply) => {
        if (m.kind === 'opened') resolve(m.appliedIndex);
        else if (m.kind === 'error') failed(new Error(m.message));
        else this.waiting.shift()?.resolve(m.kind === 'end' ? null : { pairs: m.pairs, crc: m.crc, last: m.last });
      });
      worker.on('error', failed);
      worker.on('exit', (code) => {
        if (!this.released) failed(new Error(`exited with code ${code}`));
      });
    });
    return this.opened;
  }

  next(): Promise<ProducedChunk | null> {
    if (this.released) return new Promise<never>(() => {});
    if (this.failure !== null) return Promise.reject(this.failure);
    if (this.worker === null) return Promise.reject(new Error('snapshot chunk worker: next() before open()'));
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.worker!.postMessage({ kind: 'next' });
    });
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    this.waiting.length = 0;
    // The worker ends its read transaction and exits by itself (see lmdb-chunk-worker.ts).
    this.worker?.postMessage({ kind: 'close' });
    this.worker?.unref();
  }
}

type StagingReply = { kind: 'written'; crc: number } | { kind: 'failed'; message: string } | { kind: 'error'; message: string };

/**
 * The staging slot's writer thread (lmdb-staging-worker.ts), started on the first chunk once
 * the slot is emptied (`ready`); chunks go to it in call order and are answered in order.
 */
class ChunkStager {
  private worker: Worker | null = null;
  private readonly stopFlag = new Int32Array(new SharedArrayBuffer(4));
  private readonly waiting: { resolve: (crc: number) => void; reject: (e: Error) => void }[] = [];
  private failure: Error | null = null;

  constructor(
    private readonly data: Omit<LmdbStagingWorkerData, 'stopFlag'>,
    private readonly ready: Promise<void>,
  ) {}

  /** Chunks handed over and not yet answered. */
  get pending(): number {
    return this.waiting.length;
  }

  write(pairs: Uint8Array): Promise<number> {
    if (this.failure !== null) return Promise.reject(this.failure);
    // The pairs' buffer is transferred to the worker: taken as it is when the pairs span all of
    // it (the TCP transport's StreamChunk frames; BackendStaging.writeChunk's contract), else a
    // copy of the pairs alone, since posting a view into a larger frame buffer would clone it whole.
    const copy = pairs.byteOffset === 0 && pairs.byteLength === pairs.buffer.byteLength && pairs.buffer instanceof ArrayBuffer ? pairs : pairs.slice();
    // The thread starts while the slot is emptied; the chunk goes to it once it is.
    const worker = this.started();
    return new Promise<number>((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.ready.then(
        () => {
          if (this.failure === null && Atomics.load(this.stopFlag, 0) === 0) worker.postMessage({ kind: 'chunk', pairs: copy }, [copy.buffer as ArrayBuffer]);
        },
        (err: unknown) => this.fail(err instanceof Error ? err : new Error(String(err))),
      );
    });
  }

  private started(): Worker {
    if (this.worker !== null) return this.worker;
    const worker = startWorker('lmdb-staging-worker', { ...this.data, stopFlag: this.stopFlag.buffer as SharedArrayBuffer });
    this.worker = worker;
    worker.on('message', (m: StagingReply) => {
      if (m.kind === 'written') this.waiting.shift()?.resolve(m.crc);
      else if (m.kind === 'failed') {
        this.failure ??= new Error(`lmdbBackend ${this.data.path}: a staged chunk failed: ${m.message}`);
        this.waiting.shift()?.reject(this.failure);
      } else this.fail(new Error(`lmdbBackend ${this.data.path}: the staging worker failed: ${m.message}`));
    });
    worker.on('error', (err) => this.fail(new Error(`lmdbBackend ${this.data.path}: the staging worker failed: ${err.message}`)));
    worker.on('exit', (code) => {
      if (Atomics.load(this.stopFlag, 0) === 0) this.fail(new Error(`lmdbBackend ${this.data.path}: the staging worker exited with code ${code}`));
    });
    return worker;
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const w of this.waiting.splice(0)) w.reject(this.failure);
  }

  /** No chunk is written after this (see lmdb-staging-worker.ts); the thread closes and exits. Idempotent. */
  stop(): void {
    if (Atomics.load(this.stopFlag, 0) !== 0) return;
    Atomics.store(this.stopFlag, 0, 1);
    this.fail(new Error(`lmdbBackend ${this.data.path}: the staging area was adopted, abandoned or replaced`));
    this.worker?.postMessage({ kind: 'close' });
    this.worker?.unref();
  }
}

export class LmdbBackend implements Backend {
  private readonly env: RootDatabase<Uint8Array, Uint8Array>;
  /** Each slot's databases, one per bucket. */
  private readonly slots: [Map<BackendBucket, BucketDb>, Map<BackendBucket, BucketDb>];
  /** The same databases through handles that hand out values as views: for rangeViews only. */
  private readonly viewSlots: [Map<BackendBucket, BucketDb>, Map<BackendBucket, BucketDb>];
  /** Which slot holds the live content (the other one stages). */
  private liveSlot: Slot;
  private readonly liveSlotDb: BucketDb;
  /** The staging area in use, if any: only it may write to the other slot. */
  private staging: BackendStaging | null = null;
  /** The staging area's chunk writer, once it has one; stopped when the area ends or is replaced. */
  private stager: ChunkStager | null = null;
  /** Batches for the write transaction not yet running; a new array once it runs (or a staging area is adopted). */
  private queue: BackendBatch[] = [];
  /** Ops in `queue`. */
  private queuedOps = 0;
  /**
   * Settles with the write transaction that will write `queue`, until that transaction runs;
   * `started` once it is handed to lmdb (before that it waits for batchIntervalMs).
   */
  private scheduled: (Deferred & { started: boolean }) | null = null;
  private batchTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly batchIntervalMs: number;
  private readonly batchOpsMax: number;
  /** The latest write transaction: later ones commit after it. */
  private last: Promise<void> = Promise.resolve();
  private applied: number;
  /** The applied index of the last batch handed to commit(). Invariant: >= applied. */
  private queuedIndex: number;
  private failure: Error | null = null;
  private closed = false;
  private readonly mapSizeBytes: number;
  private readonly writers: WriteThreads;

  private constructor(readonly path: string, options: LmdbBackendOptions) {
    this.mapSizeBytes = options.mapSizeBytes ?? mapSizeBytesDefault;
    this.batchIntervalMs = options.batchIntervalMs ?? 0;
    this.batchOpsMax = options.batchOpsMax ?? batchOpsMaxDefault;
    if (!(this.batchIntervalMs >= 0) || !(this.batchOpsMax >= 1)) {
      throw new Error(`lmdbBackend ${path}: batchIntervalMs (${this.batchIntervalMs}) must be >= 0 and batchOpsMax (${this.batchOpsMax}) >= 1`);
    }
    const opened = openLmdbEnvironment(path, this.mapSizeBytes);
    this.env = opened.env;
    this.writers = new WriteThreads(opened.env);
    this.slots = opened.slotDbs;
    this.viewSlots = opened.slotViewDbs();
    this.liveSlotDb = opened.liveSlotDb;
    this.liveSlot = opened.liveSlotOf();
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

  /**
   * A scan that copies nothing: lmdb's copy of every value into a Buffer of its own took two
   * thirds of a bare scan of 2 M records of 256-byte values (12.8 s against 4.4 s on this loaded
   * machine, docs/benchmarks.md), and the key-index rebuild at open needs none of the values.
   */
  rangeViews(bucket: BackendBucket, start: Uint8Array, end: Uint8Array | null, visit: (key: Uint8Array, value: Uint8Array) => boolean | void): void {
    const db = this.viewSlots[this.liveSlot].get(bucket);
    if (db === undefined) throw new Error(`lmdbBackend: unknown bucket ${JSON.stringify(bucket)}`);
    rangeOf(db, start, end, visit, undefined);
  }

  commit(batch: BackendBatch): Promise<void> {
    if (this.closed) return Promise.reject(new Error(`lmdbBackend ${this.path}: commit after close`));
    if (this.failure !== null) return Promise.reject(this.failure);
    checkBatchIndex(batch, this.queuedIndex);
    this.queuedIndex = batch.appliedIndex;
    this.queue.push(batch);
    this.queuedOps += batch.ops.length;
    if (this.scheduled === null) {
      this.scheduled = { ...deferred(), started: false };
      if (this.batchIntervalMs === 0) this.startWrite();
      else this.batchTimer = setTimeout(() => this.startWrite(), this.batchIntervalMs);
    } else if (this.queuedOps >= this.batchOpsMax) this.startWrite();
    return this.scheduled.promise;
  }

  /** Hands the waiting batches' write transaction to lmdb now, if it is still waiting for batchIntervalMs. */
  private startWrite(): void {
    const scheduled = this.scheduled;
    if (scheduled === null || scheduled.started) return;
    scheduled.started = true;
    if (this.batchTimer !== null) clearTimeout(this.batchTimer);
    this.batchTimer = null;
    const batches = this.queue;
    const dbs = this.dbs;
    const txn = this.env
      .transaction(() => this.writeQueued(batches, dbs))
      .then(
        (index) => {
          this.applied = index;
        },
        (err: unknown) => {
          this.failure ??= new Error(`lmdbBackend ${this.path}: commit failed: ${err instanceof Error ? err.message : String(err)}`);
          throw this.failure;
        },
      );
    txn.then(scheduled.resolve, scheduled.reject);
    this.last = txn;
  }

  /** Runs inside the write transaction: the batches queued for it, then the last applied index. */
  private writeQueued(batches: BackendBatch[], dbs: Map<BackendBucket, BucketDb>): number {
    // Commits made until now joined `batches`; later ones wait for the next transaction.
    if (this.queue === batches) {
      this.queue = [];
      this.queuedOps = 0;
      this.scheduled = null;
    }
    let index = this.applied;
    for (const batch of batches) {
      if (batch.clear) {
        for (const db of dbs.values()) for (const key of db.getKeys({ snapshot: false })) db.removeSync(key);
      }
      writeOps(dbs, batch.ops);
      index = batch.appliedIndex;
    }
    dbs.get('meta')!.putSync(metaKeys.consistentIndex, encodeU64(index));
    return index;
  }

  /**
   * The slot that is not live, emptied first (a crash or an abandoned stream may have left pairs
   * there). Writes and the adopt run as LMDB write transactions in call order with commits
   * (a commit waiting for batchIntervalMs starts first).
   */
  stage(): BackendStaging {
    if (this.closed) throw new Error(`lmdbBackend ${this.path}: stage after close`);
    if (this.failure !== null) throw this.failure;
    this.startWrite();
    const slot: Slot = this.liveSlot === 0 ? 1 : 0;
    const dbs = this.slots[slot];
    // Before the emptying is queued: the previous area's worker writes nothing after it.
    this.stopStager();
    const emptied = this.env.transaction(() => {
      for (const db of dbs.values()) db.clearSync();
    });
    // A staged write (or the emptying) that failed: adopting must not flip to a slot missing it.
    let writeFailure: Error | null = null;
    emptied.catch((err: unknown) => {
      writeFailure ??= new Error(`lmdbBackend ${this.path}: emptying the staging slot failed: ${err instanceof Error ? err.message : String(err)}`);
    });
    let written: 'ops' | 'chunks' | null = null;
    const writing = (how: 'ops' | 'chunks'): void => {
      if (written !== null && written !== how) throw new Error(`lmdbBackend ${this.path}: a staging area is written through write() or writeChunk(), not both`);
      written = how;
    };
    const staging: BackendStaging = {
      write: (ops) => {
        this.checkStaging(staging, 'write');
        writing('ops');
        if (ops.some((op) => op.value === null)) return Promise.reject(new Error(`lmdbBackend ${this.path}: a staging area takes puts only`));
        this.startWrite();
        return this.env.transaction(() => writeOps(dbs, ops)).then(
          () => undefined,
          (err: unknown) => {
            writeFailure ??= new Error(`lmdbBackend ${this.path}: a staged write failed: ${err instanceof Error ? err.message : String(err)}`);
            throw writeFailure;
          },
        );
      },
      writeChunk: (pairs) => {
        this.checkStaging(staging, 'writeChunk');
        writing('chunks');
        this.stager ??= new ChunkStager({ path: this.path, mapSizeBytes: this.mapSizeBytes, slot }, emptied);
        return this.stager.write(pairs).catch((err: unknown) => {
          writeFailure ??= err instanceof Error ? err : new Error(String(err));
          throw writeFailure;
        });
      },
      adopt: async (appliedIndex) => {
        this.checkStaging(staging, 'adopt');
        checkBatchIndex({ clear: true, ops: [], appliedIndex }, this.applied);
        // A failed staged write known now refuses the adopt with nothing moved; one that fails
        // later is caught inside the flip's transaction, below.
        if (writeFailure !== null) throw writeFailure;
        // A chunk still being written could land in the slot after it went live.
        if (this.stager !== null && this.stager.pending > 0) throw new Error(`lmdbBackend ${this.path}: adopt with ${this.stager.pending} staged chunks still being written`);
        this.stopStager();
        this.startWrite();
        // Everything that decides where later commits go switches here, before the first await: a commit
        // called while the flip is in flight must land on the new slot, after the flip (lmdb runs
        // write transactions in call order). Batches queued before stay in their transaction,
        // which writes the old slot before the flip and is discarded with it.
        const old = this.dbs;
        this.staging = null;
        this.queue = [];
        this.queuedOps = 0;
        this.scheduled = null;
        this.liveSlot = slot;
        this.queuedIndex = appliedIndex;
        const flip = this.env.transaction(() => {
          if (writeFailure !== null) throw writeFailure;
          dbs.get('meta')!.putSync(metaKeys.consistentIndex, encodeU64(appliedIndex));
          this.liveSlotDb.putSync(liveSlotKey, Uint8Array.of(slot));
        });
        const flipped = flip.then(
          () => {
            // Later commits' transactions run after this, so their indexes overwrite it in order.
            this.applied = appliedIndex;
          },
          (err: unknown) => {
            // The in-memory slot already moved and the file did not: nothing more may be written.
            throw this.failStaging(err, 'adopting the staging slot');
          },
        );
        // Read views taken before still read the old slot through their own transactions.
        const emptiedOld = this.env.transaction(() => {
          if (writeFailure !== null) return;
          for (const db of old.values()) db.clearSync();
        });
        this.last = Promise.all([flipped, emptiedOld]).then(() => undefined);
        await flipped;
        await this.env.flushed;
      },
      abandon: () => {
        if (this.staging !== staging) return;
        this.staging = null;
        this.stopStager();
      },
    };
    this.staging = staging;
    return staging;
  }

  private checkStaging(staging: BackendStaging, what: string): void {
    if (this.staging !== staging) throw new Error(`lmdbBackend ${this.path}: ${what} on a staging area that was adopted, abandoned or replaced`);
    if (this.closed) throw new Error(`lmdbBackend ${this.path}: ${what} on a staging area after close`);
    if (this.failure !== null) throw this.failure;
  }

  private stopStager(): void {
    this.stager?.stop();
    this.stager = null;
  }

  /** Marks the backend failed (every later commit rejects with it) and returns the error. */
  private failStaging(err: unknown, what: string): Error {
    this.failure ??= new Error(`lmdbBackend ${this.path}: ${what} failed: ${err instanceof Error ? err.message : String(err)}`);
    return this.failure;
  }

  async durable(): Promise<number> {
    this.startWrite();
    await this.last;
    const index = this.applied;
    await this.env.flushed;
    return index;
  }

  /** An LMDB read transaction: a snapshot of the last committed batch until released. */
  view(): BackendReadView {
    return readViewOver(this.dbs, this.env.useReadTransaction(), this.path);
  }

  /** A worker thread reads, frames and checksums the chunks (lmdb-chunk-worker.ts). */
  chunkProducer(chunkBytesMax: number): ChunkProducer {
    if (this.closed) throw new Error(`lmdbBackend ${this.path}: chunkProducer after close`);
    return new WorkerChunkProducer({ path: this.path, mapSizeBytes: this.mapSizeBytes, chunkBytesMax });
  }

  sizeBytes(): number {
    return statSync(join(this.path, 'data.mdb')).size;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.startWrite();
    this.stopStager();
    try {
      await this.last;
      await this.env.flushed;
    } finally {
      await this.writers.idle();
      await this.env.close();
    }
  }

  private get dbs(): Map<BackendBucket, BucketDb> {
    return this.slots[this.liveSlot];
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

/**
 * Counts lmdb's write threads still running, so that close() waits for them. lmdb 3.5.6 reports
 * a commit (and so settles `committed`, `flushed` and every write's promise) before its write
 * thread is done with the environment: WriteWorker::Write notifies '__committed__' listeners
 * after releasing the write lock. Closing in that window freed what the thread still read, and
 * the process died of SIGFPE (test/backend/store-on-lmdb.test.ts, 1 run in 3 under load). Each
 * thread's end is the completion call of its `startWriting`: any status but lmdb's two progress
 * statuses (1: committed, 2: a synchronous transaction may run), as lmdb's own callback reads them.
 */
class WriteThreads {
  private running = 0;
  private waiting: (() => void)[] = [];

  constructor(root: RootDatabase<Uint8Array, Uint8Array>) {
    type StartWriting = (address: number, callback: (status: number) => unknown) => void;
    const native = (root as unknown as { env: { startWriting: StartWriting } }).env;
    const start = native.startWriting.bind(native);
    const counted: StartWriting = (address, callback) => {
      this.running++;
      start(address, (status) => {
        const result = callback(status);
        if (status !== 1 && status !== 2 && --this.running === 0) for (const resolve of this.waiting.splice(0)) resolve();
        return result;
      });
    };
    // The native method is read-only on its prototype; the instance takes its own.
    Object.defineProperty(native, 'startWriting', { value: counted });
  }

  /** Settles once no write thread runs. */
  idle(): Promise<void> {
    return this.running === 0 ? Promise.resolve() : new Promise((resolve) => this.waiting.push(resolve));
  }
}

/** Writes `ops` inside the caller's write transaction (here, and in lmdb-staging-worker.ts). */
export function writeOps(dbs: Map<BackendBucket, BucketDb>, ops: readonly BackendOp[]): void {
  for (const op of ops) {
    const db = dbs.get(op.bucket);
    if (db === undefined) throw new Error(`lmdbBackend: unknown bucket ${JSON.stringify(op.bucket)}`);
    if (op.value === null) db.removeSync(op.key);
    else db.putSync(op.key, op.value);
  }
}

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
  reject: (err: unknown) => void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}
