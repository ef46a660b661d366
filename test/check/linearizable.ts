// The linearizability checker for key-value histories.
//
// WHAT IS CHECKED
// 1. Per key, values (the Wing–Gong/Lowe search in wgl.ts): etcd's single-key operations are
//    linearizable on each key, and linearizability is compositional (P-compositionality), so
//    each key's sub-history is searched on its own against a register model (value or absent):
//    get, put, delete (its `deleted` count must match), CAS (succeeded iff the value equalled
//    `expected`; a failed CAS must read the current value). A range read is projected onto
//    every key it covers — every key of the history under its prefix; a covered key missing
//    from the result reads as absent — and each projection is a read in that key's search.
//    Reads with unknown outcome are dropped (they change nothing); writes with unknown outcome
//    may take effect at any point after their call, or never — and a put or CAS with unknown
//    outcome whose value nothing observes is left out of the search (it cannot matter; see
//    unobservableWrites). Histories start from an empty store.
// 2. Revisions (revisions.ts), the facts etcd adds to every response. These checks cover what
//    the per-key projection cannot see: a range is one snapshot across keys.
//    - each acknowledged write (put, a delete that deleted something, a CAS that succeeded)
//      has a revision of its own;
//    - revisions follow real time: an operation that starts after another returned sees at
//      least that revision, and a write gets a strictly greater one;
//    - every read is a snapshot at its header revision R: each key it shows (a get, each key
//      a range covers, a failed CAS's value) holds the value of the acknowledged write to that
//      key with the greatest revision ≤ R (absent if none), and a succeeded CAS found its
//      expected value at R − 1, a delete found the key present at R − 1 iff it deleted it —
//      unless a write with unknown outcome (called no later than the read returned) could have
//      written the value seen; a range shows only keys under its prefix.
// WHAT IS NOT CHECKED
// - Cross-key atomicity of reads against writes with unknown outcome: their revision is not
//   known, so a range that shows one such write on one key and misses another's is accepted.
// - Serializable (non-linearizable) reads: recorders must not put them in these histories.
// - Multi-key transactions other than the single-key CAS: the history shape has none.
//
// The search is capped by steps and by wall-clock time shared across keys; a key whose search
// hits the cap makes the whole answer 'unknown' (unless another key is a definite violation).

import type { CheckResult, HistoryOp } from './history.ts';
import { describeOp, isUnknown, validateHistory } from './ops.ts';
import { checkRevisions } from './revisions.ts';
import { searchLinearization, type KeyOp, type SearchBudget } from './wgl.ts';

export interface LinearizabilityOptions {
  /** Wall-clock budget for the whole search, across keys. */
  timeLimitMs?: number;
  /** Step budget for the whole search, across keys (one step: one event visited). */
  stepLimit?: number;
}

const TIME_LIMIT_MS_DEFAULT = 10_000;
/** A witness shows the end of the longest valid prefix: the operations that lead to the failure. */
const witnessPrefixOpsMax = 8;
const STEP_LIMIT_DEFAULT = 20_000_000;

type Register = string | null;

/**
 * Checks a whole history: revisions first (linear time, and a violation there has a witness
 * of one or two operations), then per-key values (the WGL search).
 */
export function checkLinearizable(history: HistoryOp[], opts: LinearizabilityOptions = {}): CheckResult {
  validateHistory(history);
  const revisions = checkRevisions(history);
  if (revisions.ok === false) return revisions;
  return checkKeyValues(history, opts);
}

/** Only the per-key search (part 1 above), without the revision checks. */
export function checkKeyValues(history: HistoryOp[], opts: LinearizabilityOptions = {}): CheckResult {
  validateHistory(history);
  const budget: SearchBudget = {
    stepsLeft: opts.stepLimit ?? STEP_LIMIT_DEFAULT,
    deadline: performance.now() + (opts.timeLimitMs ?? TIME_LIMIT_MS_DEFAULT),
    now: () => performance.now(),
  };
  const byId = new Map(history.map((op) => [op.id, op]));
  // Distinct recorded operations in the keys searched to the end (a range counts once).
  const searched = new Set<number>();
  const gaveUp: string[] = [];
  for (const [key, ops] of partitionByKey(history)) {
    const result = searchLinearization(ops, null as Register, registerKey, budget);
    if (result.ok === 'unknown') {
      gaveUp.push(key);
      continue;
    }
    for (const keyOp of ops) searched.add(keyOp.source);
    const checked = searched.size;
    if (result.ok === false) {
      const op = (id: number) => describeOp(byId.get(id)!);
      return {
        ok: false,
        checked,
        anomaly: 'non-linearizable',
        witness: {
          key,
          explanation: `no order of the ${ops.length} operations on ${JSON.stringify(key)} explains them; the longest valid prefix found (${result.linearized.length} operations, ending as shown) leaves the key at ${JSON.stringify(result.stateAfter)}, then ${op(result.stuck)} must take effect before it returns, but neither it nor any operation still pending can be applied next`,
          linearizedPrefixLength: result.linearized.length,
          linearizedPrefixEnd: result.linearized.slice(-witnessPrefixOpsMax).map(op),
          stuck: op(result.stuck),
          pendingAtThatPoint: result.candidates.map(op),
        },
      };
    }
  }
  if (gaveUp.length > 0) {
    return { ok: 'unknown', checked: searched.size, reason: `search cap reached (step or time limit) on key(s) ${gaveUp.slice(0, 5).map((k) => JSON.stringify(k)).join(', ')}${gaveUp.length > 5 ? ` and ${gaveUp.length - 5} more` : ''}` };
  }
  return { ok: true, checked: searched.size };
}

