// CPU cost of the snapshot stream's checksum: this checkout's CRC-32C against Node's native
// zlib.crc32 (CRC-32/IEEE, a different checksum: the alternative that would change the stream's
// format), and optionally the CRC-32C of another checkout. 512 KiB buffers (a stream chunk), the
// best of 9 rounds of process CPU time, in one thread.
//
//   npx tsx bench/crc32c.ts
//   BASE=/tmp/catchup-base npx tsx bench/crc32c.ts     # A/B against another checkout's sources

import { join } from 'node:path';
import { loadavg } from 'node:os';
import zlib from 'node:zlib';
import { crc32c } from '../src/codec/crc32c.ts';

const chunk = new Uint8Array(512 * 1024);
for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 2654435761) >>> 13;
const candidates: Record<string, (d: Uint8Array) => number> = { crc32c: (d) => crc32c(d), 'zlib.crc32 (IEEE)': (d) => zlib.crc32(d) };
if (process.env.BASE !== undefined) {
  const base = (await import(join(process.env.BASE, 'src/codec/crc32c.ts'))) as { crc32c: (d: Uint8Array) => number };
  if (base.crc32c(chunk) !== crc32c(chunk)) throw new Error('the base checkout computes a different CRC-32C');
  candidates['crc32c (BASE)'] = (d) => base.crc32c(d);
}
const best: Record<string, number> = {};
for (let round = 0; round < 9; round++) {
  for (const [name, f] of Object.entries(candidates)) {
    for (let k = 0; k < 10; k++) f(chunk);
    const reps = 160;
    const before = process.cpuUsage();
    for (let k = 0; k < reps; k++) f(chunk);
    const used = process.cpuUsage(before);
    best[name] = Math.min(best[name] ?? Infinity, (used.user + used.system) / 1000 / reps / chunk.length * 2 ** 30);
  }
}
for (const [name, ms] of Object.entries(best)) console.log(`${name}: ${ms.toFixed(0)} ms CPU per GiB (${(1024 / (ms / 1000)).toFixed(0)} MiB/s)`);
console.log(`load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
