#!/usr/bin/env node
// tail-ab-summary.mjs results/tail-ab-*.jsonl — one markdown row per variant of a bench/tail-ab.sh
// run: medians over its rounds of ops/s, p50, p99 and max latency, server CPU µs per put, GC
// milliseconds per 1,000 puts, the longest GC pause and mark-compact, WAL sync and apply means,
// the snapshots' hold on the Ready loop (count per round and mean, when the build reports it),
// and each median as a ratio to the first variant's (the rounds interleave, so the ratios are
// what a loaded machine leaves comparable).
import { readFileSync } from 'node:fs';

const rows = readFileSync(process.argv[2], 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const median = (xs) => {
  const s = xs.filter((x) => x !== null && x !== undefined).sort((a, b) => a - b);
  if (s.length === 0) return null;
  return s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const variants = [...new Set(rows.map((r) => r.variant))];
const stats = variants.map((v) => {
  const rs = rows.filter((r) => r.variant === v);
  return {
    v,
    rounds: rs.length,
    ops: median(rs.map((r) => r.bench.ops_per_s)),
    p50: median(rs.map((r) => r.bench.lat_ms.p50)),
    p99: median(rs.map((r) => r.bench.lat_ms.p99)),
    max: median(rs.map((r) => r.bench.lat_ms.max)),
    us: median(rs.map((r) => r.bench.server.cpu_us_per_op)),
    gc: median(rs.map((r) => (1000 * r.gc_ms_total) / (r.bench.ops_per_s * r.bench.duration_s))),
    gcMax: Math.max(...rs.map((r) => r.gc_ms_max)),
    mcMax: Math.max(...rs.map((r) => r.mark_compact_ms_max)),
    sync: median(rs.map((r) => r.wal_sync?.mean_ms)),
    apply: median(rs.map((r) => r.apply?.mean_ms)),
    snaps: median(rs.map((r) => r.snapshot?.count)),
    snapMs: median(rs.map((r) => r.snapshot?.mean_ms)),
    rss: median(rs.map((r) => r.bench.server.rss_mb_max[0])),
    load: rs.map((r) => Number(r.load_avg.split(' ')[0])),
  };
});
const base = stats[0];
const ratio = (x, b) => (x === null || b === null || b === 0 ? '' : ` (${(x / b).toFixed(2)}×)`);
console.log(`keys before: ${rows[0].keys_before}; load average (1 min) over the rounds ${Math.min(...stats.flatMap((s) => s.load))}–${Math.max(...stats.flatMap((s) => s.load))}`);
console.log('| variant | rounds | ops/s | p50 ms | p99 ms | max ms | server µs/put | GC ms per 1k puts | longest GC / mark-compact ms | WAL save mean ms | apply mean ms | snapshots per round, hold mean ms | RSS MB |');
console.log('|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|---:|');
for (const s of stats) {
  const f = (x, b, d = 0) => (x === null ? '–' : `${x.toFixed(d)}${s === base ? '' : ratio(x, b)}`);
  console.log(`| ${s.v} | ${s.rounds} | ${f(s.ops, base.ops)} | ${f(s.p50, base.p50, 1)} | ${f(s.p99, base.p99, 1)} | ${f(s.max, base.max)} | ${f(s.us, base.us)} | ${f(s.gc, base.gc)} | ${s.gcMax} / ${s.mcMax} | ${f(s.sync, base.sync, 1)} | ${f(s.apply, base.apply, 1)} | ${s.snaps === null ? '–' : `${s.snaps}, ${s.snapMs === null ? '–' : s.snapMs.toFixed(1)}`} | ${f(s.rss, base.rss)} |`);
}
