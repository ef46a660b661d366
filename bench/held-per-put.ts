// What the state machine holds per put until the backend commits it (issue 18's small-store p99:
// a member's puts wait ~100 ms for LMDB's commit, long enough to survive two scavenges, so
// whatever a put holds until then is promoted to V8's old generation). In process, no load
// dependence: N puts (new keys, VALUE-byte values, each request a fresh object as the decoder
// makes it) are applied and handed to a backend that holds every commit; the heap (and array
// buffer bytes, off the heap) is measured after full collections with the commits pending and
// again once they are done. The difference per put is what a put holds for the commit.
// Entries are applied as a member applies a Ready of 64: commits deferred, then one commit.
//   npx tsx bench/held-per-put.ts [N=20000] [VALUE=256]   (re-runs itself under --expose-gc)
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { MemoryBackend } from '../src/backend/memory.ts';
import { MvccStateMachine } from '../src/mvcc/index.ts';
import type { BackendBatch } from '../src/seams.ts';

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) {
  const result = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(result.status ?? 1);
}

/**
 * A memory backend whose commits wait until `release`, as LMDB's wait for their transaction;
 * like LMDB, every batch until then shares one transaction and one promise.
 */
class HeldBackend extends MemoryBackend {
  private held: BackendBatch[] = [];
  private pending: { promise: Promise<void>; done: () => void } | null = null;
  override commit(batch: BackendBatch): Promise<void> {
    this.held.push(batch);
    if (this.pending === null) {
      let done!: () => void;
      const promise = new Promise<void>((resolve) => (done = resolve));
      this.pending = { promise, done };
    }
    return this.pending.promise;
  }
  async release(): Promise<void> {
    for (const batch of this.held.splice(0)) await super.commit(batch);
    this.pending?.done();
    this.pending = null;
  }
}

const n = Number(process.argv[2] ?? 20000);
const valueBytes = Number(process.argv[3] ?? 256);
const encoder = new TextEncoder();
const measure = () => {
  gc!();
  gc!();
  const m = process.memoryUsage();
  return { heap: m.heapUsed, buffers: m.arrayBuffers };
};

const backend = new HeldBackend();
const sm = new MvccStateMachine({ backend });
const ctx = { nowMs: 0 };
// Warm up (code, the index's first nodes), committed.
for (let i = 0; i < 1000; i++) {
  sm.apply({ kind: 'put', request: { key: encoder.encode(`warm/${i}`), value: new Uint8Array(valueBytes).fill(i) } }, ctx);
  sm.markApplied(i + 1);
}
await backend.release();
await new Promise((r) => setTimeout(r, 10));
const before = measure();
// As the member applies a Ready: the entries with their commit deferred, then one commit.
const ready = 64;
for (let i = 0; i < n; i++) {
  sm.apply({ kind: 'put', request: { key: encoder.encode(`key/${String(i).padStart(8, '0')}`), value: new Uint8Array(valueBytes).fill(i) } }, { nowMs: 0, index: 1001 + i, deferCommit: true });
  if ((i + 1) % ready === 0 || i === n - 1) sm.markApplied(1001 + i);
}
const pending = measure();
await backend.release();
await new Promise((r) => setTimeout(r, 10));
const after = measure();
const per = (a: number, b: number) => Math.round((a - b) / n);
console.log(
  `${n} puts of ${valueBytes}-byte values: held until the commit ${per(pending.heap, after.heap)} B heap + ${per(pending.buffers, after.buffers)} B array buffers per put; ` +
    `kept after it ${per(after.heap, before.heap)} B heap + ${per(after.buffers, before.buffers)} B array buffers per put (the key index and the memory backend's copy)`,
);
