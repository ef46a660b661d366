#!/usr/bin/env node
// sim-wall.mjs LOG [JOBS] — where the wall clock of `npm run sim -- --seeds N --jobs J` went, from
// its output with each line stamped with the time it arrived (seconds, then a space):
//   npm run sim -- --seeds 500 --jobs 2 | perl -MTime::HiRes=time -ne '$|=1; printf "%.3f %s", time, $_' > sim.log
// Prints the bundle build, the jobs' start, the seeds' own work (their `wall` fields), the rest
// (results and orders between the parent and the jobs, the tail), and the run's per-seed times
// replayed through the CLI's dealing (each job takes the next seed when it finishes one) in seed
// order and longest first, against a perfect split.
import { readFileSync } from 'node:fs';

const [log, jobsText = '2'] = process.argv.slice(2);
if (log === undefined) {
  process.stderr.write('usage: sim-wall.mjs LOG [JOBS]\n');
  process.exit(2);
}
const jobs = Number(jobsText);
const lines = readFileSync(log, 'utf8').trim().split('\n').map((l) => {
  const i = l.indexOf(' ');
  return { t: Number(l.slice(0, i)), text: l.slice(i + 1) };
});
const t0 = lines[0].t;
const header = lines.find((l) => l.text.startsWith('meshkv simulator'));
const totals = lines.find((l) => /seed\(s\) (passed|run)/.test(l.text));
if (!header || !totals) throw new Error(`${log}: no header or totals line`);
const seeds = [];
for (const l of lines) {
  const m = /^seed\s+(\d+)\s+sim\s+([\d.]+)s.*wall\s+(\d+)ms/.exec(l.text);
  if (m) seeds.push({ t: l.t, seed: Number(m[1]), sim: Number(m[2]), wall: Number(m[3]) / 1000 });
}
const sum = seeds.reduce((a, s) => a + s.wall, 0);
const firstStart = Math.min(...seeds.slice(0, jobs).map((s) => s.t - s.wall));
const available = jobs * (totals.t - firstStart);
const f = (x) => x.toFixed(1);
console.log(`total ${f(totals.t - t0)} s: npm and the bundle ${f(header.t - t0)} s, starting the jobs ${f(firstStart - header.t)} s`);
console.log(`seeds ${seeds.length}, simulated ${f(seeds.reduce((a, s) => a + s.sim, 0))} s, their own work ${f(sum)} job-seconds (${f(sum / jobs)} s per job)`);
console.log(`the rest: ${f(available - sum)} job-seconds (messages between parent and jobs, the tail)`);
const last = seeds[seeds.length - 1];
const before = seeds[seeds.length - 2];
if (before) console.log(`tail: the last seed (${last.seed}) ended ${f(last.t - before.t)} s after the one before (${before.seed})`);
const cost = new Map(seeds.map((s) => [s.seed, s.wall]));
const makespan = (order) => {
  const w = new Array(jobs).fill(0);
  for (const s of order) {
    let i = 0;
    for (let k = 1; k < w.length; k++) if (w[k] < w[i]) i = k;
    w[i] += cost.get(s);
  }
  return Math.max(...w);
};
const bySeed = seeds.map((s) => s.seed).sort((a, b) => a - b);
for (const [name, order] of [['seed order', bySeed], ['longest first (the actual costs)', [...bySeed].sort((a, b) => cost.get(b) - cost.get(a))]]) {
  console.log(`replayed, ${name}: ends ${f(makespan(order) - sum / jobs)} s after a perfect split`);
}
