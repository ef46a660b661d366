// Where a member's long GC pauses go, from its log under `node --trace-gc-nvp` (one line of
// name=value pairs per collection; bench/growth.sh and bench/tail-ab.sh pass node flags through).
// Prints the pause distribution per kind (scavenge, mark-compact, the memory reducer's
// mark-compact: count, pauses over 20 / 50 / 100 ms, longest), then one row per mark-compact over MIN_MS with its phases: the marking left for
// the pause (full closure), weak processing (clear), evacuation (copy, pointer updates), sweeping,
// the ArrayBuffer sweep (finish), and the incremental marking before it (total and longest step).
//   node bench/gc-phases.mjs MEMBER.log [min_ms=20] [from_ms] [to_ms]
// from_ms/to_ms: only collections whose timestamp (ms since the member's start) falls in that window.

import { readFileSync } from 'node:fs';

const [file, minArg, fromArg, toArg] = process.argv.slice(2);
if (file === undefined) throw new Error('usage: node bench/gc-phases.mjs MEMBER.log [min_ms=20] [from_ms] [to_ms]');
const minMs = Number(minArg ?? 20);
const fromMs = fromArg === undefined ? -Infinity : Number(fromArg);
const toMs = toArg === undefined ? Infinity : Number(toArg);

const collections = [];
for (const line of readFileSync(file, 'utf8').split('\n')) {
  const at = /^\[\d+:0x[0-9a-f]+\]\s+(\d+) ms: (pause=.*)$/.exec(line);
  if (at === null) continue;
  const t = Number(at[1]);
  if (t < fromMs || t > toMs) continue;
  const f = { t };
  for (const pair of at[2].trim().split(' ')) {
    const eq = pair.indexOf('=');
    if (eq > 0) f[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  collections.push(f);
}
const n = (f, name) => Number.parseFloat(f[name] ?? '0');
/** Memory-reducing mark-compacts are the ones V8's memory reducer starts once allocation slows down (an idle member). */
const kinds = [
  ['scavenge', (f) => f.gc === 's'],
  ['mark-compact', (f) => f.gc === 'mc' && f.reduce_memory !== '1'],
  ['mark-compact, memory-reducing', (f) => f.gc === 'mc' && f.reduce_memory === '1'],
];
console.log(`${file}: ${collections.length} collections${Number.isFinite(fromMs) ? ` from ${fromMs} to ${toMs} ms` : ''}`);
console.log('| kind | count | > 20 ms | > 50 ms | > 100 ms | longest ms | total ms |');
console.log('|---|---:|---:|---:|---:|---:|---:|');
for (const [label, isKind] of kinds) {
  const pauses = collections.filter(isKind).map((f) => n(f, 'pause'));
  const over = (ms) => pauses.filter((p) => p > ms).length;
  console.log(`| ${label} | ${pauses.length} | ${over(20)} | ${over(50)} | ${over(100)} | ${Math.max(0, ...pauses).toFixed(1)} | ${pauses.reduce((a, b) => a + b, 0).toFixed(0)} |`);
}
// How long before each mark-compact its incremental marking began (wall ms): marking that begins
// late leaves the rest of the marking to the pause.
const began = collections.filter((f) => f.gc === 'mc' && f.reduce_memory !== '1').map((f) => n(f, 'incremental_walltime_duration')).sort((a, b) => a - b);
if (began.length > 0) {
  const at = (q) => began[Math.min(began.length - 1, Math.floor(q * began.length))];
  console.log(`\nincremental marking began before its mark-compact (not memory-reducing), wall ms: min ${at(0)}, median ${at(0.5)}, max ${at(1)}; under 200 ms: ${began.filter((b) => b < 200).length} of ${began.length}`);
}
const long = collections.filter((f) => f.gc === 'mc' && n(f, 'pause') > minMs);
if (long.length === 0) process.exit(0);
console.log(`\nmark-compacts over ${minMs} ms (ms; heap MB before → after):`);
console.log('| at s | pause | memory-reducing | mark (full closure) | clear (weak refs) | evacuate (copy / update pointers) | sweep | finish (array buffers) | incremental ms (longest step, steps; marking began ms before) | background mark | heap MB |');
console.log('|---:|---:|---|---|---|---|---:|---|---|---:|---|');
for (const f of long) {
  const pause = n(f, 'pause');
  console.log(
    `| ${(f.t / 1000).toFixed(1)} | ${pause.toFixed(1)} | ${f.reduce_memory === '1' ? 'yes' : 'no'} | ${f.mark} (${f['mark.full_closure_parallel'] ?? f['mark.full_closure']}) | ${f.clear} (${f['clear.weak_references']}) | ` +
      `${f.evacuate} (${f['evacuate.copy']} / ${f['evacuate.update_pointers']}) | ${f.sweep} | ${f.finish} (${f['finish.sweep_array_buffers']}) | ` +
      `${f.incremental} (${f.incremental_longest_step}, ${f.incremental_steps_count}; ${f.incremental_walltime_duration}) | ${f['background.mark']} | ` +
      `${(n(f, 'total_size_before') / 2 ** 20).toFixed(0)} → ${(n(f, 'total_size_after') / 2 ** 20).toFixed(0)} |`,
  );
}
