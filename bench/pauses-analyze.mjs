// Reads a member's --cpu-prof profile and its stall lines (bench/loop-stalls.mjs) and says what
// the thread did during each event-loop stall: garbage collection (V8's "(garbage collector)"
// samples), JavaScript (and the native calls it made), or nothing — off CPU, waiting to be
// scheduled on a loaded machine — and which functions ran (inclusive time, over the stalls).
//
//   node bench/pauses-analyze.mjs PROFILE.cpuprofile MEMBER.log [FROM_US]
import { readFileSync } from 'node:fs';

const [profilePath, logPath, fromText] = process.argv.slice(2);
const from = Number(fromText ?? 0);
const profile = JSON.parse(readFileSync(profilePath, 'utf8'));
const stalls = [...readFileSync(logPath, 'utf8').matchAll(/loop-stall-us (\d+) (\d+)/g)].map((m) => [Number(m[1]), Number(m[2])]).filter(([s]) => s >= from);

const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const label = (n) => `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.replace(/^.*\/(dist|node_modules)\//, '$1/')}:${n.callFrame.lineNumber + 1}`;

// Sample times: startTime plus the running sum of timeDeltas (microseconds, hrtime's clock).
const times = [];
let t = profile.startTime;
for (const d of profile.timeDeltas) times.push((t += d));

const sortedDeltas = [...profile.timeDeltas].sort((a, b) => a - b);
const intervalUs = sortedDeltas[Math.floor(sortedDeltas.length / 2)];
const inclusive = new Map();
let gcUs = 0;
let jsUs = 0;
let idleUs = 0;
const rows = [];
for (const [start, end] of stalls) {
  let gc = 0;
  let js = 0;
  const own = new Map();
  for (let i = 0; i < profile.samples.length; i++) {
    if (times[i] < start || times[i] > end) continue;
    // One sampling interval per sample: the thread's CPU time. A sample followed by a long gap
    // means the thread was not running (waiting for a CPU on a loaded machine), not that the
    // function on its stack ran that long; the gaps are counted as "off CPU".
    const dt = intervalUs;
    const node = byId.get(profile.samples[i]);
    const name = node.callFrame.functionName;
    if (name === '(garbage collector)') gc += dt;
    else if (name === '(idle)' || name === '(program)') idleUs += dt;
    else {
      js += dt;
      const seen = new Set();
      for (let id = node.id; id !== undefined; id = parent.get(id)) {
        const l = label(byId.get(id));
        if (seen.has(l) || l.startsWith('(root)')) continue;
        seen.add(l);
        own.set(l, (own.get(l) ?? 0) + dt);
        inclusive.set(l, (inclusive.get(l) ?? 0) + dt);
      }
    }
  }
  gcUs += gc;
  jsUs += js;
  const top = [...own].sort((a, b) => b[1] - a[1]).filter(([l]) => !/^\(anonymous\) (node:|$)|processTicksAndRejections|runMicrotasks/.test(l)).slice(0, 4);
  rows.push({ ms: (end - start) / 1000, gcMs: gc / 1000, jsMs: js / 1000, offMs: (end - start - gc - js) / 1000, top: top.map(([l, us]) => `${l} ${(us / 1000).toFixed(0)}`).join('; ') });
}
rows.sort((a, b) => b.ms - a.ms);
const stalledUs = stalls.reduce((a, [s, e]) => a + e - s, 0);
console.log(`${stalls.length} stalls over the bound, ${(stalledUs / 1000).toFixed(0)} ms in all (sampling every ${intervalUs} us): on CPU in GC ${(gcUs / 1000).toFixed(0)} ms, in JavaScript and native calls ${(jsUs / 1000).toFixed(0)} ms, in V8 otherwise ${(idleUs / 1000).toFixed(0)} ms; off CPU ${((stalledUs - gcUs - jsUs - idleUs) / 1000).toFixed(0)} ms`);
for (const r of rows.slice(0, 15)) console.log(`stall ${r.ms.toFixed(0)} ms: GC ${r.gcMs.toFixed(0)}, JS ${r.jsMs.toFixed(0)}, off CPU ${r.offMs.toFixed(0)} | ${r.top}`);
console.log('\nJavaScript during stalls, inclusive ms, top 30:');
for (const [l, us] of [...inclusive].sort((a, b) => b[1] - a[1]).slice(0, 30)) console.log(`${(us / 1000).toFixed(0).padStart(7)}  ${l}`);
