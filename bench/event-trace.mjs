// Preloaded into a member or a load client (`node --import ./bench/event-trace.mjs …`) by
// bench/growth.sh with TRACE=1: writes what can hold up a put to stderr, one line each, times
// in epoch milliseconds (performance.timeOrigin-based, the clock the traced client's slow-op
// lines use), so bench/slow-puts.mjs can line slow puts up with them:
//   evt gc <start> <ms> <kind>           every GC pause (PerformanceObserver: minor, major, incremental, weakcb)
//   evt stall <start> <ms>               an event-loop turn over STALL_MS (default 20), from a 5 ms timer
//   evt sync <start> <ms> <how> <path>   every fsync / fdatasync through a node:fs/promises FileHandle
//   evt fsop <start> <ms> <op> <path>    rename, link, unlink through node:fs/promises
// Tag lines with TRACE_TAG (default "evt") to tell processes apart in one log.
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { PerformanceObserver, performance } from 'node:perf_hooks';

const require = createRequire(import.meta.url);
const fs = require('node:fs');
const tag = process.env.TRACE_TAG ?? 'evt';
const stallMs = Number(process.env.STALL_MS ?? 20);
const origin = performance.timeOrigin;
const now = () => origin + performance.now();
const out = (line) => process.stderr.write(`${tag} ${line}\n`);

const gcKinds = { 1: 'minor', 2: 'major', 4: 'incremental', 8: 'weakcb' };
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) out(`gc ${(origin + e.startTime).toFixed(1)} ${e.duration.toFixed(1)} ${gcKinds[e.detail?.kind] ?? e.detail?.kind}`);
}).observe({ entryTypes: ['gc'] });

const periodMs = 5;
let last = now();
setInterval(() => {
  const t = now();
  if (t - last > stallMs + periodMs) out(`stall ${last.toFixed(1)} ${(t - last - periodMs).toFixed(1)}`);
  last = t;
}, periodMs).unref();

// FileHandle's prototype, reached through one handle; paths by descriptor from open().
const paths = new Map();
const fsp = fs.promises;
const probe = await fsp.open('/dev/null', 'r');
const proto = Object.getPrototypeOf(probe);
await probe.close();
for (const how of ['sync', 'datasync']) {
  const original = proto[how];
  proto[how] = async function (...args) {
    const t0 = now();
    try {
      return await original.apply(this, args);
    } finally {
      out(`sync ${t0.toFixed(1)} ${(now() - t0).toFixed(2)} ${how} ${paths.get(this.fd) ?? '?'}`);
    }
  };
}
const open = fsp.open;
fsp.open = async function (path, ...args) {
  const h = await open.call(this, path, ...args);
  paths.set(h.fd, String(path));
  return h;
};
for (const op of ['rename', 'link', 'unlink']) {
  const original = fsp[op];
  fsp[op] = async function (path, ...args) {
    const t0 = now();
    try {
      return await original.call(this, path, ...args);
    } finally {
      out(`fsop ${t0.toFixed(1)} ${(now() - t0).toFixed(2)} ${op} ${path}`);
    }
  };
}
syncBuiltinESMExports();
