// `npm start`: one member on embedded defaults (the same as `meshkv` with no flags) that also
// serves the built demo on its client port, next to the etcd API and the signaling endpoint
// tabs join through. The demo is built first when demo/dist is missing or older than any
// source it bundles; flags after `npm start --` go to the member as usual.

import { readdir, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { npmFlagsProblem } from '../adapters/node/config.ts';

const repo = fileURLToPath(new URL('..', import.meta.url));
const distDir = join(repo, 'demo', 'dist');
const builtMarker = join(distDir, 'index.html');
/** What the demo bundle is made of: its own sources and the core and adapters it imports. */
const sourceDirs = ['demo', 'src', 'adapters'].map((d) => join(repo, d));
const skippedDirs = new Set([distDir, join(repo, 'demo', '.vite')]);

/** The most recently modified file under `dir` (skipping build output), or null if none. */
async function newestFile(dir: string): Promise<{ path: string; mtimeMs: number } | null> {
  let newest: { path: string; mtimeMs: number } | null = null;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (skippedDirs.has(path)) continue;
    const candidate = entry.isDirectory() ? await newestFile(path) : entry.isFile() ? { path, mtimeMs: (await stat(path)).mtimeMs } : null;
    if (candidate && (!newest || candidate.mtimeMs > newest.mtimeMs)) newest = candidate;
  }
  return newest;
}

/** Why the demo needs building, or null when demo/dist is up to date. */
async function staleReason(): Promise<string | null> {
  const built = await stat(builtMarker).catch(() => null);
  if (!built) return 'demo/dist is missing';
  for (const dir of sourceDirs) {
    const newest = await newestFile(dir);
    if (newest && newest.mtimeMs > built.mtimeMs) return `${relative(repo, newest.path)} changed since the last build`;
  }
  return null;
}

async function buildDemoIfStale(): Promise<void> {
  const reason = await staleReason();
  if (reason === null) {
    process.stdout.write('meshkv: demo/dist is up to date\n');
    return;
  }
  process.stdout.write(`meshkv: building the demo (${reason}) ...\n`);
  const startedMs = performance.now();
  const { build } = await import('vite');
  await build({ configFile: join(repo, 'demo', 'vite.config.ts'), logLevel: 'warn' });
  process.stdout.write(`meshkv: built demo/dist in ${((performance.now() - startedMs) / 1000).toFixed(1)} s\n`);
}

// Flags npm kept for itself would be lost: say so before the demo build, not after.
const npmProblem = npmFlagsProblem(process.env);
if (npmProblem !== null) {
  process.stderr.write(`meshkv: ${npmProblem}\n`);
  process.exit(2);
}
await buildDemoIfStale();
// A flag or variable naming another directory wins, as every flag wins over the defaults.
process.env.MESHKV_STATIC_DIR ??= distDir;
await import('../adapters/node/cli.ts');