function registerKey(state: Register): string {
  return state === null ? '\u0001' : `=${state}`;
}

/** Every key the history mentions: written, read by a get or CAS, or returned by a range. */
function keysOf(history: HistoryOp[]): Set<string> {
  const keys = new Set<string>();
  for (const op of history) {
    if (op.input.f !== 'range') keys.add(op.input.key);
    else if (op.output?.f === 'range') for (const key of Object.keys(op.output.kvs)) keys.add(key);
  }
  return keys;
}

/** Splits the history into one search input per key, projecting range reads onto the keys they cover. */
function partitionByKey(history: HistoryOp[]): Map<string, KeyOp<Register>[]> {
  const keys = [...keysOf(history)].sort();
  const partitions = new Map<string, KeyOp<Register>[]>(keys.map((k) => [k, []]));
  const unobservable = unobservableWrites(history);
  for (const op of history) {
    if (unobservable.has(op)) continue;
    if (op.input.f === 'range') {
      if (op.output?.f !== 'range') continue;
      const { prefix } = op.input;
      const kvs = op.output.kvs;
      for (const key of keys) {
        if (key.startsWith(prefix)) partitions.get(key)!.push(readOp(op, kvs[key] ?? null));
      }
      continue;
    }
    const keyOp = singleKeyOp(op);
    if (keyOp !== null) partitions.get(op.input.key)!.push(keyOp);
  }
  return partitions;
}

/**
 * Writes with unknown outcome (puts and CASes) that the search can leave out: no operation on
 * the key observes their value — no read returns it, no CAS expects it — and no delete on the
 * key reports deleting something. In any linearization that includes such a write, every
 * operation placed while the key held its value would have accepted the key's previous value
 * too, or is another unknown write that can be left out the same way, so dropping it keeps a
 * valid linearization. Without this, each unknown write that never happened stays pending to
 * the end and doubles the search space of a history that is not linearizable.
 */
function unobservableWrites(history: HistoryOp[]): Set<HistoryOp> {
  const observed = new Map<string, Set<string>>();
  const seen = (key: string, value: string | null) => {
    if (value === null) return;
    let set = observed.get(key);
    if (set === undefined) observed.set(key, (set = new Set()));
    set.add(value);
  };
  const deletesSomething = new Set<string>();
  for (const { input, output } of history) {
    if (input.f === 'cas') seen(input.key, input.expected);
    if (output === null) continue;
    if (output.f === 'get' && input.f === 'get') seen(input.key, output.value);
    else if (output.f === 'range') for (const [key, value] of Object.entries(output.kvs)) seen(key, value);
    else if (output.f === 'cas' && input.f === 'cas' && !output.succeeded) seen(input.key, output.value);
    else if (output.f === 'delete' && input.f === 'delete' && output.deleted > 0) deletesSomething.add(input.key);
  }
  const out = new Set<HistoryOp>();
  for (const op of history) {
    const { input } = op;
    if (op.output !== null || (input.f !== 'put' && input.f !== 'cas')) continue;
    if (!deletesSomething.has(input.key) && !(observed.get(input.key)?.has(input.value) ?? false)) out.add(op);
  }
  return out;
}

function readOp(op: HistoryOp, value: Register): KeyOp<Register> {
  return { source: op.id, call: op.call, ret: op.ret, step: (s) => (s === value ? s : undefined) };
}

/** The register-model step for a get/put/delete/CAS; null for a read with unknown outcome. */
function singleKeyOp(op: HistoryOp): KeyOp<Register> | null {
  const base = { source: op.id, call: op.call, ret: op.ret };
  const { input, output } = op;
  if (isUnknown(op)) {
    switch (input.f) {
      case 'put': return { ...base, step: () => input.value };
      case 'delete': return { ...base, step: () => null };
      case 'cas': return { ...base, step: (s) => (s === input.expected ? input.value : s) };
      default: return null;
    }
  }
  if (input.f === 'get' && output?.f === 'get') return readOp(op, output.value);
  if (input.f === 'put') return { ...base, step: () => input.value };
  if (input.f === 'delete' && output?.f === 'delete') {
    const deleted = output.deleted;
    return { ...base, step: (s) => (deleted === (s === null ? 0 : 1) ? null : undefined) };
  }
  if (input.f === 'cas' && output?.f === 'cas') {
    if (output.succeeded) return { ...base, step: (s) => (s === input.expected ? input.value : undefined) };
    const seen = output.value;
    return { ...base, step: (s) => (s !== input.expected && s === seen ? s : undefined) };
  }
  throw new Error(`history op #${op.id}: unexpected input/output pair ${input.f}/${output?.f}`);
}
