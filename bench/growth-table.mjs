// Markdown tables from a bench/growth.sh results file: memory at rest, the load round at each
// stage, and restart. Bytes per key count the whole process (its fixed baseline included).
//   node bench/growth-table.mjs results/growth-<time>.jsonl
import { readFileSync } from 'node:fs';

const rows = readFileSync(process.argv[2], 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const find = (kind, system, stage) => rows.find((r) => r.kind === kind && r.system === system && (stage === undefined || r.stage === stage));
const stages = [...new Set(rows.filter((r) => r.stage !== undefined).map((r) => r.stage))];
const mb = (kib) => `${Math.round(kib / 1024)}`;
const perKey = (kib, keys) => (keys >= 10_000 ? `${Math.round((kib * 1024) / keys)}` : '–');
const k = (n) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : `${Math.round(n / 1e3)}k`);

const members = rows.find((r) => r.members !== undefined)?.members ?? 1;
if (members > 1) console.log(`${members} members per system: memory is the largest member's, GC the collections of all meshkv members, restart the first member's.\n`);
console.log('At rest (10 s idle after the fill), RSS = anonymous + file-backed:\n');
console.log('| keys | etcd RSS MB (anon + file) | etcd B/key | meshkv RSS MB (anon + file) | meshkv B/key | load avg |');
console.log('|---:|---|---:|---|---:|---|');
for (const s of stages) {
  const e = find('rest', 'etcd', s), m = find('rest', 'meshkv', s);
  if (!e || !m) continue;
  console.log(`| ${k(m.keys)} | ${mb(e.rss_kib)} (${mb(e.anon_kib)} + ${mb(e.file_kib)}) | ${perKey(e.rss_kib, e.keys)} | ${mb(m.rss_kib)} (${mb(m.anon_kib)} + ${mb(m.file_kib)}) | ${perKey(m.rss_kib, m.keys)} | ${m.load_avg} |`);
}
console.log(`\nPut load, ${rows.find((r) => r.kind === 'load')?.bench.clients} clients, one round per stage:\n`);
console.log('| keys before | etcd ops/s | etcd p99 / max ms | etcd RSS after, MB (B/key) | meshkv ops/s | meshkv p99 / max ms | meshkv RSS after, MB (B/key) | meshkv GC pause max / total ms (mark-compacts, longest) | load avg |');
console.log('|---:|---:|---|---|---:|---|---|---|---|');
for (const s of stages) {
  const e = find('load', 'etcd', s), m = find('load', 'meshkv', s);
  if (!e || !m) continue;
  const lat = (r) => `${r.bench.lat_ms.p99} / ${Math.round(r.bench.lat_ms.max)}`;
  console.log(
    `| ${k(s)} | ${Math.round(e.bench.ops_per_s).toLocaleString('en')} | ${lat(e)} | ${mb(e.rss_kib)} (${perKey(e.rss_kib, e.keys)}) | ${Math.round(m.bench.ops_per_s).toLocaleString('en')} | ${lat(m)} | ${mb(m.rss_kib)} (${perKey(m.rss_kib, m.keys)}) | ${m.gc_pause_ms_max} / ${m.gc_pause_ms_total} (${m.mark_compacts}, ${m.mark_compact_ms_max}) | ${m.load_avg} |`,
  );
}
console.log('\nRestart (SIGTERM, start on the same data, time to the first served read):\n');
console.log('| system | keys | first read after, s | RSS after, MB |');
console.log('|---|---:|---:|---:|');
for (const sys of ['etcd', 'meshkv']) {
  const r = find('restart', sys);
  if (r) console.log(`| ${sys} | ${k(r.keys)} | ${r.first_read_s} | ${mb(r.rss_kib)} |`);
}
