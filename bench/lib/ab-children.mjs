// Shared by the in-process A/B benches (codec-ab.mjs, request-entry-ab.mjs): each build is measured
// in a fresh child process, the builds alternated A, B, A, B… so that both see the same load.
import { execFileSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

/** A module of `root`'s built dist/, as an import() URL. */
export const distUrl = (root, path) => pathToFileURL(resolve(root, 'dist', path)).href;

/** µs of process CPU (user + system) per call of `fn`: the best of `passes` runs of `calls` calls. */
export function cpuPerCall(fn, passes = 3, calls = 100_000) {
  let best = Infinity;
  for (let p = 0; p < passes; p++) {
    const t = process.cpuUsage();
    for (let i = 0; i < calls; i++) fn();
    const u = process.cpuUsage(t);
    best = Math.min(best, (u.user + u.system) / calls);
  }
  return best;
}

/**
 * The script's entry: as `--child ROOT`, prints `measure(ROOT)` as JSON; else runs itself as a child
 * for A_ROOT and B_ROOT in turn for ROUNDS rounds and prints `format(result)` with the load average.
 */
export async function abMain(scriptPath, usage, measure, format) {
  if (process.argv[2] === '--child') {
    process.stdout.write(JSON.stringify(await measure(process.argv[3])));
    return;
  }
  const [a, b, roundsText = '3'] = process.argv.slice(2);
  if (!a || !b) throw new Error(`usage: ${usage}`);
  for (let r = 1; r <= Number(roundsText); r++) {
    for (const [label, root] of [['a', a], ['b', b]]) {
      const load = loadavg()[0].toFixed(1);
      const res = JSON.parse(execFileSync(process.execPath, [scriptPath, '--child', root], { encoding: 'utf8' }));
      console.log(`round ${r} ${label} (${root}, load ${load}): ${format(res)}`);
    }
  }
}
