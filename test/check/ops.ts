// Helpers shared by the checkers: validating a recorded history, the write an operation made
// (or may have made), and one-line descriptions of operations for witnesses.

import type { HistoryOp, OpInput, OpOutput } from './history.ts';

/** An operation whose outcome is unknown: it may have taken effect after `call`, or never. */
export function isUnknown(op: HistoryOp): boolean {
  return op.output === null;
}

/**
 * Throws a clear error for a history no recorder should produce (a checker's verdict on
 * malformed input would mean nothing): duplicate ids, a return before the call, an output
 * of another kind than the input, an unknown outcome whose `ret` is not Infinity.
 */
export function validateHistory(history: HistoryOp[]): void {
  const ids = new Set<number>();
  for (const op of history) {
    const where = `history op #${op.id} (client ${op.client})`;
    if (ids.has(op.id)) throw new Error(`${where}: duplicate op id ${op.id}`);
    ids.add(op.id);
    if (!Number.isFinite(op.call)) throw new Error(`${where}: call time ${op.call} is not finite`);
    if (op.output === null) {
      if (op.ret !== Infinity) throw new Error(`${where}: unknown outcome (output null) must have ret Infinity, got ${op.ret}`);
      continue;
    }
    if (!(op.ret >= op.call) || !Number.isFinite(op.ret)) throw new Error(`${where}: ret ${op.ret} is not a finite time at or after call ${op.call}`);
    if (op.output.f !== op.input.f) throw new Error(`${where}: input is a ${op.input.f} but output is a ${op.output.f}`);
    if (!Number.isInteger(op.output.revision) || op.output.revision < 1) throw new Error(`${where}: revision ${op.output.revision} is not a positive integer`);
  }
}

/** A write: a key set to a value (null: deleted). */
export interface Write {
  key: string;
  value: string | null;
  op: HistoryOp;
}

/**
 * The write an acknowledged operation made, with the revision it was made at: a put, a delete
 * that deleted something, a CAS that succeeded. Null for reads and for writes that changed
 * nothing (etcd gives those no revision of their own).
 */
export function acknowledgedWrite(op: HistoryOp): (Write & { revision: number }) | null {
  const out = op.output;
  if (out === null) return null;
  const input = op.input;
  if (input.f === 'put') return { key: input.key, value: input.value, op, revision: out.revision };
  if (input.f === 'delete' && out.f === 'delete' && out.deleted > 0) return { key: input.key, value: null, op, revision: out.revision };
  if (input.f === 'cas' && out.f === 'cas' && out.succeeded) return { key: input.key, value: input.value, op, revision: out.revision };
  return null;
}

/** The write an operation with an unknown outcome would have made if it took effect. */
export function possibleWrite(op: HistoryOp): Write | null {
  if (op.output !== null) return null;
  const input = op.input;
  if (input.f === 'put' || input.f === 'cas') return { key: input.key, value: input.value, op };
  if (input.f === 'delete') return { key: input.key, value: null, op };
  return null;
}

function quote(value: string | null): string {
  return value === null ? 'nil' : JSON.stringify(value);
}

function describeInput(input: OpInput): string {
  switch (input.f) {
    case 'get': return `get(${quote(input.key)})`;
    case 'put': return `put(${quote(input.key)}, ${quote(input.value)})`;
    case 'delete': return `delete(${quote(input.key)})`;
    case 'cas': return `cas(${quote(input.key)}, expect ${quote(input.expected)}, set ${quote(input.value)})`;
    case 'range': return `range(prefix ${quote(input.prefix)})`;
  }
}

function describeOutput(output: OpOutput | null): string {
  if (output === null) return 'unknown outcome';
  switch (output.f) {
    case 'get': return `${quote(output.value)} @rev ${output.revision}`;
    case 'put': return `ok @rev ${output.revision}`;
    case 'delete': return `deleted ${output.deleted} @rev ${output.revision}`;
    case 'cas': return `${output.succeeded ? 'succeeded' : `failed, read ${quote(output.value)}`} @rev ${output.revision}`;
    case 'range': return `${JSON.stringify(output.kvs)} @rev ${output.revision}`;
  }
}

/** One line a human can read: `#12 client 3 [10, 14.5] get("k1") -> "v2" @rev 7`. */
export function describeOp(op: HistoryOp): string {
  const ret = op.ret === Infinity ? '∞' : String(op.ret);
  return `#${op.id} client ${op.client} [${op.call}, ${ret}] ${describeInput(op.input)} -> ${describeOutput(op.output)}`;
}

/**
 * How many of `byReturn` (sorted by return time) returned strictly before `call`: an operation
 * that returned at the instant another was called counts as concurrent with it, not before it.
 */
export function countReturnedBefore(byReturn: readonly HistoryOp[], call: number): number {
  let lo = 0;
  let hi = byReturn.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (byReturn[mid].ret < call) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * floor(t): the greatest revision any operation that returned strictly before time t reported
 * (0 if none). Had an operation called at t taken effect, etcd would have given it a greater
 * revision (a write) or at least that one (a read).
 */
export function revisionFloor(history: readonly HistoryOp[]): (time: number) => number {
  const returned = history.filter((op) => op.output !== null).sort((a, b) => a.ret - b.ret);
  const best: number[] = [];
  for (const op of returned) best.push(Math.max(best[best.length - 1] ?? 0, op.output!.revision));
  return (time) => {
    const before = countReturnedBefore(returned, time);
    return before === 0 ? 0 : best[before - 1];
  };
}
