// Reads bench/follow-trace.sh's OUT.info and OUT.<pid> strace files and prints, per put, the
// medians of when each step happened and how many messages and event-loop wakes it took.
//
//   node bench/follow-trace-parse.mjs OUT
//
// The target member: each put from its 341-byte request read to its 97-byte answer write (the
// harness's put and meshkv's answer), with the forward (ForwardProp, 300–600 bytes) it writes,
// the append it reads back, its WAL pwrite64 and fdatasync, its acknowledgement (a peer write
// under 100 bytes) and the commit notice it reads. The leader, when the target follows: each
// forwarded put from the forward's read to the next, with its appends, WAL write, fdatasync's
// completion, the first acknowledgement and the first commit notice, and its peer reads, bytes
// read and wakes (epoll returning events) per put.
import { readFileSync } from 'node:fs';

const out = process.argv[2];
if (!out) {
  console.error('usage: node bench/follow-trace-parse.mjs OUT');
  process.exit(2);
}
const info = Object.fromEntries(readFileSync(`${out}.info`, 'utf8').split('\n')[0].split(' ').reduce((pairs, w, i, all) => (i % 2 === 0 ? [...pairs, [w, all[i + 1]]] : pairs), []));

function events(pid) {
  const list = [];
  for (const line of readFileSync(`${out}.${pid}`, 'utf8').split('\n')) {
    const m = /^(\d+)\s+(\d+\.\d+) (\w+)\((\d+)<(.*?)>(?=[,) ])(.*)$/.exec(line);
    if (!m) continue;
    const size = /= (\d+) <[\d.]+>$/.exec(m[6])?.[1];
    list.push({ t: Number(m[2]) * 1000, call: m[3], target: m[5], size: Number(size ?? -1), rest: m[6] });
  }
  return list;
}
const median = (xs) => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.floor(s.length / 2)];
};
const fmt = (x) => (Number.isFinite(x) ? x.toFixed(2) : '–');
const peer = (e) => e.target.startsWith('TCP') && !e.target.includes(`:${info.target_port}->`);
const wake = (e) => e.call.startsWith('epoll') && /\[\{events/.test(e.rest);

// ---- the target ----
const puts = [];
let cur = null;
for (const e of events(info.target_pid)) {
  const client = e.target.includes(`:${info.target_port}->`);
  if (e.call === 'read' && client && e.size === 341) {
    cur = { t0: e.t, at: {}, wakes: 0, peerWrites: 0 };
    puts.push(cur);
    continue;
  }
  if (cur === null || cur.done) continue;
  const rel = e.t - cur.t0;
  const first = (k) => {
    if (cur.at[k] === undefined) cur.at[k] = rel;
  };
  if (e.call === 'write' && client && e.size === 97) {
    first('answer');
    cur.done = true;
  } else if (e.call === 'write' && peer(e) && e.size >= 300) first('forward written'), cur.peerWrites++;
  else if (e.call === 'read' && peer(e) && e.size >= 300) first('append read');
  else if (e.call === 'pwrite64' && e.target.endsWith('.wal')) first('WAL pwrite64');
  else if (e.call === 'fdatasync' && e.target.endsWith('.wal')) first('fdatasync starts');
  else if (e.call === 'write' && peer(e) && e.size < 100) {
    if (cur.at['append read'] !== undefined) first('acknowledgement written');
    cur.peerWrites++;
  } else if (e.call === 'read' && peer(e) && e.size < 100 && cur.at['acknowledgement written'] !== undefined) first('commit notice read');
  else if (wake(e)) cur.wakes++;
}
const done = puts.filter((p) => p.done);
console.log(`target ${info.target_port} (pid ${info.target_pid}), leader ${info.leader_port}: ${done.length} puts; medians, ms after the request's read:`);
for (const k of ['forward written', 'append read', 'WAL pwrite64', 'fdatasync starts', 'acknowledgement written', 'commit notice read', 'answer']) {
  const v = median(done.map((p) => p.at[k]));
  if (Number.isFinite(v)) console.log(`  ${k.padEnd(24)} ${fmt(v)}`);
}
console.log(`  wakes before the answer ${median(done.map((p) => p.wakes))}, peer writes ${median(done.map((p) => p.peerWrites))}`);

// ---- the leader, for forwarded puts ----
if (info.leader_pid !== info.target_pid) {
  const fwd = [];
  let f = null;
  for (const e of events(info.leader_pid)) {
    if (e.call === 'read' && e.target.startsWith('TCP') && e.size >= 300 && e.size < 600) {
      f = { at: {}, t0: e.t, reads: 0, bytesIn: 0, wakes: 0 };
      fwd.push(f);
      continue;
    }
    if (f === null) continue;
    const rel = e.t - f.t0;
    const first = (k) => {
      if (f.at[k] === undefined) f.at[k] = rel;
    };
    if (e.call === 'write' && e.target.startsWith('TCP') && e.size >= 300) first(f.at['first append written'] === undefined ? 'first append written' : 'second append written');
    else if (e.call === 'pwrite64' && e.target.endsWith('.wal')) first('WAL pwrite64');
    else if (e.call === 'read' && e.target.includes('eventfd') && f.at['WAL pwrite64'] !== undefined) first('fdatasync done');
    else if (e.call === 'read' && e.target.startsWith('TCP')) {
      first('first acknowledgement read');
      f.reads++;
      f.bytesIn += Math.max(0, e.size);
    } else if (e.call === 'write' && e.target.startsWith('TCP') && e.size < 100 && f.at['first acknowledgement read'] !== undefined) first('first commit notice');
    else if (wake(e)) f.wakes++;
  }
  fwd.pop();
  console.log(`leader: ${fwd.length} forwarded puts; medians, ms after the forward's read:`);
  for (const k of ['first append written', 'second append written', 'WAL pwrite64', 'fdatasync done', 'first acknowledgement read', 'first commit notice']) console.log(`  ${k.padEnd(27)} ${fmt(median(fwd.map((p) => p.at[k])))}`);
  console.log(`  per put: peer reads ${median(fwd.map((p) => p.reads))}, peer bytes read ${median(fwd.map((p) => p.bytesIn))}, wakes ${median(fwd.map((p) => p.wakes))}`);
  console.log(`  own fdatasync done after the first acknowledgement in ${fwd.filter((p) => p.at['fdatasync done'] > p.at['first acknowledgement read']).length} of ${fwd.length}`);
}
