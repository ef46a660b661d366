// Lines up a load round's slow puts with what the member and the client did meanwhile
// (bench/growth.sh TRACE=1 writes both logs; see bench/event-trace.mjs for the event lines).
//
//   node bench/slow-puts.mjs CLIENT_LOG MEMBER_LOG... [--list-ms 100]
//
// For each put slower than SLOW_OP_MS (the client's `slow-op <start> <ms>` lines) it measures how
// much of the put's interval overlapped each kind of event, and names as its cause the kind with
// the largest overlap if that covers at least a quarter of the put (else "none"):
//   snapshot   a member's snapshot in fs-wal: the .snap file's fsync, rename, directory fsync
//              and the next WAL fdatasync (from the .snap.tmp fsync's start to the end of the
//              first WAL fdatasync after the directory fsync that follows it). Since session 11
//              a member's own snapshot file (.prep.snap.tmp) is written beside the Ready loop, and
//              since session 12 its marker rides on the next save's fdatasync: for those this
//              window is disk work beside the loop, not a hold (the member's own hold is its
//              meshkv_server_snapshot_duration_seconds)
//   wal-slow   a WAL fdatasync over 25 ms outside a snapshot hold
//   dir-sync   other directory fsyncs (segment rollover, deleted segments)
//   member-gc  the member's GC pauses
//   member-js  the member's event-loop stalls minus the GC inside them (JavaScript on the loop,
//              e.g. an LMDB write transaction's puts, or the process waiting for a CPU)
//   client     the load client's own stalls (its GC included)
// A member cause also names the member whose events of that kind covered the most of the put
// (m0, m1, … in the order of the MEMBER_LOGs; the leader is the member whose log says "became
// leader"), printed as a second table: a follower's slow append delays the quorum too.
// Prints the count per cause for puts over 100 ms, 50–100 ms and the rest, and lists the puts
// over --list-ms with the events that overlapped them.
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
let listMs = 100;
const li = args.indexOf('--list-ms');
if (li >= 0) {
  listMs = Number(args[li + 1]);
  args.splice(li, 2);
}
const [clientLog, ...memberLogs] = args;
if (!clientLog || memberLogs.length === 0) {
  console.error('usage: node bench/slow-puts.mjs CLIENT_LOG MEMBER_LOG... [--list-ms 100]');
  process.exit(2);
}

const ops = [];
const client = [];
for (const line of readFileSync(clientLog, 'utf8').split('\n')) {
  const f = line.split(' ');
  if (f[0] === 'slow-op') ops.push({ start: +f[1], ms: +f[2] });
  else if (f[0] === 'cevt' && (f[1] === 'stall' || f[1] === 'gc')) client.push({ kind: f[1], start: +f[2], ms: +f[3], what: f[4] ?? '' });
}
if (ops.length === 0) {
  console.log(`${clientLog}: no slow-op lines`);
  process.exit(0);
}
const from = Math.min(...ops.map((o) => o.start)) - 5000;
const to = Math.max(...ops.map((o) => o.start + o.ms)) + 5000;

/** Intervals {start, end, kind, label} per category, over all members. */
const cats = { snapshot: [], 'wal-slow': [], 'dir-sync': [], 'member-gc': [], 'member-js': [], client: [] };
const memberEvents = [];
memberLogs.forEach((file, m) => {
  const evs = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const f = line.split(' ');
    if (f[0] !== 'evt') continue;
    const start = +f[2];
    if (start < from || start > to) continue;
    evs.push({ member: m, kind: f[1], start, end: start + +f[3], ms: +f[3], how: f[4], path: f[5] ?? '' });
  }
  evs.sort((a, b) => a.start - b.start);
  memberEvents.push(...evs);
  const inSnapshot = new Set();
  for (let i = 0; i < evs.length; i++) {
    const e = evs[i];
    if (!(e.kind === 'sync' && e.path.endsWith('.snap.tmp'))) continue;
    // Its hold ends with the first WAL fdatasync after the directory fsync that follows.
    let j = i + 1;
    while (j < evs.length && !(evs[j].kind === 'sync' && evs[j].how === 'sync' && !/\.\w+$/.test(evs[j].path.split('/').pop()))) j++;
    while (j < evs.length && !(evs[j].kind === 'sync' && evs[j].how === 'datasync' && evs[j].path.endsWith('.wal'))) j++;
    const end = j < evs.length ? evs[j].end : e.end;
    for (let k = i; k <= Math.min(j, evs.length - 1); k++) inSnapshot.add(evs[k]);
    cats.snapshot.push({ member: m, start: e.start, end, label: `m${m} snapshot hold ${(end - e.start).toFixed(0)} ms (file fsync ${e.ms.toFixed(0)})` });
  }
  for (const e of evs) {
    if (e.kind === 'gc') cats['member-gc'].push({ member: m, start: e.start, end: e.end, label: `m${m} gc ${e.how} ${e.ms.toFixed(0)} ms` });
    else if (e.kind === 'stall') cats['member-js'].push({ member: m, start: e.start, end: e.end, label: `m${m} stall ${e.ms.toFixed(0)} ms` });
    else if (e.kind === 'sync' && !inSnapshot.has(e)) {
      const name = e.path.split('/').pop();
      if (e.how === 'datasync' && name.endsWith('.wal') && e.ms > 25) cats['wal-slow'].push({ member: m, start: e.start, end: e.end, label: `m${m} wal fdatasync ${e.ms.toFixed(0)} ms` });
      else if (e.how === 'sync' && !/\.\w+$/.test(name)) cats['dir-sync'].push({ member: m, start: e.start, end: e.end, label: `m${m} dir fsync ${e.ms.toFixed(0)} ms` });
    }
  }
});
for (const e of client) cats.client.push({ start: e.start, end: e.start + e.ms, label: `client ${e.kind} ${e.what} ${e.ms.toFixed(0)} ms` });

