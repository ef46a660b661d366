// node bench/raft-log-cycle.mjs ROOT: CPU per entry of RaftLog alone, from ROOT's dist/ build.
// One member's log cycle per entry: a fresh 300-byte entry appended, stableTo, commitTo,
// appliedTo, a term() of the tail; a compaction every 10,000 entries keeping 5,000 (a member's
// snapshot). 200,000 entries per pass, best of 7 passes of process CPU time (the garbage
// collector's work included), so load moves it less than wall time. Compare two roots
// alternating: node bench/raft-log-cycle.mjs /tmp/base && node bench/raft-log-cycle.mjs .
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const root = process.argv[2] ?? '.';
const { RaftLog } = await import(pathToFileURL(resolve(root, 'dist/src/raft/log.js')).href);
const N = 200_000, passes = 7, dataBytes = 300;
let best = Infinity;
for (let p = 0; p < passes; p++) {
  const log = new RaftLog(null, [], 0);
  const t0 = process.cpuUsage();
  for (let i = 1; i <= N; i++) {
    const e = { term: 1, index: i, type: 0, data: new Uint8Array(dataBytes) };
    log.append([e]);
    log.stableTo(log.unstableEntries());
    log.commitTo(i);
    log.appliedTo(i);
    if (log.term(i - 1) === undefined && i > 1) throw new Error('term');
    if (i % 10_000 === 0) log.compact(i - 5_000);
  }
  const c = process.cpuUsage(t0);
  best = Math.min(best, ((c.user + c.system) * 1000) / N);
}
console.log(`${root}: best of ${passes} passes, ${best.toFixed(0)} ns CPU per entry`);
