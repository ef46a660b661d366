// Reads bench/follow-paths.sh's JSON lines and prints one row per run: the side, round, kind,
// the target's role, load, ops/s (or the watch writer's puts/s), p50/p99 ms (of the watch writer's puts on a watch row), and server CPU per
// put by member: the target, the leader (when the target follows) and the third member.
//
//   node bench/follow-summary.mjs results/follow-<time>.jsonl [...]
import { readFileSync } from 'node:fs';

const runs = [];
for (const file of process.argv.slice(2)) {
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const r = JSON.parse(line);
    const [side, round, kind, role, load] = r.label.split('/');
    runs.push({ r, side, round, kind, role, load: load.replace('load=', '') });
  }
}
// The member a client port belongs to, 0..2: ports are consecutive per side.
const memberIndex = (ep) => (Number(ep.split(':')[1]) - 1) % 10;
const leaderOf = new Map();
for (const x of runs) if (x.role === 'leader') leaderOf.set(`${x.side}/${x.round}`, memberIndex(x.r.endpoints[0]));

console.log('| side | round | kind | target | load | puts/s | p50 ms | p99 ms | CPU µs per put: target | leader | other | all |');
console.log('|---|---|---|---|---|---|---|---|---|---|---|---|');
for (const x of runs) {
  const { r } = x;
  const puts = x.kind === 'watch' ? r.writer_puts_per_s : r.ops_per_s;
  const perPut = (pct) => Math.round((pct * 1e4) / puts);
  const cpu = r.server.cpu_pct;
  const t = memberIndex(r.endpoints[0]);
  const l = leaderOf.get(`${x.side}/${x.round}`);
  const other = [0, 1, 2].find((i) => i !== t && i !== l);
  const lat = x.kind === 'watch' ? r.writer_put_lat_ms : r.lat_ms;
  const leaderCell = x.role === 'leader' || l === undefined ? '–' : perPut(cpu[l]);
  const otherCells = x.role === 'leader' ? [0, 1, 2].filter((i) => i !== t).map((i) => perPut(cpu[i])).join(', ') : other === undefined ? '?' : perPut(cpu[other]);
  console.log(`| ${x.side} | ${x.round} | ${x.kind} | ${x.role} | ${x.load} | ${puts} | ${lat.p50.toFixed(2)} | ${lat.p99.toFixed(2)} | ${perPut(cpu[t])} | ${leaderCell} | ${otherCells} | ${perPut(r.server.cpu_pct_sum)} |`);
}
