// The restart's key-index rebuild in process, without Raft or the WAL: an LMDB backend holding
// KEYS keys (written as bench/txn-fill.mjs writes them: txns of 128 puts of 256-byte values under
// `bench/fill/<10 digits>`) is opened RUNS times, and each open is split into the LMDB environment
// open, a bare scan of the `key` bucket (the backend's share), and the whole state machine open
// (the scan plus decoding and building the index).
//   npx tsx bench/key-index-rebuild.ts [keys=2000000] [runs=3] [dir] [order=ascending]   (re-runs itself under node --expose-gc)
// With `dir`, a backend already filled there is reused (and kept); without, a temp dir is filled and removed.
// `order` is the order keys are first written in: `ascending`; `interleaved`, eight ascending
// runs of 128 keys taking turns (what bench/txn-fill.mjs with eight txns in flight produces); or
// `random`. Each open prints its wall time and the CPU time it took (user + system, all threads).

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
const order = process.argv[5] ?? 'ascending';
if (!['ascending', 'interleaved', 'random'].includes(order)) throw new Error(`order ${order}: ascending, interleaved or random`);
const putsPerTxn = 128;
const txnsPerBatch = 100;
const encoder = new TextEncoder();

async function fill(): Promise<void> {
  const backend = LmdbBackend.open(dir);
  const value = new Uint8Array(256).fill(0x76);
  let ops: BackendOp[] = [];
  let main = 1;
  const ids = keyOrder();
  for (let i = 0; i < keysTotal; i++) {
    if (i % putsPerTxn === 0) main++;
    const key = encoder.encode(`bench/fill/${String(ids[i]).padStart(10, '0')}`);
    ops.push({ bucket: 'key', key: revisionKey(main, i % putsPerTxn), value: encodeKeyValue({ key, createRevision: main, modRevision: main, version: 1, value, lease: 0n }) });
    if (ops.length === putsPerTxn * txnsPerBatch || i === keysTotal - 1) {
      await backend.commit({ clear: false, ops, appliedIndex: main });
      ops = [];
    }
  }
  await backend.close();
}

/** Key numbers in the order they are written. */
function keyOrder(): Uint32Array {
  const ids = new Uint32Array(keysTotal);
  for (let i = 0; i < keysTotal; i++) ids[i] = i;
  if (order === 'interleaved') {
    const runs = 8;
    for (let i = 0; i < keysTotal; i++) {
      const group = Math.floor(i / (runs * putsPerTxn));
      const within = i % (runs * putsPerTxn);
      // Position `within` of the group takes run (within / 128) turn by turn: txn t of the group writes run (t * 3) % 8.
      const run = (Math.floor(within / putsPerTxn) * 3) % runs;
      const id = group * runs * putsPerTxn + run * putsPerTxn + (within % putsPerTxn);
      // A last, partial group is written in order.
      ids[i] = (group + 1) * runs * putsPerTxn <= keysTotal ? id : i;
    }
  } else if (order === 'random') {
    // A fixed LCG, so runs are repeatable.
    let seed = 12345;
    for (let i = keysTotal - 1; i > 0; i--) {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      const j = seed % (i + 1);
      [ids[i], ids[j]] = [ids[j], ids[i]];
    }
  }
  return ids;
}

const ms = (from: number): number => Math.round(performance.now() - from);

if (!existsSync(join(dir, 'data.mdb'))) {
  const started = performance.now();
  await fill();
  console.log(`filled ${keysTotal} keys (${order}) in ${ms(started)} ms (${dir})`);
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
  const cpuBefore = process.cpuUsage();
  const mvcc = new MvccStateMachine({ backend });
  const rebuildMs = ms(started);
  const cpu = process.cpuUsage(cpuBefore);
  const rebuildCpuMs = Math.round((cpu.user + cpu.system) / 1000);
  gc!();
  const heapMb = Math.round((process.memoryUsage().heapUsed - heapBefore) / 2 ** 20);
  console.log(`run ${run}: lmdb open ${openMs} ms, bare scan of ${pairs} records ${scanMs} ms, state machine open ${rebuildMs} ms (CPU ${rebuildCpuMs} ms; ${mvcc.keyCount} keys at revision ${mvcc.currentRevision}), index heap ${heapMb} MB; load ${(await import('node:os')).loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  await backend.close();
}
if (!keep) rmSync(dir, { recursive: true, force: true });
