// Preloaded into a member (`node --import ./bench/alloc-sample.mjs bin/meshkv.mjs …`): samples
// every allocation of the process, including objects a scavenge or a full collection freed
// since (what --heap-prof leaves out, and what drives the scavenges under put load), from
// ALLOC_FROM_S seconds after start (default 5: after the fill's start-up) until SIGTERM, and
// writes the profile to ALLOC_OUT (a .heapprofile for bench/alloc-shares.mjs or DevTools).
// ALLOC_SURVIVORS=1 keeps only what no scavenge freed: objects promoted to the old generation
// (whether a full collection freed them later or not) and those still in new space at the end,
// i.e. what fills the old generation's headroom between mark-compacts.
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';

const out = process.env.ALLOC_OUT ?? `alloc-${process.pid}.heapprofile`;
const session = new Session();
session.connect();
const post = (method, params = {}) =>
  new Promise((resolve, reject) => session.post(method, params, (err, result) => (err ? reject(err) : resolve(result))));

setTimeout(
  () => {
    post('HeapProfiler.startSampling', { samplingInterval: 8192, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: process.env.ALLOC_SURVIVORS !== '1' }).then(
      () => process.stderr.write(`alloc-sample: sampling from ${Number(process.hrtime.bigint() / 1000n)} us\n`),
      (err) => process.stderr.write(`alloc-sample: ${err.message}\n`),
    );
  },
  Number(process.env.ALLOC_FROM_S ?? 5) * 1000,
).unref();

process.once('SIGTERM', () => {
  post('HeapProfiler.stopSampling').then(
    ({ profile }) => {
      writeFileSync(out, JSON.stringify(profile));
      process.exit(0);
    },
    (err) => {
      process.stderr.write(`alloc-sample: ${err.message}\n`);
      process.exit(1);
    },
  );
});
