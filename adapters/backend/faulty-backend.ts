// Disk faults on the state-machine backend, for fault-injection runs: a Backend that passes
// every call to another one (LMDB), except that, while the fault endpoint's disk faults target
// the backend (DiskFaults.hits('backend')), commits wait first (a slow disk) or fail with ENOSPC
// (a full disk: LMDB's MDB_MAP_FULL or a failed write). Reads, views and chunk producers go
// straight through. A member uses it only when started with --experimental-fault-injection.
//
// A refused commit fails the backend for good, as a real LMDB failure does (the Backend contract:
// every later commit rejects too); the member then stops (src/server/member.ts, `failure`) and is
// restarted once space is freed. Nothing reaches LMDB after the refused batch, so the applied
// index LMDB stores never runs ahead of the data it holds.

import type { DiskFaults } from '../storage/fs-wal/faulty-fs.ts';
import type { Backend, BackendBatch, BackendReadView, BackendStaging, ChunkProducer } from '../../src/seams.ts';

export class FaultyBackend implements Backend {
  private failure: Error | null = null;
  /** Batches held back by a commit delay, in call order; handed to the inner backend together. */
  private held: { batch: BackendBatch; resolve: () => void; reject: (err: Error) => void }[] = [];
  /** Resolves once the held batches are handed over; null while none are held. */
  private release: Promise<void> | null = null;

  /** The inner backend's optional capabilities, passed through when it has them. */
  readonly chunkProducer?: (chunkBytesMax: number) => ChunkProducer;
  readonly sizeBytes?: () => number;
  readonly stage?: () => BackendStaging;
  readonly rangeViews?: Backend['rangeViews'];

  constructor(
    private readonly inner: Backend,
    private readonly faults: DiskFaults,
    private readonly path: string,
  ) {
    if (inner.chunkProducer !== undefined) this.chunkProducer = (bytes) => inner.chunkProducer!(bytes);
    if (inner.sizeBytes !== undefined) this.sizeBytes = () => inner.sizeBytes!();
    if (inner.rangeViews !== undefined) this.rangeViews = (bucket, start, end, visit) => inner.rangeViews!(bucket, start, end, visit);
    if (inner.stage !== undefined) {
      this.stage = () => {
        if (this.failure !== null) throw this.failure;
        return this.faultyStage(inner.stage!());
      };
    }
  }

  get appliedIndex(): number {
    return this.inner.appliedIndex;
  }

  get persistent(): boolean {
    return this.inner.persistent;
  }

  get: Backend['get'] = (bucket, key) => this.inner.get(bucket, key);
  range: Backend['range'] = (bucket, start, end, visit) => this.inner.range(bucket, start, end, visit);

  commit(batch: BackendBatch): Promise<void> {
    if (this.failure !== null) return Promise.reject(this.failure);
    if (this.refuses()) {
      this.failure = this.noSpace('commit');
      return Promise.reject(this.failure);
    }
    const delayMs = this.faults.hits('backend') ? this.faults.state.syncDelayMs : 0;
    // Batches keep their call order: while some are held, later ones queue behind them.
    if (delayMs === 0 && this.release === null) return this.inner.commit(batch);
    return new Promise<void>((resolve, reject) => {
      this.held.push({ batch, resolve, reject });
      this.release ??= this.holdFor(Math.max(delayMs, 1));
    });
  }

  /** After `ms`, every held batch goes to the inner backend in one event turn (one LMDB transaction). */
  private async holdFor(ms: number): Promise<void> {
    this.faults.delayedCommits++;
    await new Promise((r) => setTimeout(r, ms));
    const held = this.held;
    this.held = [];
    this.release = null;
    for (const h of held) {
      // A full disk set while they waited refuses them, and everything after.
      if (this.failure === null && this.refuses()) this.failure = this.noSpace('commit');
      if (this.failure !== null) h.reject(this.failure);
      else this.inner.commit(h.batch).then(h.resolve, h.reject);
    }
  }

  async durable(): Promise<number> {
    if (this.release !== null) await this.release;
    if (this.failure !== null) throw this.failure;
    return this.inner.durable();
  }

  view(): BackendReadView {
    return this.inner.view();
  }

  /** Staged writes fail while the disk is full; an adopt waits for held batches (it comes after them) and fails the backend if refused. */
  private faultyStage(staging: BackendStaging): BackendStaging {
    return {
      write: (ops) => (this.refuses() ? Promise.reject(this.noSpace('staged write')) : staging.write(ops)),
      // The chunk writer (a worker on LMDB) stays in use, so torture runs exercise it too.
      ...(staging.writeChunk !== undefined && {
        writeChunk: (pairs: Uint8Array) => (this.refuses() ? Promise.reject(this.noSpace('staged chunk')) : staging.writeChunk!(pairs)),
      }),
      adopt: async (appliedIndex) => {
        if (this.release !== null) await this.release;
        if (this.failure !== null) throw this.failure;
        if (this.refuses()) throw (this.failure = this.noSpace('adopting the staging slot'));
        return staging.adopt(appliedIndex);
      },
      abandon: () => staging.abandon(),
    };
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  private refuses(): boolean {
    return this.faults.state.full && this.faults.hits('backend');
  }

  /** LMDB's failure, as Node words a full disk. */
  private noSpace(what: string): Error {
    this.faults.refusedCommits++;
    const err: NodeJS.ErrnoException = new Error(`lmdbBackend ${this.path}: ${what} failed: ENOSPC: no space left on device (injected by the fault endpoint)`);
    err.code = 'ENOSPC';
    return err;
  }
}
