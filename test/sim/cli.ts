// Run the simulator over seeds:
//   npx tsx test/sim/cli.ts --seeds N [--from S] [--seed S] [--verbose] [--jobs J]
//                           [--sabotage corrupt-storage|ignore-fsync|corrupt-mvcc|stale-reads|outbox-retries]
//                           [--fault-phase-s S]   (override each seed's fault phase length)
//                           [--seed-list S,S,...]
// Prints one line per seed; the first failure prints its seed and trace and exits 1. With
// --jobs, J child processes take the seeds one at a time, each the next one as it finishes the
// last (seeds differ in cost up to a hundredfold, so dealing them out in advance left one child
// working long after the other), and lines arrive as seeds finish.

import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runSeed } from './simulator.ts';
import type { Sabotage, SimOptions, SimResult } from './simulator.ts';
import type { OutboxStats } from './outbox-clients.ts';
import { serializeRun } from '../check/saved-run.ts';
import { failureReport, summaryLine } from './report.ts';

interface CliArgs {
  seeds: number[];
  verbose: boolean;
  /** Passed to every run: sabotage, tick catch-up. */
  runOptions: Omit<SimOptions, 'seed' | 'verbose'>;
  /** Passed through to child processes. */
  runArgv: string[];
  jobs: number;
  /** Set in a child process: run the seeds the parent sends, one at a time, and report each back. */
  worker: boolean;
}

/** What the parent sends a child: the next seed to run, or that there is none. */
type WorkOrder = { seed: number } | { done: true };

/** What a child sends its parent per seed. */
interface SeedReport {
  seed: number;
  ok: boolean;
  simulatedMs: number;
  outbox: OutboxStats;
  line: string;
  report: string | null;
}

const jobsMax = 64;

function parseArgs(argv: string[]): CliArgs {
  let count = 100;
  let from = 1;
  let single: number | null = null;
  let list: number[] | null = null;
  let verbose = false;
  let jobs = 1;
  let worker = false;
  const runOptions: Omit<SimOptions, 'seed' | 'verbose'> = {};
  const runArgv: string[] = [];
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
    else if (arg === '--jobs') jobs = Math.max(1, Math.min(jobsMax, value()));
    else if (arg === '--verbose') verbose = true;
    else if (arg === '--worker') worker = true;
    else if (arg === '--sabotage') {
      const mode = argv[++i];
      const modes = ['corrupt-storage', 'ignore-fsync', 'corrupt-mvcc', 'stale-reads', 'outbox-retries'];
      if (!modes.includes(mode)) throw new Error(`--sabotage takes ${modes.join(', ')}, got ${mode}`);
      runOptions.sabotage = mode as Sabotage;
      runArgv.push(arg, mode);
    } else if (arg === '--fault-phase-s') {
      const seconds = value();
      runOptions.faultPhaseMs = seconds * 1000;
      runArgv.push(arg, String(seconds));
    } else if (arg === '--seed-list') list = argv[++i].split(',').map(Number);
    else if (arg === '--') continue;
    else throw new Error(`unknown argument ${arg}; usage: --seeds N [--from S] [--seed S] [--verbose] [--jobs J] [--sabotage MODE] [--fault-phase-s S]`);
  }
  const seeds = list ?? (single !== null ? [single] : Array.from({ length: count }, (_, i) => (from + i) >>> 0));
  return { seeds, verbose, runOptions, runArgv, jobs: Math.min(jobs, seeds.length), worker };
}

async function runOne(seed: number, args: CliArgs): Promise<SeedReport> {
  const started = performance.now();
  const result = await runSeed({ ...args.runOptions, seed, verbose: args.verbose });
  return {
    seed,
    ok: result.ok,
    simulatedMs: result.simulatedMs,
    outbox: result.outbox,
    line: summaryLine(result, performance.now() - started),
    report: result.ok ? null : failureReport(result, args.runArgv) + saveHistory(result),
  };
}

/** A history checker failed: the recorded history goes to a file, to check again offline. */
function saveHistory(result: SimResult): string {
  if (!result.failure?.property.startsWith('history')) return '';
  const file = join(tmpdir(), `meshkv-sim-seed${result.seed}-history.json`);
  writeFileSync(file, serializeRun({ history: result.history, watches: result.watches }));
  return `\nhistory saved: ${file} (npx tsx test/check/cli.ts ${file})`;
}

