// Checks a saved run offline: npx tsx test/check/cli.ts RUN.json [--time-limit-ms N]
// RUN.json holds { history, watches?, finals? } as saved-run.ts writes it. Prints each
// checker's verdict and witness; exits 1 on a violation, 2 when the search gave up.

import { readFileSync } from 'node:fs';
import { checkAll, formatResult } from './index.ts';
import { parseRun } from './saved-run.ts';

function main(argv: string[]): number {
  const file = argv.find((a, i) => !a.startsWith('--') && argv[i - 1] !== '--time-limit-ms');
  if (file === undefined) throw new Error('usage: npx tsx test/check/cli.ts RUN.json [--time-limit-ms N]');
  const limitAt = argv.indexOf('--time-limit-ms');
  const timeLimitMs = limitAt >= 0 ? Number(argv[limitAt + 1]) : undefined;
  const run = parseRun(readFileSync(file, 'utf8'));
  const summary = checkAll(run.history, run.watches ?? [], run.finals ?? [], { timeLimitMs });
  console.log(`${summary.operations} operations (${summary.unknownOutcome} with unknown outcome), ${summary.watchEvents} watch events`);
  console.log(formatResult('linearizability', summary.linearizable));
  console.log(formatResult('watches', summary.watches));
  console.log(summary.durability === null ? 'durability: no final state given' : formatResult('durability', summary.durability));
  return summary.ok === true ? 0 : summary.ok === false ? 1 : 2;
}

process.exitCode = main(process.argv.slice(2));
