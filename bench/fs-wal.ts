// fs-wal group-commit benchmark: synced batches of 1, 16 and 256 entries of 128 bytes.
// Run: npx tsx bench/fs-wal.ts [--seconds 3] [--dir /path/on/the/disk/to/measure]
// Prints a markdown table: batches/s, entries/s, and fdatasync and save() latency percentiles.

import * as fsp from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { WalFs } from '../adapters/storage/fs-wal/index.ts';
import { FsWalStorage, nodeWalFs } from '../adapters/storage/fs-wal/index.ts';
import { silentLogger } from '../src/raft/config.ts';
import type { Entry } from '../src/raft/types.ts';
import { EntryType } from '../src/raft/types.ts';

const batchSizes = [1, 16, 256];
const entryBytes = 128;

const { values } = parseArgs({
  options: { seconds: { type: 'string', default: '3' }, dir: { type: 'string' } },
});
const secondsPerCase = Number(values.seconds);

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

interface Row {
  entriesPerBatch: number;
  batches: number;
  batchesPerSec: number;
  entriesPerSec: number;
  mibPerSec: number;
  syncP50Ms: number;
  syncP99Ms: number;
  saveP50Ms: number;
  saveP99Ms: number;
}

async function runCase(parent: string, entriesPerBatch: number): Promise<Row> {
  const dir = await fsp.mkdtemp(join(parent, 'meshkv-bench-fswal-'));
  const syncMs: number[] = [];
  const timedFs: WalFs = {
    ...nodeWalFs,
    async open(path, mode) {
      const file = await nodeWalFs.open(path, mode);
      return {
        path,
        write: (data, position) => file.write(data, position),
        async datasync() {
          const t0 = performance.now();
          await file.datasync();
          syncMs.push(performance.now() - t0);
        },
        sync: () => file.sync(),
        close: () => file.close(),
      };
    },
  };
  const storage = await FsWalStorage.open(dir, { fs: timedFs, logger: silentLogger });
  await storage.load();
  await new Promise((r) => setTimeout(r, 500)); // let the next segment finish preallocating
  syncMs.length = 0;
  const payload = new Uint8Array(entryBytes).fill(0x5a);
  const saveMs: number[] = [];
  let index = 0;
  let batches = 0;
  const start = performance.now();
  const deadline = start + secondsPerCase * 1000;
  while (performance.now() < deadline) {
    const entries: Entry[] = [];
    for (let i = 0; i < entriesPerBatch; i++) entries.push({ index: ++index, term: 1, type: EntryType.Normal, data: payload });
    const t0 = performance.now();
    await storage.save({ hardState: { term: 1, vote: 1, commit: index }, entries, snapshot: null }, true);
    saveMs.push(performance.now() - t0);
    batches++;
  }
  const elapsedSec = (performance.now() - start) / 1000;
  await storage.close();
  await fsp.rm(dir, { recursive: true, force: true });
  syncMs.sort((a, b) => a - b);
  saveMs.sort((a, b) => a - b);
  return {
    entriesPerBatch,
    batches,
    batchesPerSec: batches / elapsedSec,
    entriesPerSec: index / elapsedSec,
    mibPerSec: (index * entryBytes) / elapsedSec / (1024 * 1024),
    syncP50Ms: percentile(syncMs, 50),
    syncP99Ms: percentile(syncMs, 99),
    saveP50Ms: percentile(saveMs, 50),
    saveP99Ms: percentile(saveMs, 99),
  };
}

const parent = values.dir ?? tmpdir();
const rows: Row[] = [];
for (const size of batchSizes) rows.push(await runCase(parent, size));

const f = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
console.log(`fs-wal, ${entryBytes} B entries, every batch synced (one write + one fdatasync), ${secondsPerCase} s per case, dir ${parent}, node ${process.version}\n`);
console.log('| entries/batch | batches | batches/s | entries/s | MiB/s | fdatasync p50 ms | fdatasync p99 ms | save p50 ms | save p99 ms |');
console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const r of rows) {
  console.log(
    `| ${r.entriesPerBatch} | ${f(r.batches)} | ${f(r.batchesPerSec)} | ${f(r.entriesPerSec)} | ${f(r.mibPerSec, 2)} | ` +
      `${f(r.syncP50Ms, 3)} | ${f(r.syncP99Ms, 3)} | ${f(r.saveP50Ms, 3)} | ${f(r.saveP99Ms, 3)} |`,
  );
}
