// The staging worker's writes (adapters/backend/lmdb-staging-worker.ts) with one LMDB write
// transaction per snapshot-stream chunk against several chunks per transaction: ~84 MB of
// 512 KiB chunks of revision-keyed values, split and put into a fresh environment's staging slot
// as the worker does, committed without waiting for the flush. Prints wall and process CPU time.
//
//   npx tsx bench/staging-batch.ts [CHUNKS_PER_TXN=1] [VALUE_BYTES=4096]

import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { TransactionFlags } from 'lmdb';
import { openLmdbEnvironment, writeOps } from '../adapters/backend/lmdb.ts';
import { decodeChunk } from '../src/server/snapshot-stream.ts';

const chunksPerTxn = Number(process.argv[2] ?? 1);
const valueBytes = Number(process.argv[3] ?? 4096);
const totalBytes = 84e6;
const chunkBytes = 512 * 1024;
const keyBytes = 17;
const pairBytes = 9 + keyBytes + valueBytes;

const dir = mkdtempSync(join(tmpdir(), 'staging-batch-'));
const { env, slotDbs } = openLmdbEnvironment(dir, 4 * 2 ** 30);
try {
  const chunks: Uint8Array[] = [];
  let revision = 1;
  const pairsPerChunk = Math.max(1, Math.floor(chunkBytes / pairBytes));
  while (chunks.length * chunkBytes < totalBytes) {
    const chunk = new Uint8Array(pairsPerChunk * pairBytes);
    const dv = new DataView(chunk.buffer);
    for (let i = 0, at = 0; i < pairsPerChunk; i++, at += pairBytes) {
      chunk[at] = 0; // the 'key' bucket
      dv.setUint32(at + 1, keyBytes);
      dv.setUint32(at + 5, valueBytes);
      dv.setBigUint64(at + 9, BigInt(revision++));
      chunk[at + 17] = 0x5f;
      chunk.fill(0x76, at + 9 + keyBytes, at + pairBytes);
    }
    chunks.push(chunk);
  }
  const cpu = process.cpuUsage();
  const start = performance.now();
  for (let i = 0; i < chunks.length; i += chunksPerTxn) {
    const ops = chunks.slice(i, i + chunksPerTxn).flatMap((c) => decodeChunk(c));
    env.transactionSync(() => writeOps(slotDbs[1], ops), TransactionFlags.SYNCHRONOUS_COMMIT | TransactionFlags.NO_SYNC_FLUSH);
  }
  const used = process.cpuUsage(cpu);
  console.log(
    `${chunksPerTxn} chunk(s) per transaction, ${valueBytes}-byte values, ${chunks.length} chunks: ` +
      `wall ${(performance.now() - start).toFixed(0)} ms, CPU ${((used.user + used.system) / 1000).toFixed(0)} ms (system ${(used.system / 1000).toFixed(0)}); ` +
      `load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`,
  );
} finally {
  await env.close();
  rmSync(dir, { recursive: true, force: true });
}
