// One client's puts on a fresh cluster, counted by puts rather than seconds: the members' CPU per
// put over each STEP puts, with their idle CPU (measured for IDLE_S seconds before the first put)
// subtracted, the leader and each follower apart. V8 tiers a function up after a number of calls,
// not a number of seconds, so on a loaded machine (fewer puts a second) a time window mixes cold
// and warm puts differently from run to run; windows of puts do not.
//
//   node bench/put-c1-count.mjs HARNESS_DIR ENDPOINT PUTS SERVER_PIDS [STEP] [IDLE_S]
//
// HARNESS_DIR is a copy of ../shared/bench-etcd with its node_modules (its h2 client does the
// puts: 256-byte values to fresh keys, one at a time). SERVER_PIDS: comma-separated, the leader
// (the member ENDPOINT reaches) first. Prints the idle floor, then one line per STEP puts (250
// unless given): puts a second, p50 ms, net CPU µs per put (all members; leader; followers).
import { readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [harnessDir, endpoint, putsArg, pidsArg, stepArg, idleArg] = process.argv.slice(2);
if (!harnessDir || !endpoint || !putsArg || !pidsArg) {
  console.error('usage: node bench/put-c1-count.mjs HARNESS_DIR ENDPOINT PUTS SERVER_PIDS [STEP] [IDLE_S]');
  process.exit(2);
}
const total = Number(putsArg);
const step = Number(stepArg ?? 250);
const idleS = Number(idleArg ?? 3);
const pids = pidsArg.split(',').map(Number);
const { Conn } = await import(pathToFileURL(join(harnessDir, 'lib/client.mjs')).href);

const msPerTick = 10; // USER_HZ 100
/** utime + stime of one /proc stat file, ms. */
function statMs(path) {
  const stat = readFileSync(path, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * msPerTick;
}
/**
 * Each server's user + system CPU so far, ms, then the leader's main thread alone (JavaScript,
 * its system calls, the scavenger's main-thread part): the leader's other threads are V8's
 * (TurboFan compiles, concurrent GC) and libuv's pool (WAL writes, fdatasync).
 */
function cpuMs() {
  return [...pids.map((pid) => statMs(`/proc/${pid}/stat`)), statMs(`/proc/${pids[0]}/task/${pids[0]}/stat`)];
}

const conn = new Conn(endpoint, 'h2');
await conn.ready();
const idleFrom = cpuMs();
const idleT0 = performance.now();
await new Promise((resolve) => setTimeout(resolve, idleS * 1000));
const idleTo = cpuMs();
const idlePerMs = idleTo.map((v, i) => (v - idleFrom[i]) / (performance.now() - idleT0));

// PUT_LOG=file: every put as `put <index> <start, epoch ms> <ms>` (bench/put-c1-p99.mjs reads it).
const putLog = process.env.PUT_LOG ? [] : null;
const value = randomBytes(256);
const keyPrefix = `put-c1-count/${process.pid}/`;
const marks = [[performance.now(), cpuMs()]];
const latencies = [];
await new Promise((resolve, reject) => {
  let seq = 0;
  const next = () => {
    if (seq === total) return resolve();
    const t0 = performance.now();
    conn.put(keyPrefix + String(seq++).padStart(10, '0'), value, (err) => {
      if (err) return reject(err);
      latencies.push(performance.now() - t0);
      putLog?.push(`put ${seq - 1} ${(performance.timeOrigin + t0).toFixed(1)} ${(performance.now() - t0).toFixed(3)}`);
      if (seq % step === 0) marks.push([performance.now(), cpuMs()]);
      next();
    });
  };
  next();
});
conn.close();
if (putLog) writeFileSync(process.env.PUT_LOG, `${putLog.join('\n')}\n`);

console.log(`  idle floor, ms of CPU a second: ${idlePerMs.slice(0, -1).map((v) => Math.round(v * 1000)).join(' / ')} (leader first)`);
for (let k = 1; k < marks.length; k++) {
  const [ta, ca] = marks[k - 1];
  const [tb, cb] = marks[k];
  const net = cb.map((v, i) => Math.round(((v - ca[i] - idlePerMs[i] * (tb - ta)) * 1000) / step));
  const mainThread = net.pop();
  const lat = latencies.slice((k - 1) * step, k * step).sort((x, y) => x - y);
  console.log(
    `  puts ${String((k - 1) * step).padStart(5)}–${String(k * step).padEnd(5)} ${String(Math.round((step * 1000) / (tb - ta))).padStart(5)} puts/s` +
      `  p50 ${lat[lat.length >> 1].toFixed(2)} ms  net CPU µs/put ${net.reduce((a, b) => a + b, 0)} (leader ${net[0]}: main thread ${mainThread}, others ${net[0] - mainThread}; followers ${net.slice(1).join(' / ')})`,
  );
}
process.exit(0);
