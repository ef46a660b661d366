// A recorded run as JSON, to check again offline (test/check/cli.ts). JSON cannot hold
// Infinity, so an unknown outcome's `ret` is written as null and read back as Infinity.

import type { FinalState, HistoryOp, WatchRecord } from './history.ts';

export interface SavedRun {
  history: HistoryOp[];
  watches?: WatchRecord[];
  finals?: FinalState[];
}

export function serializeRun(run: SavedRun): string {
  return JSON.stringify(run, (key, value: unknown) => (key === 'ret' && value === Infinity ? null : value));
}

export function parseRun(text: string): SavedRun {
  const run = JSON.parse(text) as SavedRun;
  if (!Array.isArray(run.history)) throw new Error('a saved run needs a "history" array');
  for (const op of run.history) if (op.ret === null) op.ret = Infinity;
  return run;
}
