// Splits one put-c1 round's slowest 1 % by what overlapped them: the puts' own log (PUT_LOG of
// bench/put-c1-count.mjs: `put <index> <start> <ms>`) and the members' bench/event-trace.mjs lines
// (`evt gc|stall|sync …`, epoch ms), as `KEEP=dir bench/put-c1-count.sh 1 'TREE@--import=…/event-trace.mjs'`
// leaves them.
//
//   node bench/put-c1-p99.mjs PUTS_LOG MEMBER_LOG... [--from 2] [--to 8] [--cold 750]
//
// Only puts that started FROM–TO seconds after the first put count (bench/compare-etcd.sh's put-c1
// window: seconds 2–8). Each of the slowest 1 % is named by the kind of event that overlapped it
// most, if that covers at least a quarter of it (else "none"): scavenge (a member's minor GC),
// major-gc (mark-compact or its incremental steps), fdatasync (a member's WAL or backend sync
// through node:fs/promises), stall (an event-loop turn over 20 ms, less the GC in it); and, apart,
// whether it was a cold put (index below --cold: among the member's first puts).
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  if (i < 0) return dflt;
  const v = Number(args[i + 1]);
  args.splice(i, 2);
  return v;
};
const fromS = opt('from', 2);
const toS = opt('to', 8);
const coldPuts = opt('cold', 750);
const [putsLog, ...memberLogs] = args;
if (!putsLog || memberLogs.length === 0) {
  console.error('usage: node bench/put-c1-p99.mjs PUTS_LOG MEMBER_LOG... [--from 2] [--to 8] [--cold 750]');
  process.exit(2);
}
const puts = readFileSync(putsLog, 'utf8').split('\n').filter((l) => l.startsWith('put ')).map((l) => {
  const [, index, start, ms] = l.split(' ');
  return { index: +index, start: +start, ms: +ms };
});
const events = [];
for (const [m, file] of memberLogs.entries()) {
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const f = line.split(' ');
    if (f[0] !== 'evt') continue;
    const start = +f[2];
    const ms = +f[3];
    let kind = null;
    if (f[1] === 'gc') kind = f[4] === 'minor' ? 'scavenge' : f[4] === 'weakcb' ? null : 'major-gc';
    else if (f[1] === 'sync') kind = 'fdatasync';
    else if (f[1] === 'stall') kind = 'stall';
    if (kind) events.push({ kind, member: m, start, end: start + ms });
  }
}
const t0 = puts[0].start;
const window = puts.filter((p) => p.start >= t0 + fromS * 1000 && p.start < t0 + toS * 1000);
const sorted = [...window].sort((a, b) => b.ms - a.ms);
const slow = sorted.slice(0, Math.max(1, Math.ceil(window.length / 100)));
const p = (q) => [...window].sort((a, b) => a.ms - b.ms)[Math.min(window.length - 1, Math.floor(q * window.length))].ms;
const kinds = ['scavenge', 'major-gc', 'fdatasync', 'stall', 'none'];
const counts = Object.fromEntries(kinds.map((k) => [k, { cold: 0, warm: 0 }]));
const lines = [];
for (const put of slow) {
  const end = put.start + put.ms;
  const overlap = Object.fromEntries(kinds.map((k) => [k, 0]));
  for (const e of events) {
    const o = Math.min(end, e.end) - Math.max(put.start, e.start);
    if (o > 0) overlap[e.kind] += o;
  }
  // The GC inside a stall is already counted as GC.
  overlap.stall = Math.max(0, overlap.stall - overlap.scavenge - overlap['major-gc']);
  const [top, topMs] = Object.entries(overlap).filter(([k]) => k !== 'none').sort((a, b) => b[1] - a[1])[0];
  const cause = topMs >= put.ms / 4 ? top : 'none';
  counts[cause][put.index < coldPuts ? 'cold' : 'warm']++;
  lines.push(`    put ${put.index} ${put.ms.toFixed(2)} ms: ${cause}${put.index < coldPuts ? ', cold' : ''} (${Object.entries(overlap).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${v.toFixed(1)} ms`).join(', ')})`);
}
const idx = window.map((w) => w.index);
console.log(
  `${putsLog}: ${window.length} puts in seconds ${fromS}–${toS} (puts ${Math.min(...idx)}–${Math.max(...idx)}), p50 ${p(0.5).toFixed(2)} ms, p99 ${p(0.99).toFixed(2)} ms; the slowest ${slow.length} (≥ ${slow.at(-1).ms.toFixed(2)} ms) by cause, cold (index < ${coldPuts}) / warm:`,
);
for (const k of kinds) if (counts[k].cold + counts[k].warm > 0) console.log(`  ${k.padEnd(10)} ${counts[k].cold} / ${counts[k].warm}`);
console.log(lines.join('\n'));
