#!/usr/bin/env node
// The meshkv CLI: runs the TypeScript sources through tsx (a runtime dependency). A first
// argument that is not a flag names a client command (`meshkv put k v`, `meshkv bench`);
// otherwise the flags start a member.
import { register } from 'tsx/esm/api';

register();
const first = process.argv[2];
if (first !== undefined && !first.startsWith('-')) {
  const { runCommand } = await import('../adapters/node/commands/index.ts');
  process.exitCode = await runCommand(process.argv.slice(2));
} else {
  await import('../adapters/node/cli.ts');
}
