// One client's puts over time against one endpoint, with the servers' CPU: whether a cluster's
// first seconds (the window bench/compare-etcd.sh measures put-c1 in) run like its later ones.
//
//   node bench/put-c1-timeline.mjs HARNESS_DIR ENDPOINT SECONDS SERVER_PIDS [WINDOW_S] [FIRST_S]
//
// HARNESS_DIR is a copy of ../shared/bench-etcd with its node_modules (its h2 client does the
// puts: 256-byte values to fresh keys, one at a time). SERVER_PIDS (comma-separated) are sampled
// from /proc every 500 ms. Prints one line per window of WINDOW_S seconds (default 6) from FIRST_S
// (default 2, compare-etcd.sh's warm-up): puts a second, p50/p90/p99 ms, and the servers' user +
// system CPU per put.
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [harnessDir, endpoint, secondsArg, pidsArg, windowArg, firstArg] = process.argv.slice(2);
if (!harnessDir || !endpoint || !secondsArg || !pidsArg) {
  console.error('usage: node bench/put-c1-timeline.mjs HARNESS_DIR ENDPOINT SECONDS SERVER_PIDS [WINDOW_S] [FIRST_S]');
  process.exit(2);
}
const seconds = Number(secondsArg);
const windowS = Number(windowArg ?? 6);
const firstS = Number(firstArg ?? 2);
const pids = pidsArg.split(',').map(Number);
const { Conn } = await import(pathToFileURL(join(harnessDir, 'lib/client.mjs')).href);

const clockTicksPerS = 100;
function serverCpuMs() {
  let ticks = 0;
  for (const pid of pids) {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    ticks += Number(fields[11]) + Number(fields[12]); // utime, stime
  }
  return (ticks * 1000) / clockTicksPerS;
}

const conn = new Conn(endpoint, 'h2');
await conn.ready();
const value = randomBytes(256);
const keyPrefix = `put-c1-timeline/${process.pid}/`;
const startMs = performance.now();
const endMs = startMs + seconds * 1000;
const cpuSamples = [[0, serverCpuMs()]];
const sampler = setInterval(() => cpuSamples.push([performance.now() - startMs, serverCpuMs()]), 500);
const puts = []; // [start ms since the first put, latency ms]
await new Promise((resolve, reject) => {
  let seq = 0;
  const next = () => {
    const t0 = performance.now();
    if (t0 >= endMs) return resolve();
    conn.put(keyPrefix + String(seq++).padStart(10, '0'), value, (err) => {
      if (err) return reject(err);
      puts.push([t0 - startMs, performance.now() - t0]);
      next();
    });
  };
  next();
});
clearInterval(sampler);
cpuSamples.push([performance.now() - startMs, serverCpuMs()]);
conn.close();

const cpuAt = (ms) => cpuSamples.reduce((best, s) => (Math.abs(s[0] - ms) < Math.abs(best[0] - ms) ? s : best));
const quantile = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
for (let from = firstS; from + windowS <= seconds; from += windowS) {
  const a = cpuAt(from * 1000);
  const b = cpuAt((from + windowS) * 1000);
  const inCpuWindow = puts.filter((p) => p[0] >= a[0] && p[0] < b[0]).length;
  const lat = puts.filter((p) => p[0] >= from * 1000 && p[0] < (from + windowS) * 1000).map((p) => p[1]).sort((x, y) => x - y);
  if (lat.length === 0) continue;
  const cpuUsPerPut = inCpuWindow > 0 ? Math.round(((b[1] - a[1]) * 1000) / inCpuWindow) : NaN;
  console.log(
    `  s ${String(from).padStart(3)}–${String(from + windowS).padEnd(3)} ${String(Math.round(lat.length / windowS)).padStart(5)} puts/s` +
      `  p50 ${quantile(lat, 0.5).toFixed(2)}  p90 ${quantile(lat, 0.9).toFixed(2)}  p99 ${quantile(lat, 0.99).toFixed(2)} ms` +
      `  server CPU ${cpuUsPerPut} µs/put`,
  );
}
process.exit(0);
