// Run the simulator over seeds: `npx tsx test/sim/cli.ts --seeds N [--from S] [--seed S] [--verbose]`.
// Prints one line per seed; the first failure prints its seed and trace and exits 1.

import { runSeed } from './simulator.ts';
import { failureReport, summaryLine } from './report.ts';

interface CliArgs {
  seeds: number[];
  verbose: boolean;
}

function parseArgs(argv: string[]): CliArgs {
  let count = 100;
  let from = 1;
  let single: number | null = null;
  let verbose = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = (): number => {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new Error(`${arg} needs an integer in [0, 2^32), got ${argv[i]}`);
      return v;
    };
    if (arg === '--seeds') count = value();
    else if (arg === '--from') from = value();
    else if (arg === '--seed') single = value();
    else if (arg === '--verbose') verbose = true;
    else if (arg === '--') continue;
    else throw new Error(`unknown argument ${arg}; usage: --seeds N [--from S] [--seed S] [--verbose]`);
  }
  const seeds = single !== null ? [single] : Array.from({ length: count }, (_, i) => (from + i) >>> 0);
  return { seeds, verbose };
}

function main(): number {
  const args = parseArgs(process.argv.slice(2));
  const started = performance.now();
  let simulatedMs = 0;
  console.log(`meshkv simulator: ${args.seeds.length} seed(s) from ${args.seeds[0]}`);
  for (const seed of args.seeds) {
    const seedStarted = performance.now();
    const result = runSeed({ seed, verbose: args.verbose });
    simulatedMs += result.simulatedMs;
    console.log(summaryLine(result, performance.now() - seedStarted));
    if (!result.ok) {
      console.log(failureReport(result));
      return 1;
    }
  }
  const wallMs = performance.now() - started;
  console.log(
    `${args.seeds.length} seed(s) passed: simulated ${(simulatedMs / 1000).toFixed(1)}s in ${(wallMs / 1000).toFixed(1)}s wall clock ` +
      `(ratio ${(simulatedMs / wallMs).toFixed(1)}x)`,
  );
  return 0;
}

process.exitCode = main();
