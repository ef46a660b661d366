#!/usr/bin/env node
// compare-summary.mjs results.jsonl — the table of bench/compare-etcd.sh: per workload, the
// median and min–max over the interleaved rounds of each side, and meshkv/etcd as the ratio of
// the medians with the spread of the per-round ratios (round i of etcd against round i of meshkv).
import { readFileSync } from 'node:fs';

const file = process.argv[2];
if (!file) throw new Error('usage: compare-summary.mjs results.jsonl');
const runs = new Map(); // workload name -> { etcd3: [], meshkv3: [] }
/** The latest meta line's leader by side: run-suite writes one (with `endpoint status`) per round. */
const leaderBySide = new Map();
/** The member the watch-fanout workload loads (the harness puts all its streams on the first endpoint): leader or follower. */
const watchedRole = new Map(); // run record -> 'leader' | 'follower' | '?'
for (const line of readFileSync(file, 'utf8').split('\n')) {
  if (!line.trim()) continue;
  let r;
  // A line that is not JSON (a run cut off mid-write) carries no measurement. run-suite's meta
  // lines parse for both sides: etcdctl's `endpoint status` with http:// endpoints answers from
  // meshkv since the authority shim (issue 17), and the watch rows' roles below read them.
  try { r = JSON.parse(line); } catch { continue; }
  if (r.meta) {
    const leader = (Array.isArray(r.status) ? r.status : []).find((s) => s.Status?.leader === s.Status?.header?.member_id);
    leaderBySide.set(r.label, leader?.Endpoint ?? null);
    continue;
  }
  if (!r.label) continue;
  const [side, name] = r.label.split('/');
  if (r.workload === 'watch-fanout') {
    const leader = leaderBySide.get(side);
    watchedRole.set(r, leader == null ? '?' : leader.endsWith(`//${r.endpoints?.[0]}`) ? 'leader' : 'follower');
  }
  if (!runs.has(name)) runs.set(name, { etcd3: [], meshkv3: [] });
  runs.get(name)[side]?.push(r);
}

const median = (xs) => {
  const v = xs.filter((x) => x != null).sort((a, b) => a - b);
  if (!v.length) return null;
  return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
};
const fmt = (x) => (x == null ? '-' : x >= 100 || Number.isInteger(x) ? Math.round(x).toLocaleString('en-US') : x.toFixed(2));
const spread = (xs) => {
  const v = xs.filter((x) => x != null);
  if (!v.length) return '-';
  return `${fmt(median(v))} (${fmt(Math.min(...v))}–${fmt(Math.max(...v))})`;
};
const pick = {
  ops: (r) => r.ops_per_s,
  p50: (r) => r.lat_ms?.p50,
  p99: (r) => r.lat_ms?.p99,
  cpu: (r) => r.server?.cpu_us_per_op,
  rss: (r) => (r.server?.rss_mb_max?.length ? Math.round(Math.max(...r.server.rss_mb_max)) : null),
  load: (r) => r.host?.loadavg1,
};

console.log('| workload | side | runs | ops/s median (min–max) | p50 ms | p99 ms | server CPU µs/op | max RSS per member MB | load avg 1 min |');
console.log('|---|---|---:|---|---|---|---|---|---|');
const ratios = [];
for (const [name, sides] of runs) {
  for (const side of ['etcd3', 'meshkv3']) {
    const v = sides[side];
    if (!v.length) continue;
    const unit = v[0].workload === 'watch-fanout' ? ' ev/s' : '';
    console.log(`| ${name} | ${side} | ${v.length} | ${spread(v.map(pick.ops))}${unit} | ${spread(v.map(pick.p50))} | `
      + `${spread(v.map(pick.p99))} | ${spread(v.map(pick.cpu))} | ${spread(v.map(pick.rss))} | ${v.map(pick.load).join(', ')} |`);
  }
  const e = sides.etcd3, m = sides.meshkv3;
  if (e.length && m.length) {
    const perRound = m.slice(0, e.length).map((r, i) => r.ops_per_s / e[i].ops_per_s);
    const ratio = median(m.map(pick.ops)) / median(e.map(pick.ops));
    const cpu = median(m.map(pick.cpu)) / median(e.map(pick.cpu));
    const p50 = median(m.map(pick.p50)) / median(e.map(pick.p50));
    ratios.push(`| ${name} | ${ratio.toFixed(2)} (${Math.min(...perRound).toFixed(2)}–${Math.max(...perRound).toFixed(2)}) | ${p50.toFixed(2)} | ${cpu.toFixed(2)} |`);
  }
}
console.log('\n| workload | meshkv/etcd ops/s: ratio of medians (per-round min–max) | p50 meshkv/etcd | server CPU per op meshkv/etcd |');
console.log('|---|---|---|---|');
for (const r of ratios) console.log(r);

// The watch rows are one writer's put rate, which depends on whether the member carrying the
// watchers leads (docs/benchmarks.md, "watch3, session 12"): each round with that role.
for (const [name, sides] of runs) {
  for (const side of ['etcd3', 'meshkv3']) {
    const v = sides[side].filter((r) => watchedRole.has(r));
    if (!v.length) continue;
    console.log(`${name} ${side} per round: ${v.map((r) => `${r.writer_puts_per_s} puts/s (watched member ${watchedRole.get(r)})`).join(', ')}`);
  }
}
