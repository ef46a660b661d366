#!/usr/bin/env node
// cpu-profile-shares.mjs FILE.cpuprofile — where a V8 CPU profile's busy time went, grouped by
// where the sampled code lives. Each sample counts once, for its innermost frame with a source
// (native frames such as the write syscall count for the JavaScript that called them). A second
// table gives inclusive shares: samples with a frame of that group anywhere on the stack (peer
// transport including the syscalls it makes, the WAL including fdatasync, …).
//
//   cpu-profile-shares.mjs FILE.cpuprofile [--last SECONDS]   # only the profile's last seconds
//                                                            # (the load, not the startup)
import { readFileSync } from 'node:fs';

const GROUPS = [
  ['Raft core', /\/src\/raft\//],
  ['member driver (src/server)', /\/src\/server\//],
  ['MVCC', /\/src\/mvcc\//],
  ['state-machine backend (src/backend)', /\/src\/backend\//],
  ['codec (src/codec, msgpackr)', /\/src\/codec\/|node_modules\/msgpackr\//],
  ['LMDB', /node_modules\/lmdb\/|adapters\/backend\//],
  ['TCP peer transport', /adapters\/transport\/tcp\//],
  ['WAL (fs-wal)', /adapters\/storage\/fs-wal\//],
  ['gRPC transport (adapters/etcd-api/grpc-h2)', /adapters\/etcd-api\/grpc-h2\./],
  ["meshkv's HTTP/2 server (adapters/etcd-api/h2)", /adapters\/etcd-api\/h2\//],
  ['etcd API layer (adapters/etcd-api)', /adapters\/etcd-api\//],
  ['grpc-js', /node_modules\/@grpc\//],
  ['protobufjs', /node_modules\/protobufjs\/|node_modules\/@protobufjs\//],
  ['other meshkv adapters', /adapters\//],
  ['Node HTTP/2', /^node:(internal\/)?http2/],
  ['Node sockets and streams', /^node:(net|internal\/stream_base_commons|internal\/streams|stream)/],
  ['Node fs', /^node:(internal\/)?fs/],
  ['Node events, timers, microtasks', /^node:(events|internal\/process\/task_queues|internal\/timers|timers)/],
  ['Node buffers', /^node:(buffer|internal\/buffer)/],
  ['other Node internals', /^node:/],
  ['other JavaScript', /./],
];

const file = process.argv[2];
if (!file) throw new Error('usage: cpu-profile-shares.mjs FILE.cpuprofile [--last SECONDS]');
const lastAt = process.argv.indexOf('--last');
const lastUs = lastAt > 0 ? Number(process.argv[lastAt + 1]) * 1e6 : Infinity;
if (!(lastUs > 0)) throw new Error(`--last takes a number of seconds, not ${process.argv[lastAt + 1]}`);
const prof = JSON.parse(readFileSync(file, 'utf8'));
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const groupOf = (url) => {
  for (const [name, re] of GROUPS) if (re.test(url)) return name;
  return null;
};
// Per node: its exclusive group and the set of groups on its stack, computed once.
const leafGroup = new Map();
const stackGroups = new Map();
for (const n of prof.nodes) {
  const fn = n.callFrame.functionName;
  let leaf = null;
  const seen = new Set();
  for (let id = n.id; id !== undefined; id = parent.get(id)) {
    const g = groupOf(byId.get(id).callFrame.url);
    if (g !== null) {
      if (leaf === null) leaf = g;
      seen.add(g);
    }
  }
  if (fn === '(garbage collector)') leaf = 'garbage collection';
  else if (fn === '(idle)') leaf = 'idle';
  else if (fn === '(program)') leaf = '(program): native, outside JavaScript';
  else if (leaf === null) leaf = fn === '(root)' ? 'idle' : `native: ${fn}`;
  leafGroup.set(n.id, leaf);
  stackGroups.set(n.id, seen);
}

const dts = prof.timeDeltas;
const fromUs = prof.endTime - lastUs;
let at = prof.startTime;
const excl = new Map();
const incl = new Map();
const natives = new Map();
let busy = 0;
let total = 0;
for (let i = 0; i < prof.samples.length; i++) {
  const id = prof.samples[i];
  const dt = dts[i] ?? 0;
  at += dt;
  if (at < fromUs) continue;
  total += dt;
  const g = leafGroup.get(id);
  if (g === 'idle') continue;
  busy += dt;
  excl.set(g, (excl.get(g) ?? 0) + dt);
  for (const s of stackGroups.get(id)) incl.set(s, (incl.get(s) ?? 0) + dt);
  const fn = byId.get(id).callFrame;
  if (fn.url === '' && !fn.functionName.startsWith('(')) natives.set(fn.functionName, (natives.get(fn.functionName) ?? 0) + dt);
}
const pct = (x) => `${((100 * x) / busy).toFixed(1)} %`;
console.log(`${file}: busy ${(busy / 1e6).toFixed(2)} s of ${(total / 1e6).toFixed(2)} s sampled`);
console.log('\n| where (innermost frame with a source) | share of busy CPU |\n|---|---:|');
for (const [g, t] of [...excl].sort((a, b) => b[1] - a[1])) console.log(`| ${g} | ${pct(t)} |`);
console.log('\n| inclusive: a frame of this group on the stack | share of busy CPU |\n|---|---:|');
for (const [g, t] of [...incl].sort((a, b) => b[1] - a[1])) console.log(`| ${g} | ${pct(t)} |`);
console.log('\n| native functions, self time | share of busy CPU |\n|---|---:|');
for (const [g, t] of [...natives].sort((a, b) => b[1] - a[1]).slice(0, 12)) console.log(`| ${g} | ${pct(t)} |`);
