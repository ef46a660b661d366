// The restart's key-index rebuild in process, without Raft or the WAL: an LMDB backend holding
// KEYS keys (written as bench/txn-fill.mjs writes them: txns of 128 puts of 256-byte values under
// `bench/fill/<10 digits>`) is opened RUNS times, and each open is split into the LMDB environment
// open, a bare scan of the `key` bucket (the backend's share), and the whole state machine open
// (the scan plus decoding and building the index).
//   npx tsx bench/key-index-rebuild.ts [keys=2000000] [runs=3] [dir]   (re-runs itself under node --expose-gc)
// With `dir`, a backend already filled there is reused (and kept); without, a temp dir is filled and removed.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LmdbBackend } from '../adapters/backend/lmdb.ts';
import { encodeKeyValue, revisionKey } from '../src/backend/layout.ts';
import { MvccStateMachine } from '../src/mvcc/index.ts';
import type { BackendOp } from '../src/seams.ts';

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) {
  const result = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(result.status ?? 1);
}

const keysTotal = Number(process.argv[2] ?? 2_000_000);
const runs = Number(process.argv[3] ?? 3);
const dir = process.argv[4] ?? mkdtempSync(join(tmpdir(), 'meshkv-rebuild-'));
const keep = process.argv[4] !== undefined;
const putsPerTxn = 128;
const txnsPerBatch = 100;
const encoder = new TextEncoder();

async function fill(): Promise<void> {
  const backend = LmdbBackend.open(dir);
  const value = new Uint8Array(256).fill(0x76);
  let ops: BackendOp[] = [];
  let main = 1;
  for (let i = 0; i < keysTotal; i++) {
    if (i % putsPerTxn === 0) main++;
    const key = encoder.encode(`bench/fill/${String(i).padStart(10, '0')}`);
    ops.push({ bucket: 'key', key: revisionKey(main, i % putsPerTxn), value: encodeKeyValue({ key, createRevision: main, modRevision: main, version: 1, value, lease: 0n }) });
    if (ops.length === putsPerTxn * txnsPerBatch || i === keysTotal - 1) {
      await backend.commit({ clear: false, ops, appliedIndex: main });
      ops = [];
    }
  }
  await backend.close();
}

const ms = (from: number): number => Math.round(performance.now() - from);

if (!existsSync(join(dir, 'data.mdb'))) {
  const started = performance.now();
  await fill();
  console.log(`filled ${keysTotal} keys in ${ms(started)} ms (${dir})`);
}
for (let run = 1; run <= runs; run++) {
  gc!();
  const heapBefore = process.memoryUsage().heapUsed;
  let started = performance.now();
  const backend = LmdbBackend.open(dir);
  const openMs = ms(started);
  started = performance.now();
  let pairs = 0;
  // The scan the rebuild makes: views where the backend offers them.
  (backend.rangeViews ?? backend.range).call(backend, 'key', new Uint8Array(0), null, () => {
    pairs++;
  });
  const scanMs = ms(started);
  started = performance.now();
  const mvcc = new MvccStateMachine({ backend });
  const rebuildMs = ms(started);
  gc!();
  const heapMb = Math.round((process.memoryUsage().heapUsed - heapBefore) / 2 ** 20);
  console.log(`run ${run}: lmdb open ${openMs} ms, bare scan of ${pairs} records ${scanMs} ms, state machine open ${rebuildMs} ms (${mvcc.keyCount} keys at revision ${mvcc.currentRevision}), index heap ${heapMb} MB; load ${(await import('node:os')).loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  await backend.close();
}
if (!keep) rmSync(dir, { recursive: true, force: true });