function printTotals(seedCount: number, simulatedMs: number, wallMs: number, outbox: OutboxStats, failed = false): void {
  console.log(
    `${seedCount} seed(s) ${failed ? 'run, the last one FAILED' : 'passed'}: simulated ${(simulatedMs / 1000).toFixed(1)}s in ${(wallMs / 1000).toFixed(1)}s wall clock ` +
      `(ratio ${(simulatedMs / wallMs).toFixed(1)}x)`,
  );
  console.log(
    `outbox: ${outbox.queued} entries queued, ${outbox.committed} committed exactly once, ${outbox.conflicts} conflicts, ${outbox.pending} still pending at the end; ` +
      `${outbox.crashesAfterApply} crashes between applying and answering; duplicates found: ${outbox.duplicates}`,
  );
  // The closing line CI runners read.
  console.log(`sim: ${failed ? seedCount - 1 : seedCount} passed, ${failed ? 1 : 0} failed`);
}

function addStats(into: OutboxStats, s: OutboxStats): void {
  for (const k of Object.keys(into) as (keyof OutboxStats)[]) into[k] += s[k];
}

function emptyStats(): OutboxStats {
  return { queued: 0, committed: 0, conflicts: 0, pending: 0, crashesAfterApply: 0, duplicates: 0 };
}

async function runInProcess(args: CliArgs): Promise<number> {
  const started = performance.now();
  const outbox = emptyStats();
  let simulatedMs = 0;
  let seedsRun = 0;
  for (const seed of args.seeds) {
    const r = await runOne(seed, args);
    seedsRun++;
    simulatedMs += r.simulatedMs;
    addStats(outbox, r.outbox);
    console.log(r.line);
    if (r.report) {
      console.log(r.report);
      printTotals(seedsRun, simulatedMs, performance.now() - started, outbox, true);
      return 1;
    }
  }
  printTotals(args.seeds.length, simulatedMs, performance.now() - started, outbox);
  return 0;
}

/** A child process: runs each seed the parent sends and reports it, until told there are no more. */
function runAsWorker(args: CliArgs): Promise<number> {
  return new Promise((resolve) => {
    process.on('message', (order: WorkOrder) => {
      if ('done' in order) {
        process.disconnect();
        resolve(0);
        return;
      }
      void runOne(order.seed, args).then((r) => process.send!(r));
    });
    process.send!({ ready: true });
  });
}

function runInChildren(args: CliArgs): Promise<number> {
  const started = performance.now();
  const outbox = emptyStats();
  let simulatedMs = 0;
  let done = 0;
  const children: ChildProcess[] = [];
  return new Promise((resolve) => {
    const finish = (code: number) => {
      for (const c of children) if (c.exitCode === null) c.kill();
      resolve(code);
    };
    let dealt = 0;
    const dealTo = (child: ChildProcess) => {
      child.send(dealt < args.seeds.length ? ({ seed: args.seeds[dealt++] } satisfies WorkOrder) : ({ done: true } satisfies WorkOrder));
    };
    for (let j = 0; j < args.jobs; j++) {
      // This module's own file: cli.ts under tsx (whose loader the child inherits), or the
      // bundle that run.mjs built, which the children then load without compiling anything.
      const child = fork(fileURLToPath(import.meta.url), ['--worker', ...args.runArgv]);
      children.push(child);
      child.on('message', (r: SeedReport | { ready: true }) => {
        if ('ready' in r) return dealTo(child);
        simulatedMs += r.simulatedMs;
        addStats(outbox, r.outbox);
        console.log(r.line);
        if (r.report) {
          console.log(r.report);
          printTotals(done + 1, simulatedMs, performance.now() - started, outbox, true);
          finish(1);
          return;
        }
        if (++done === args.seeds.length) {
          printTotals(done, simulatedMs, performance.now() - started, outbox);
          finish(0);
          return;
        }
        dealTo(child);
      });
      child.on('exit', (code) => {
        if (code !== 0 && code !== null) finish(1);
      });
    }
  });
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  if (!args.worker) console.log(`meshkv simulator: ${args.seeds.length} seed(s) from ${args.seeds[0]}${args.jobs > 1 ? `, ${args.jobs} jobs` : ''}`);
  if (args.worker) return runAsWorker(args);
  if (args.jobs > 1 && !args.verbose) return runInChildren(args);
  return runInProcess(args);
}

process.exitCode = await main();
