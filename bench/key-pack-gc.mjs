// What a full collection costs for a key index's keys held as one string per key (as the B+tree
// leaves hold them now) against the same keys packed one string per leaf (the lever issue 18 left
// open): builds KEYS keys like bench/txn-fill.mjs's (`bench/fill/<10 digits>`) in leaves of
// LEAF keys, each leaf a keys array and a values array of small integers (bare slab slots), then
// times ROUNDS forced full collections (node --expose-gc; main thread CPU and wall) in each shape.
// Runs each shape in its own process so one's heap does not weigh on the other's.
//   node bench/key-pack-gc.mjs [keys=1000000] [leaf=16] [rounds=5]

import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const [keysArg, leafArg, roundsArg, shape] = process.argv.slice(2);
const keys = Number(keysArg ?? 1_000_000);
const leaf = Number(leafArg ?? 16);
const rounds = Number(roundsArg ?? 5);

if (shape === undefined) {
  for (const s of ['strings', 'packed']) {
    const r = spawnSync(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), String(keys), String(leaf), String(rounds), s], { stdio: 'inherit' });
    if (r.status !== 0) process.exit(r.status ?? 1);
  }
  process.exit(0);
}

const leaves = [];
for (let first = 0; first < keys; first += leaf) {
  const n = Math.min(leaf, keys - first);
  const values = new Array(n);
  for (let i = 0; i < n; i++) values[i] = first + i;
  if (shape === 'strings') {
    const ks = new Array(n);
    for (let i = 0; i < n; i++) ks[i] = `bench/fill/${String(first + i).padStart(10, '0')}`;
    leaves.push({ keys: ks, values });
  } else {
    // One flat string of the leaf's keys and where each ends.
    let text = '';
    const ends = new Uint16Array(n);
    for (let i = 0; i < n; i++) {
      text += `bench/fill/${String(first + i).padStart(10, '0')}`;
      ends[i] = text.length;
    }
    leaves.push({ text: text.split('').join(''), ends, values });
  }
}
globalThis.gc();
const cpu = [];
const wall = [];
for (let r = 0; r < rounds; r++) {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  globalThis.gc();
  wall.push(performance.now() - t0);
  const c = process.cpuUsage(c0);
  cpu.push((c.user + c.system) / 1000);
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const heapMb = process.memoryUsage().heapUsed / 2 ** 20;
const load = (await import('node:os')).loadavg().map((l) => l.toFixed(2)).join(' ');
console.log(`${shape.padEnd(7)} ${keys} keys in leaves of ${leaf}: heap ${heapMb.toFixed(1)} MB; full GC median ${median(wall).toFixed(1)} ms wall, ${median(cpu).toFixed(1)} ms CPU (all threads; rounds ${wall.map((w) => w.toFixed(0)).join(' ')} ms); load ${load}; leaves ${leaves.length}`);
