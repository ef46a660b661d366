// `npm run sim`: compiles the simulator's CLI (cli.ts and everything it imports from the
// repository) into one ES module with esbuild, then runs it — plain Node, no TypeScript loader.
// tsx compiled every module at each start of every worker and kept every function's name
// with a helper call at each closure creation (the member makes closures per tick); the bundle
// costs about a second to build and runs the same code. Packages stay external: they load from
// node_modules as in any run. A failing seed prints its replay command for tsx, which keeps the
// sources' line numbers.

import { buildSync } from 'esbuild';
import { createHash } from 'node:crypto';
import { mkdirSync, renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
// One bundle per checkout: git worktrees that share one node_modules (through a symlink) must not
// run each other's code, and the --jobs children load this file by name after it is built.
const checkout = createHash('sha256').update(root).digest('hex').slice(0, 12);
const outDir = join(root, 'node_modules', '.cache', 'meshkv-sim', checkout);
const outfile = join(outDir, 'cli.mjs');
// Built under a name of its own and renamed into place: two runs starting together each get a whole file.
const building = join(outDir, `cli.${process.pid}.mjs`);
mkdirSync(outDir, { recursive: true });
buildSync({
  entryPoints: [join(root, 'test', 'sim', 'cli.ts')],
  bundle: true,
  packages: 'external',
  platform: 'node',
  format: 'esm',
  target: 'node20',
  tsconfig: join(root, 'tsconfig.json'),
  outfile: building,
  logLevel: 'warning',
});
renameSync(building, outfile);
await import(pathToFileURL(outfile).href);
