// How many runs each fuzz property makes, and from which seed. CI runs a few hundred per
// property (each file takes a few seconds); FUZZ_RUNS=100000 makes a long run, FUZZ_SEED
// replays one (fast-check prints the seed and path of any failure).

import type fc from 'fast-check';

const runsOverride = parseEnvInt('FUZZ_RUNS');
const seed = parseEnvInt('FUZZ_SEED') ?? 0x6d6b7666; // 'mkvf'

function parseEnvInt(name: string): number | undefined {
  const text = process.env[name];
  if (text === undefined || text === '') return undefined;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${name}=${text} is not a non-negative integer`);
  return n;
}

/** fast-check parameters: `ciRuns` runs unless FUZZ_RUNS says otherwise; the seed is fixed unless FUZZ_SEED says otherwise. */
export function fuzzParams<T>(ciRuns: number): fc.Parameters<T> {
  return { seed, numRuns: runsOverride ?? ciRuns };
}

/** A timeout for a test making `ciRuns` runs that each take about `msPerRun`, scaled for FUZZ_RUNS. */
export function fuzzTimeoutMs(ciRuns: number, msPerRun: number): number {
  return Math.max(30_000, (runsOverride ?? ciRuns) * msPerRun * 4);
}
