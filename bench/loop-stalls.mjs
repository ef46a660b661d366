// Preloaded into a member (`node --import ./bench/loop-stalls.mjs bin/meshkv.mjs …`) by
// bench/pauses.sh: reports every event-loop stall over STALL_MS (default 100) as
// `loop-stall-us <start> <end>` on stderr, in process.hrtime microseconds — the clock of a
// --cpu-prof profile's timestamps, so bench/pauses-analyze.mjs can find the samples inside it.
// A 10 ms timer that fires late by more than the bound marks a stall from its last firing.
import { monitorEventLoopDelay } from 'node:perf_hooks';

const stallUs = Number(process.env.STALL_MS ?? 100) * 1000;
const periodMs = 10;
const nowUs = () => Number(process.hrtime.bigint() / 1000n);
let last = nowUs();
setInterval(() => {
  const now = nowUs();
  if (now - last > stallUs + periodMs * 1000) process.stderr.write(`loop-stall-us ${last} ${now}\n`);
  last = now;
}, periodMs).unref();

const histogram = monitorEventLoopDelay({ resolution: 10 });
histogram.enable();
setInterval(() => {
  process.stderr.write(`loop-delay-ms p99 ${(histogram.percentile(99) / 1e6).toFixed(1)} max ${(histogram.max / 1e6).toFixed(1)}\n`);
  histogram.reset();
}, 5000).unref();
