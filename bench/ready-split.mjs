// ready-split.mjs BEFORE.txt AFTER.txt — from two scrapes of a member's /metrics, what one Ready
// cost during the interval between them: how many WAL saves (one fdatasync each) and applies,
// their mean and p99 (upper bucket bound) in ms. Prints a JSON fragment for bench/tail-ab.sh.
import { readFileSync } from 'node:fs';

const [beforeFile, afterFile] = process.argv.slice(2);
const parse = (file) => {
  const m = new Map();
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const hit = /^(\S+?)(?:\{le="([^"]+)"\})? (\S+)$/.exec(line);
    if (hit) m.set(hit[2] === undefined ? hit[1] : `${hit[1]}|${hit[2]}`, Number(hit[3]));
  }
  return m;
};
const before = parse(beforeFile);
const after = parse(afterFile);
const split = (name) => {
  const delta = (key) => (after.get(key) ?? 0) - (before.get(key) ?? 0);
  const count = delta(`${name}_count`);
  const buckets = [...after.keys()].filter((k) => k.startsWith(`${name}_bucket|`)).map((k) => ({ le: k.split('|')[1], n: delta(k) }));
  const p99 = buckets.find((b) => b.n >= 0.99 * count)?.le ?? null;
  return { count, mean_ms: count > 0 ? Number(((1000 * delta(`${name}_sum`)) / count).toFixed(2)) : null, p99_ms_le: p99 === null || p99 === '+Inf' ? p99 : Number(p99) * 1000 };
};
process.stdout.write(`"wal_sync":${JSON.stringify(split('etcd_disk_wal_fsync_duration_seconds'))},"apply":${JSON.stringify(split('meshkv_server_apply_duration_seconds'))},"snapshot":${JSON.stringify(split('meshkv_server_snapshot_duration_seconds'))}`);
