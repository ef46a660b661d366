// survivor-kinds.mjs FILE.heapprofile PUTS [DETAIL-prefix]: a survivors profile (bench/promoted-per-put.sh SAMPLE=1)
// summed per owner, by the frames on each sample's stack (the first kind that matches wins), in bytes per put.

import { readFileSync } from 'node:fs';
const [file, ops] = process.argv.slice(2);
const p = JSON.parse(readFileSync(file, 'utf8'));
const kinds = [
  ['key index (btree, key strings)', /btree\.js|toBinaryString|indexRecord/],
  ['mvcc write buffer / backend batch (recordPut, the value copy, buffer entries)', /recordPut|appendRecord|applyPut|kv-store\.js:(5[0-9][0-9]|1[01][0-9]|8[0-9]|9[0-9])|state-machine\.js:176/],
  ['raft log entry (proposal, encodeRequest, append, WAL)', /handleProposal|appendEntries|propose@src\/server\/member|log-rules|fs-wal|kv-member\.js:752/],
  ['client request (h2 stream, gRPC call, hpack)', /etcd-api/],
  ['lmdb', /lmdb/],
];
const sums = new Map(kinds.map(([k]) => [k, 0]));
let other = 0, total = 0; const detail = new Map();
const nm = (cf) => `${cf.functionName}@${cf.url}:${cf.lineNumber + 1}`;
const walk = (n, stack) => {
  const s = [nm(n.callFrame), ...stack];
  if (n.selfSize > 0) {
    total += n.selfSize;
    const text = s.join(' ');
    const k = kinds.find(([, re]) => re.test(text));
    if (k) { sums.set(k[0], sums.get(k[0]) + n.selfSize); if ((process.argv[4] ?? process.env.DETAIL) === k[0].slice(0,4)) detail.set(s.slice(0,2).join(' < '), (detail.get(s.slice(0,2).join(' < '))??0) + n.selfSize); } else other += n.selfSize;
  }
  for (const c of n.children) walk(c, s);
};
walk(p.head, []);
for (const [k, v] of sums) console.log(`${Math.round(v / ops)} B/put  ${k}`);
console.log(`${Math.round(other / ops)} B/put  other`);
console.log(`${Math.round(total / ops)} B/put  total sampled survivors`);
for (const [k, v] of [...detail].sort((a,b)=>b[1]-a[1]).slice(0,15)) console.log(`   ${Math.round(v / ops)} ${k.replace(/file:\/\/[^ ]*\/(src|adapters)\//g,'$1/')}`);
