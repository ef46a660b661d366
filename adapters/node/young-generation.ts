// A bound on V8's young generation for a member's process, set from inside it.
//
// Why: under request load V8 doubles new space (two semi-spaces) up to 2 x 16 MiB on 64-bit, and
// keeps it there; a member's requests are short-lived, so most of that is garbage waiting for the
// next scavenge, and the ArrayBuffers it references (socket reads, frames) wait with it. Measured
// under the compare loads (docs/benchmarks.md, "A member's memory under load, session 9") new
// space was the largest single share of a member's RSS over its idle size.
//
// Node's own `--max-semi-space-size` would do it, but V8 reads that flag only when it sets the
// heap up, before any of our code runs, and `npx meshkv` gives node no flags. What V8 does read
// each time it grows new space is `--semi-space-growth-factor`: so after every collection this
// lets new space double (factor 2) only while the doubled size stays within the bound, and holds
// it (factor 1) otherwise. V8 still shrinks new space on its own when allocation slows down.

import { PerformanceObserver } from 'node:perf_hooks';
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';

/**
 * The largest semi-space a member grows, in bytes: new space is two of them. In an allocation
 * loop of short-lived objects 4 MiB cost about 15 % more CPU than V8's 16 MiB and 2 MiB about
 * twice as much, for 4 MB less RSS (docs/benchmarks.md, session 9).
 */
export const semiSpaceBytesMax = 4 << 20;

/** Flags with which a person who runs node with them chose the young generation's size themselves. */
const youngGenerationFlags = ['--max-semi-space-size', '--max_semi_space_size', '--semi-space-growth-factor', '--semi_space_growth_factor', '--max-heap-size', '--max_heap_size'];

/** Whether node was started with one of youngGenerationFlags, on its command line or in NODE_OPTIONS. */
export function youngGenerationChosen(execArgv: readonly string[], nodeOptions: string | undefined): boolean {
  const given = [...execArgv, ...(nodeOptions ?? '').split(/\s+/)];
  return given.some((arg) => youngGenerationFlags.some((flag) => arg === flag || arg.startsWith(`${flag}=`)));
}

function newSpaceBytes(): number {
  const space = getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
  if (space === undefined) throw new Error('young generation bound: V8 reports no new_space');
  return space.space_size;
}

/**
 * Keeps new space (both semi-spaces) at most 2 x `semiSpaceBytes` from now on, unless node was
 * given a young-generation flag. One growth may slip past the bound when two collections grow
 * new space before the observer runs; V8 grows it only after a capacity's worth of survivors, so
 * that takes more surviving data than a member's requests make. Returns what stops it.
 */
export function boundYoungGeneration(semiSpaceBytes: number = semiSpaceBytesMax): () => void {
  if (youngGenerationChosen(process.execArgv, process.env.NODE_OPTIONS)) return () => {};
  let factor = 0;
  const adjust = (): void => {
    const wanted = newSpaceBytes() <= semiSpaceBytes ? 2 : 1;
    if (wanted === factor) return;
    factor = wanted;
    setFlagsFromString(`--semi-space-growth-factor=${factor}`);
  };
  adjust();
  const observer = new PerformanceObserver(adjust);
  observer.observe({ entryTypes: ['gc'] });
  return () => observer.disconnect();
}
