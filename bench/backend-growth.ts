// The state machine's memory and write rate as the store grows, in process: new keys with
// 256-byte values applied through MvccStateMachine in batches of 1,000 entries (one event turn
// each, so an asynchronous backend's commits land as they would under a member), on the
// in-memory backend (values in the heap) and on LMDB (values in the mapped file).
//   npx tsx bench/backend-growth.ts [keys=1000000]     (re-runs itself under node --expose-gc)

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LmdbBackend } from '../adapters/backend/lmdb.ts';
import { MemoryBackend } from '../src/backend/memory.ts';
import { MvccStateMachine } from '../src/mvcc/index.ts';
import type { Backend } from '../src/seams.ts';

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) {
  const result = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(result.status ?? 1);
}

const keysTotal = Number(process.argv[2] ?? 1_000_000);
const batchEntries = 1_000;
const checkpoints = [0.25, 0.5, 1].map((f) => Math.round(keysTotal * f));
const value = new Uint8Array(256).fill(7);
const encoder = new TextEncoder();
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function heapBytes(): number {
  gc!();
  gc!();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

async function run(name: string, backend: Backend, file: () => number): Promise<void> {
  const base = heapBytes();
  const sm = new MvccStateMachine({ backend });
  let index = 0;
  let t0 = performance.now();
  let from = 0;
  for (const upTo of checkpoints) {
    let pauseMsMax = 0;
    for (let i = from; i < upTo; i += batchEntries) {
      const b0 = performance.now();
      for (let j = i; j < Math.min(upTo, i + batchEntries); j++) {
        sm.apply({ kind: 'put', request: { key: encoder.encode(`bench/p/${j.toString().padStart(10, '0')}`), value } }, { nowMs: 0, index: ++index });
      }
      await turn();
      pauseMsMax = Math.max(pauseMsMax, performance.now() - b0);
    }
    await backend.durable();
    const seconds = (performance.now() - t0) / 1000;
    const heap = heapBytes() - base;
    const rss = process.memoryUsage().rss;
    console.log(
      `| ${name} | ${(upTo / 1e3).toFixed(0)}k | ${Math.round((upTo - from) / seconds).toLocaleString('en')} | ${pauseMsMax.toFixed(0)} | ${Math.round(heap / upTo)} | ${Math.round(rss / 2 ** 20)} | ${Math.round(file() / 2 ** 20)} |`,
    );
    from = upTo;
    t0 = performance.now();
  }
  await backend.close();
}

/** A restart's index rebuild: reopens the LMDB backend `run` left and opens the state machine on it. */
async function reopen(dir: string): Promise<void> {
  const base = heapBytes();
  const t0 = performance.now();
  const backend = LmdbBackend.open(dir);
  const sm = new MvccStateMachine({ backend });
  const seconds = (performance.now() - t0) / 1000;
  const heap = heapBytes() - base;
  const keys = sm.keyCount;
  console.log(`reopen: ${keys.toLocaleString('en')} keys indexed in ${seconds.toFixed(2)} s (${Math.round(keys / seconds).toLocaleString('en')} records/s), heap + buffers ${Math.round(heap / keys)} B/key`);
  await backend.close();
}

console.log('| backend | keys | puts/s (since previous row) | longest 1,000-put batch, ms | heap + buffers per key, B | RSS, MB | file, MB |');
console.log('|---|---:|---:|---:|---:|---:|---:|');
const dir = mkdtempSync(join(tmpdir(), 'meshkv-backend-growth-'));
try {
  const which = process.env.BACKENDS ?? 'lmdb,memory';
  if (which.includes('lmdb')) {
    await run('lmdb', LmdbBackend.open(dir), () => statSync(join(dir, 'data.mdb')).size);
    await reopen(dir);
  }
  if (which.includes('memory')) await run('memory', new MemoryBackend(), () => 0);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
