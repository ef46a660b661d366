// The checkers for recorded histories (issue 7). See docs/reliability.md, "The checkers".

import { checkDurability } from './durability.ts';
import type { CheckResult, FinalState, HistoryOp, WatchRecord } from './history.ts';
import { checkLinearizable, type LinearizabilityOptions } from './linearizable.ts';
import { checkWatches } from './watches.ts';

export type { CheckResult, FinalState, HistoryOp, OpInput, OpOutput, WatchEvent, WatchRecord } from './history.ts';
export { checkLinearizable, checkKeyValues, type LinearizabilityOptions } from './linearizable.ts';
export { checkRevisions } from './revisions.ts';
export { checkWatches } from './watches.ts';
export { checkDurability } from './durability.ts';
export { checkTxnAtomicity, type TxnRead, type TxnRecord } from './atomicity.ts';
export { describeOp, validateHistory } from './ops.ts';
export { parseRun, serializeRun, type SavedRun } from './saved-run.ts';

export interface CheckSummary {
  /** false if any checker found a violation; 'unknown' if none did but the search gave up; else true. */
  ok: boolean | 'unknown';
  operations: number;
  acknowledged: number;
  unknownOutcome: number;
  watchEvents: number;
  linearizable: CheckResult;
  watches: CheckResult;
  durability: CheckResult | null;
}

/** Runs every checker on one run's records; `finals` may be empty when no final state was read. */
export function checkAll(history: HistoryOp[], watches: WatchRecord[], finals: FinalState[], opts?: LinearizabilityOptions): CheckSummary {
  const linearizable = checkLinearizable(history, opts);
  const watchResult = checkWatches(history, watches);
  const durability = finals.length > 0 ? checkDurability(history, finals) : null;
  const results = [linearizable, watchResult, ...(durability === null ? [] : [durability])];
  const acknowledged = history.filter((op) => op.output !== null).length;
  return {
    ok: results.some((r) => r.ok === false) ? false : results.some((r) => r.ok === 'unknown') ? 'unknown' : true,
    operations: history.length,
    acknowledged,
    unknownOutcome: history.length - acknowledged,
    watchEvents: watchResult.checked,
    linearizable,
    watches: watchResult,
    durability,
  };
}

/** A failed or inconclusive result as text for a log: anomaly or reason, then the witness. */
export function formatResult(name: string, result: CheckResult): string {
  if (result.ok === true) return `${name}: ok (${result.checked} checked)`;
  if (result.ok === 'unknown') return `${name}: unknown after ${result.checked} checked: ${result.reason}`;
  return `${name}: ${result.anomaly}\n${JSON.stringify(result.witness, null, 2)}`;
}
