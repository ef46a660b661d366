// IndexedDB storage benchmark in Chromium: saves of 1, 16 and 256 entries of 128 bytes, each
// save one transaction, strict (sync=true, what a member does for every Ready) and relaxed
// (sync=false) durability. Prints a markdown table. Run: npm run bench:indexeddb

import { expect, it } from 'vitest';
import { IndexedDbStorage } from '../adapters/storage/indexeddb/index.ts';
import type { Entry } from '../src/raft/types.ts';
import { EntryType } from '../src/raft/types.ts';

declare const __BENCH_SECONDS__: number;

const batchSizes = [1, 16, 256];
const entryBytes = 128;

interface Row {
  durability: 'strict' | 'relaxed';
  entriesPerSave: number;
  savesPerSec: number;
  entriesPerSec: number;
  saveP50Ms: number;
  saveP99Ms: number;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

async function runCase(entriesPerSave: number, sync: boolean): Promise<Row> {
  const member = { cluster: `bench-${crypto.randomUUID()}`, memberId: 1 };
  const storage = await IndexedDbStorage.open(member);
  await storage.load();
  const payload = new Uint8Array(entryBytes).fill(0x5a);
  const saveMs: number[] = [];
  let index = 0;
  const start = performance.now();
  const deadline = start + __BENCH_SECONDS__ * 1000;
  while (performance.now() < deadline) {
    const entries: Entry[] = [];
    for (let i = 0; i < entriesPerSave; i++) entries.push({ index: ++index, term: 1, type: EntryType.Normal, data: payload });
    const t0 = performance.now();
    await storage.save({ hardState: { term: 1, vote: 1, commit: index }, entries, snapshot: null }, sync);
    saveMs.push(performance.now() - t0);
  }
  const elapsedSec = (performance.now() - start) / 1000;
  await storage.close();
  const reopened = await IndexedDbStorage.open(member);
  expect((await reopened.load()).entries.length).toBe(index);
  await reopened.close();
  await IndexedDbStorage.destroy(member);
  saveMs.sort((a, b) => a - b);
  return {
    durability: sync ? 'strict' : 'relaxed',
    entriesPerSave,
    savesPerSec: saveMs.length / elapsedSec,
    entriesPerSec: index / elapsedSec,
    saveP50Ms: percentile(saveMs, 50),
    saveP99Ms: percentile(saveMs, 99),
  };
}

it('IndexedDB saves per second at batch sizes 1, 16, 256', async () => {
  const rows: Row[] = [];
  for (const sync of [true, false]) for (const size of batchSizes) rows.push(await runCase(size, sync));
  const lines = [
    `IndexedDB storage, ${entryBytes}-byte entries, ${__BENCH_SECONDS__} s per case, ${navigator.userAgent}`,
    '| durability | entries/save | saves/s | entries/s | save p50 ms | save p99 ms |',
    '|---|---:|---:|---:|---:|---:|',
    ...rows.map((r) =>
      `| ${r.durability} | ${r.entriesPerSave} | ${Math.round(r.savesPerSec).toLocaleString('en')} | ${Math.round(r.entriesPerSec).toLocaleString('en')} | ${r.saveP50Ms.toFixed(2)} | ${r.saveP99Ms.toFixed(2)} |`,
    ),
  ];
  console.log(lines.join('\n'));
});
