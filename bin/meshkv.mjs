#!/usr/bin/env node
// The meshkv CLI. It runs the compiled JavaScript in dist/ (`npm run build`; `npm pack` builds
// it first), so no TypeScript runs at startup. A first argument that is not a flag names a
// client command (`meshkv put k v`, `meshkv bench`); otherwise the flags start a member.
import { existsSync, readFileSync } from 'node:fs';

const dist = new URL('../dist/adapters/node/', import.meta.url);
const first = process.argv[2];
if (first === '--version') {
  const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  process.stdout.write(`meshkv Version: ${version}\nNode Version: ${process.version}\nNode OS/Arch: ${process.platform}/${process.arch}\n`);
} else if (!existsSync(new URL('cli.js', dist))) {
  // Only a checkout of the repository lacks dist/; an installed package always has it.
  process.stderr.write('meshkv: dist/ is missing: run `npm run build` first (or `npm start`, which runs from the sources)\n');
  process.exitCode = 1;
} else if (first !== undefined && !first.startsWith('-')) {
  const { runCommand } = await import(new URL('commands/index.js', dist).href);
  process.exitCode = await runCommand(process.argv.slice(2));
} else {
  await import(new URL('cli.js', dist).href);
}
