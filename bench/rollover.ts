// fs-wal segment rollover: what a save that rolls over waits for, and whether the background
// zero-fill of the next segment delays the saves beside it.
// Run: npx tsx bench/rollover.ts --root <tree> [--segment-mib 16] [--rollovers 6] [--dir /tmp/x]
// <tree> is a checkout whose adapters/storage/fs-wal is measured (this one, or a base build), so
// two builds can be alternated under the same load. Synced saves of 16 entries of 256 bytes, as
// a busy member's Ready loop makes them, until `rollovers` rollovers have happened.
// Prints one JSON line: per rollover save, its ms and the fs calls made while it ran (renames,
// directory fsyncs, fdatasyncs, opens); for the other saves, latency percentiles split by whether
// a segment was being zero-filled in the background at the time.

import * as fsp from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { WalFs } from '../adapters/storage/fs-wal/index.ts';

const { values } = parseArgs({
  options: {
    root: { type: 'string', default: '.' },
    'segment-mib': { type: 'string', default: '16' },
    rollovers: { type: 'string', default: '6' },
    dir: { type: 'string' },
  },
});
const root = resolve(values.root);
const segmentBytes = Number(values['segment-mib']) * 1024 * 1024;
const rolloversWanted = Number(values.rollovers);
const mod = (await import(join(root, 'adapters/storage/fs-wal/index.ts'))) as typeof import('../adapters/storage/fs-wal/index.ts');
const { FsWalStorage, nodeWalFs } = mod;

const dir = values.dir ?? (await fsp.mkdtemp(join(tmpdir(), 'roll-bench-')));
const ops: Array<{ t: number; op: string }> = [];
let zeroFilling = 0;
const fs: WalFs = {
  ...nodeWalFs,
  async open(path, mode) {
    const file = await nodeWalFs.open(path, mode);
    const tmp = path.endsWith('.tmp');
    if (tmp && mode === 'create') zeroFilling++;
    ops.push({ t: performance.now(), op: `open${tmp ? '-tmp' : ''}` });
    return {
      path,
      write: (data, position) => file.write(data, position),
      datasync: () => (ops.push({ t: performance.now(), op: 'datasync' }), file.datasync()),
      sync: () => (ops.push({ t: performance.now(), op: tmp ? 'sync-tmp' : 'sync' }), file.sync()),
      close: async () => {
        await file.close();
        if (tmp && mode === 'create') zeroFilling--;
      },
    };
  },
  rename: (from, to) => (ops.push({ t: performance.now(), op: 'rename' }), nodeWalFs.rename(from, to)),
  syncDir: (d) => (ops.push({ t: performance.now(), op: 'syncDir' }), nodeWalFs.syncDir(d)),
};

const storage = await FsWalStorage.open(dir, { fs, logger: { debug() {}, info() {}, warn: (m) => console.error(m) }, segmentBytes });
await storage.load();
const entryData = new Uint8Array(256).fill(7);
const rollovers: Array<{ ms: number; ops: Record<string, number> }> = [];
const quiet: number[] = [];
const beside: number[] = [];
let index = 0;
let segmentsOpened = 0;
const countOpens = () => ops.filter((o) => o.op === 'open').length;
const started = performance.now();
while (rollovers.length < rolloversWanted) {
  const entries = Array.from({ length: 16 }, () => ({ index: ++index, term: 1, type: 0, data: entryData }));
  const filling = zeroFilling > 0;
  const from = ops.length;
  const opensBefore = countOpens();
  const t0 = performance.now();
  await storage.save({ snapshot: null, entries, hardState: { term: 1, vote: 1, commit: index } }, true);
  const ms = performance.now() - t0;
  if (countOpens() > opensBefore) {
    segmentsOpened++;
    const counts: Record<string, number> = {};
    for (const { op } of ops.slice(from)) counts[op] = (counts[op] ?? 0) + 1;
    rollovers.push({ ms, ops: counts });
  } else (filling ? beside : quiet).push(ms);
}
const wallS = (performance.now() - started) / 1000;
await storage.close();
if (values.dir === undefined) await fsp.rm(dir, { recursive: true, force: true });

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return +(s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN).toFixed(2);
};
const summary = (xs: number[]) => ({
  n: xs.length,
  p50: pct(xs, 50),
  p99: pct(xs, 99),
  max: pct(xs, 100),
  over10ms: xs.filter((x) => x > 10).length,
  over50ms: xs.filter((x) => x > 50).length,
  msOver10: +xs.reduce((sum, x) => sum + Math.max(0, x - 10), 0).toFixed(1),
});
console.log(
  JSON.stringify({
    root,
    segmentMiB: segmentBytes / 1024 / 1024,
    load1: +loadavg()[0].toFixed(1),
    wallS: +wallS.toFixed(1),
    saves: index / 16,
    rolloverMs: rollovers.map((r) => +r.ms.toFixed(1)),
    rolloverOps: rollovers.map((r) => r.ops),
    savesWhileZeroFilling: summary(beside),
    savesOtherwise: summary(quiet),
    segmentsOpened,
  }),
);
