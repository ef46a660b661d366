// Tests that run the `meshkv` command run bin/meshkv.mjs, which runs the compiled dist/ as an
// installed package does. This builds dist/ (npm run build) before such a run when it is
// missing or older than a source, so that no test runs yesterday's JavaScript.

import { execFileSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const repo = join(import.meta.dirname, '..', '..');
const builtMarker = join(repo, 'dist', 'adapters', 'node', 'cli.js');
const inputs = ['src', 'adapters', 'package.json', 'tsconfig.json', 'tsconfig.build.json'].map((p) => join(repo, p));

function newestMtimeMs(path: string): number {
  const s = statSync(path);
  if (!s.isDirectory()) return s.mtimeMs;
  return Math.max(s.mtimeMs, ...readdirSync(path).map((name) => newestMtimeMs(join(path, name))));
}

export default function buildDist(): void {
  const builtMs = statSync(builtMarker, { throwIfNoEntry: false })?.mtimeMs ?? 0;
  if (inputs.every((p) => newestMtimeMs(p) < builtMs)) return;
  execFileSync('npm', ['run', 'build', '--silent'], { cwd: repo, stdio: 'inherit' });
}
