// An asynchronous backend for Node tests of the plan/fetch/execute path: a MemoryBackend whose
// every commit and read completes a macrotask later, as IndexedDB's do.
import { MemoryBackend } from '../../src/backend/memory.ts';
import { checkBatchIndex } from '../../src/backend/layout.ts';
import type { AsyncBackend, BackendBatch, BackendBucket } from '../../src/seams.ts';

/** An AsyncBackend over a MemoryBackend whose every commit and read completes a macrotask later. */
export class SlowBackend implements AsyncBackend {
  readonly persistent = true;
  private readonly inner = new MemoryBackend();
  private queued = 0;
  private last: Promise<void> = Promise.resolve();
  get appliedIndex(): number {
    return this.inner.appliedIndex;
  }
  commit(batch: BackendBatch): Promise<void> {
    checkBatchIndex(batch, this.queued);
    this.queued = batch.appliedIndex;
    this.last = this.last.then(() => later()).then(() => this.inner.commit(batch));
    return this.last;
  }
  async durable(): Promise<number> {
    await this.last;
    return this.inner.appliedIndex;
  }
  async getMany(bucket: BackendBucket, keys: readonly Uint8Array[]): Promise<(Uint8Array | undefined)[]> {
    await later();
    return keys.map((k) => this.inner.get(bucket, k));
  }
  async rangeChunk(bucket: BackendBucket, start: Uint8Array, end: Uint8Array | null, pairsMax: number): Promise<[Uint8Array, Uint8Array][]> {
    await later();
    const out: [Uint8Array, Uint8Array][] = [];
    this.inner.range(bucket, start, end, (k, v) => {
      out.push([k, v]);
      return out.length < pairsMax;
    });
    return out;
  }
  close(): Promise<void> {
    return this.durable().then(() => undefined);
  }
}


const later = () => new Promise<void>((resolve) => setTimeout(resolve, 0));
