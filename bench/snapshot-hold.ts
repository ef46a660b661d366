// A snapshot's hold on the caller of fs-wal, with the purge it allows: what a member's Ready loop
// waits for from saveSnapshot() to the end of the synced save() after it, when the snapshot covers
// whole segments. Builds are compared in interleaved rounds (each a checkout with this file's
// imports: adapters/storage/fs-wal and src/), so both see the same machine load.
//
//   npx tsx bench/snapshot-hold.ts [--segments 8] [--rounds 6] [--dir /path/on/the/disk] NAME=ROOT...
//
// Per round and build: 8 segments of 1 MiB filled with synced batches of 16 entries of 4 KiB,
// a snapshot prepared beside them (SnapshotPreparation, as the member does), then timed:
// saveSnapshot(), and the next synced save() of one entry. Counted through the fs seam: WAL
// fdatasyncs and fsyncs, directory fsyncs and segment unlinks completed from saveSnapshot's call
// until the next save returned (what the caller waited for, plus any background work that ended
// meanwhile), and those completed after it, until close() returned (background work the caller
// did not wait for). Prints one markdown row per build: medians over rounds.

import * as fsp from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { segments: { type: 'string', default: '8' }, rounds: { type: 'string', default: '6' }, dir: { type: 'string' } },
});
const segments = Number(values.segments);
const rounds = Number(values.rounds);
const segmentBytes = 1024 * 1024;
const entryBytes = 4096;

interface Build {
  name: string;
  // biome-ignore lint/suspicious/noExplicitAny: each build's module, loaded at run time
  fsWal: any;
  results: Array<{ snapMs: number; nextMs: number; onPath: Record<string, number>; beside: Record<string, number> }>;
}

const builds: Build[] = [];
for (const p of positionals) {
  const [name, root] = p.split('=');
  const fsWal = await import(pathToFileURL(resolve(root, 'adapters/storage/fs-wal/index.ts')).href);
  builds.push({ name, fsWal, results: [] });
}
if (builds.length === 0) throw new Error('usage: snapshot-hold.ts NAME=ROOT...');

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function round(b: Build, dir: string): Promise<void> {
  const counts = { datasync: 0, fsync: 0, dirSync: 0, unlink: 0 };
  const base = b.fsWal.nodeWalFs;
  const fs = {
    ...base,
    async open(path: string, mode: 'create' | 'update') {
      const f = await base.open(path, mode);
      return {
        path: f.path,
        write: (d: Uint8Array, p: number) => f.write(d, p),
        datasync: async () => (await f.datasync(), path.endsWith('.wal') && counts.datasync++),
        sync: async () => (await f.sync(), path.endsWith('.wal') && counts.fsync++),
        close: () => f.close(),
      };
    },
    unlink: async (p: string) => (await base.unlink(p), p.endsWith('.wal') && counts.unlink++),
    syncDir: async (d: string) => (await base.syncDir(d), counts.dirSync++),
  };
  const s = await b.fsWal.FsWalStorage.open(dir, { fs, segmentBytes, logger: { debug() {}, info() {}, warn() {} } });
  await s.load();
  const data = new Uint8Array(entryBytes).fill(7);
  let index = 0;
  const batch = (n: number) => ({ hardState: { term: 1, vote: 1, commit: index }, snapshot: null, entries: Array.from({ length: n }, () => ({ index: ++index, term: 1, type: 0, data })) });
  while ((await fsp.readdir(dir)).filter((n) => n.endsWith('.wal')).length <= segments) await s.save(batch(16), true);
  const snap = { metadata: { index, term: 1, confState: { voters: [1], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false } }, data: new Uint8Array(1024) };
  await s.prepareSnapshot(snap);
  // Let the background segment preparation finish, so it does not land in the window.
  await new Promise((r) => setTimeout(r, 300));
  const before = { ...counts };
  const t0 = performance.now();
  await s.saveSnapshot(snap);
  const t1 = performance.now();
  await s.save(batch(1), true);
  const t2 = performance.now();
  const onPath = Object.fromEntries(Object.entries(counts).map(([k, v]) => [k, v - before[k as keyof typeof counts]]));
  await s.close();
  const beside = Object.fromEntries(Object.entries(counts).map(([k, v]) => [k, v - before[k as keyof typeof counts] - onPath[k]]));
  b.results.push({ snapMs: t1 - t0, nextMs: t2 - t1, onPath, beside });
}

const root = values.dir ?? tmpdir();
for (let r = 0; r < rounds; r++) {
  const order = r % 2 === 0 ? builds : [...builds].reverse();
  for (const b of order) {
    const dir = await fsp.mkdtemp(join(root, 'meshkv-snapshot-hold-'));
    try {
      await round(b, dir);
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  }
}
console.log(`${segments} covered segments of 1 MiB, ${rounds} rounds; medians`);
console.log('| build | saveSnapshot ms | next synced save ms | the two together ms | done when the next save returned: WAL fdatasync / fsync, dir fsync, segment unlinks | done after it, by close() |');
console.log('|---|---:|---:|---:|---|---|');
for (const b of builds) {
  const m = (f: (x: Build['results'][number]) => number) => median(b.results.map(f)).toFixed(1);
  const c = (k: 'onPath' | 'beside') => ['datasync', 'fsync', 'dirSync', 'unlink'].map((n) => median(b.results.map((x) => x[k][n]))).join(' / ');
  console.log(`| ${b.name} | ${m((x) => x.snapMs)} | ${m((x) => x.nextMs)} | ${m((x) => x.snapMs + x.nextMs)} | ${c('onPath')} | ${c('beside')} |`);
}