const overlap = (a0, a1, b0, b1) => Math.max(0, Math.min(a1, b1) - Math.max(a0, b0));
/** Milliseconds of [s, e) covered by the union of `list`'s intervals (they may overlap each other). */
function covered(list, s, e) {
  const parts = list.filter((x) => x.end > s && x.start < e).map((x) => [Math.max(s, x.start), Math.min(e, x.end)]).sort((a, b) => a[0] - b[0]);
  let total = 0;
  let cur = -Infinity;
  for (const [a, b] of parts) {
    if (b <= cur) continue;
    total += b - Math.max(a, cur);
    cur = b;
  }
  return total;
}

const rows = ops.map((o) => {
  const s = o.start;
  const e = o.start + o.ms;
  const share = {};
  for (const [name, list] of Object.entries(cats)) share[name] = covered(list, s, e);
  share['member-js'] = Math.max(0, share['member-js'] - share['member-gc']);
  let cause = 'none';
  let best = o.ms / 4;
  for (const [name, ms] of Object.entries(share)) if (ms >= best) [cause, best] = [name, ms];
  let member = -1;
  if (cause !== 'none' && cause !== 'client') {
    let most = 0;
    for (let m = 0; m < memberLogs.length; m++) {
      const ms = covered(cats[cause].filter((x) => x.member === m), s, e);
      if (ms > most) [member, most] = [m, ms];
    }
  }
  return { ...o, share, cause, member };
});

const buckets = [
  ['> 100 ms', (r) => r.ms > 100],
  ['50–100 ms', (r) => r.ms > 50 && r.ms <= 100],
  [`${Math.min(...ops.map((o) => o.ms)).toFixed(0)}–50 ms`, (r) => r.ms <= 50],
];
const names = ['snapshot', 'wal-slow', 'dir-sync', 'member-gc', 'member-js', 'client', 'none'];
console.log(`| puts | count | ${names.join(' | ')} |`);
console.log(`|---|---:|${names.map(() => '---:').join('|')}|`);
for (const [label, pick] of buckets) {
  const set = rows.filter(pick);
  const n = (c) => set.filter((r) => r.cause === c).length;
  console.log(`| ${label} | ${set.length} | ${names.map(n).join(' | ')} |`);
}
if (memberLogs.length > 1) {
  const leaders = memberLogs.map((f, m) => (/became leader/.test(readFileSync(f, 'utf8')) ? `m${m}` : null)).filter(Boolean);
  const memberCauses = names.filter((c) => c !== 'client' && c !== 'none');
  console.log(`\nPuts over 100 ms with a member cause, by the member that covered most of it (leader in the logs: ${leaders.join(', ') || 'none'}):\n`);
  console.log(`| member | ${memberCauses.join(' | ')} |`);
  console.log(`|---|${memberCauses.map(() => '---:').join('|')}|`);
  for (let m = 0; m < memberLogs.length; m++) {
    const set = rows.filter((r) => r.ms > 100 && r.member === m);
    console.log(`| m${m} | ${memberCauses.map((c) => set.filter((r) => r.cause === c).length).join(' | ')} |`);
  }
}
console.log(`max ${Math.max(...ops.map((o) => o.ms)).toFixed(1)} ms; member snapshot holds in the round: ${cats.snapshot.length}, longest ${Math.max(0, ...cats.snapshot.map((x) => x.end - x.start)).toFixed(0)} ms; member GC max ${Math.max(0, ...cats['member-gc'].map((x) => x.end - x.start)).toFixed(0)} ms; client stall max ${Math.max(0, ...cats.client.map((x) => x.end - x.start)).toFixed(0)} ms`);

// One line per group of slow puts that overlap each other (they waited for the same thing).
const slow = rows.filter((r) => r.ms > listMs).sort((a, b) => a.start - b.start);
const groups = [];
for (const r of slow) {
  const g = groups[groups.length - 1];
  if (g && r.start < g.end) {
    g.rows.push(r);
    g.end = Math.max(g.end, r.start + r.ms);
  } else groups.push({ start: r.start, end: r.start + r.ms, rows: [r] });
}
const t0 = from + 5000;
for (const g of groups) {
  const worst = g.rows.reduce((a, b) => (b.ms > a.ms ? b : a));
  const evs = Object.values(cats)
    .flat()
    .filter((x) => overlap(x.start, x.end, g.start, g.end) > 0 && (x.end - x.start > 5 || x.label.includes('snapshot')))
    .sort((a, b) => a.start - b.start)
    .map((x) => `${((x.start - t0) / 1000).toFixed(3)}s ${x.label}`);
  console.log(`- ${((g.start - t0) / 1000).toFixed(3)} s: ${g.rows.length} puts over ${listMs} ms, longest ${worst.ms.toFixed(0)} ms, cause ${worst.cause}; ${evs.join('; ') || 'no event'}`);
}
