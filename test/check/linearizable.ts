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
//    checkLinearizable searches each key in revision order (revision-order.ts): once the
//    revision checks of part 2 passed, acknowledged ops are placed by their revisions and only
//    the unknown-outcome writes are placed by the search, which keeps a long history with heavy
//    overlap near-linear. A key with no order agreeing with the revisions is searched again by
//    wall clock alone (wgl.ts): `non-linearizable` if that search finds no order either, else
//    `non-linearizable-at-revisions`. checkKeyValues is the wall-clock search alone.
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
// Both searches are capped by steps and by wall-clock time shared across keys; a key whose
// search hits the cap makes the whole answer 'unknown' (unless another key is a definite violation).

import type { CheckResult, HistoryOp, OpInput } from './history.ts';
import { acknowledgedWrite, describeOp, isUnknown, revisionFloor, validateHistory } from './ops.ts';
import { searchByRevision, type AckedKeyOp, type UnknownKeyOp } from './revision-order.ts';
import { checkRevisions } from './revisions.ts';
import { searchLinearization, type KeyOp, type SearchBudget, type SearchResult } from './wgl.ts';

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
/** Steps the wall-clock search may spend on a key the revision-order search rejected. */
const WALL_CLOCK_RECHECK_STEPS_MAX = 2_000_000;

type Register = string | null;

/**
 * Checks a whole history: revisions first (linear time, and a violation there has a witness
 * of one or two operations), then per-key values (the WGL search).
 */
export function checkLinearizable(history: HistoryOp[], opts: LinearizabilityOptions = {}): CheckResult {
  validateHistory(history);
  const revisions = checkRevisions(history);
  if (revisions.ok === false) return revisions;
  return checkKeyValuesByRevision(history, opts);
}

/**
 * Part 1 once the revision checks passed: each key's acknowledged operations in revision
 * order, the search only over where writes with unknown outcome fall (revision-order.ts). A
 * key with no order that agrees with the revisions is searched again by wall clock alone
 * (wgl.ts): a definite wall-clock violation is reported as `non-linearizable`; otherwise the
 * key is still a violation of etcd's revision guarantees, `non-linearizable-at-revisions`.
 */
function checkKeyValuesByRevision(history: HistoryOp[], opts: LinearizabilityOptions): CheckResult {
  const budget = budgetOf(opts);
  const byId = new Map(history.map((op) => [op.id, op]));
  const op = (id: number) => describeOp(byId.get(id)!);
  const searched = new Set<number>();
  const gaveUp: string[] = [];
  const unobservable = unobservableWrites(history);
  const afterRevision = lowerRevisionBound(history);
  for (const [key, { acked, unknown }] of partitionByRevision(history, unobservable, afterRevision)) {
    const result = searchByRevision(acked, unknown, budget);
    if (result.ok === 'unknown') {
      gaveUp.push(key);
      continue;
    }
    if (result.ok === true) {
      for (const keyOp of acked) searched.add(keyOp.source);
      for (const keyOp of unknown) searched.add(keyOp.source);
      continue;
    }
    const keyOps = partitionByKey(history).get(key)!;
    // Its own bounded budget: the wall-clock search on a long key may not finish, and the
    // answer is a violation either way.
    const wallClock = searchLinearization(keyOps, null as Register, registerKey, { stepsLeft: Math.min(budget.stepsLeft, WALL_CLOCK_RECHECK_STEPS_MAX), deadline: budget.deadline, now: budget.now });
    if (wallClock.ok === false) return nonLinearizable(key, keyOps.length, wallClock, byId, searched.size);
    return {
      ok: false,
      checked: searched.size,
      anomaly: 'non-linearizable-at-revisions',
      witness: {
        key,
        explanation: `no order of the ${acked.length} acknowledged operations on ${JSON.stringify(key)} in the order of their revisions, with the ${unknown.length} writes of unknown outcome placed anywhere after the revisions seen before their call, explains them (the wall-clock search alone: ${wallClock.ok === true ? 'found an order, so the revisions reported are what is wrong' : 'gave up'}); in revision order the key holds ${JSON.stringify(result.stateAfter)} when ${op(result.stuck)} must take effect, and no write of unknown outcome placed before it helps`,
        linearizedPrefixLength: result.linearized.length,
        linearizedPrefixEnd: result.linearized.slice(-witnessPrefixOpsMax).map(op),
        stuck: op(result.stuck),
        unknownWritesAvailable: result.candidates.slice(0, witnessPrefixOpsMax).map(op),
      },
    };
  }
  if (gaveUp.length > 0) return { ok: 'unknown', checked: searched.size, reason: capReason(gaveUp) };
  return { ok: true, checked: searched.size };
}

function nonLinearizable(key: string, opCount: number, result: Extract<SearchResult, { ok: false }>, byId: Map<number, HistoryOp>, checked: number): CheckResult {
  const op = (id: number) => describeOp(byId.get(id)!);
  return {
    ok: false,
    checked,
    anomaly: 'non-linearizable',
    witness: {
      key,
      explanation: `no order of the ${opCount} operations on ${JSON.stringify(key)} explains them; the longest valid prefix found (${result.linearized.length} operations, ending as shown) leaves the key at ${JSON.stringify(result.stateAfter)}, then ${op(result.stuck)} must take effect before it returns, but neither it nor any operation still pending can be applied next`,
      linearizedPrefixLength: result.linearized.length,
      linearizedPrefixEnd: result.linearized.slice(-witnessPrefixOpsMax).map(op),
      stuck: op(result.stuck),
      pendingAtThatPoint: result.candidates.map(op),
    },
  };
}

function budgetOf(opts: LinearizabilityOptions): SearchBudget {
  return {
    stepsLeft: opts.stepLimit ?? STEP_LIMIT_DEFAULT,
    deadline: performance.now() + (opts.timeLimitMs ?? TIME_LIMIT_MS_DEFAULT),
    now: () => performance.now(),
  };
}

function capReason(gaveUp: string[]): string {
  return `search cap reached (step or time limit) on key(s) ${gaveUp.slice(0, 5).map((k) => JSON.stringify(k)).join(', ')}${gaveUp.length > 5 ? ` and ${gaveUp.length - 5} more` : ''}`;
}

/**
 * L(U) for each operation with unknown outcome: the greatest revision any acknowledged
 * operation reported among those that returned strictly before U was called (0 if none).
 * Had U taken effect, etcd would have given it a greater revision.
 */
function lowerRevisionBound(history: HistoryOp[]): Map<number, number> {
  const floor = revisionFloor(history);
  const out = new Map<number, number>();
  for (const h of history) if (h.output === null) out.set(h.id, floor(h.call));
  return out;
}

/** The revision search's input per key: acknowledged ops with their revisions, unknown writes with L(U). */
function partitionByRevision(history: HistoryOp[], unobservable: Set<HistoryOp>, afterRevision: Map<number, number>): Map<string, { acked: AckedKeyOp[]; unknown: UnknownKeyOp[] }> {
  const keys = [...keysOf(history)].sort();
  const partitions = new Map(keys.map((k) => [k, { acked: [] as AckedKeyOp[], unknown: [] as UnknownKeyOp[] }]));
  for (const h of history) {
    if (unobservable.has(h)) continue;
    if (h.input.f === 'range') {
      if (h.output?.f !== 'range') continue;
      const revision = h.output.revision;
      for (const [key, value] of rangeProjection(h.input.prefix, h.output.kvs, keys)) {
        partitions.get(key)!.acked.push({ source: h.id, revision, isWrite: false, overwrites: false, ret: h.ret, step: (s) => (s === value ? s : undefined) });
      }
      continue;
    }
    const keyOp = singleKeyOp(h);
    if (keyOp === null) continue;
    const partition = partitions.get(h.input.key)!;
    if (h.output === null) {
      // singleKeyOp returned a step, so this is a put, delete or CAS (unknown reads are dropped).
      const input = h.input as Extract<OpInput, { f: 'put' | 'delete' | 'cas' }>;
      const signature = input.f === 'delete' ? 'delete' : input.f === 'put' ? `put=${input.value}` : `cas${input.expected === null ? '\u0001' : `=${input.expected}`}\u0000=${input.value}`;
      partition.unknown.push({ source: h.id, signature, afterRevision: afterRevision.get(h.id)!, overwrites: input.f !== 'cas', step: keyOp.step });
    } else {
      partition.acked.push({ source: h.id, revision: h.output.revision, isWrite: acknowledgedWrite(h) !== null, overwrites: h.input.f === 'put', ret: h.ret, step: keyOp.step });
    }
  }
  return partitions;
}

/** Only the per-key search (part 1 above), without the revision checks. */
export function checkKeyValues(history: HistoryOp[], opts: LinearizabilityOptions = {}): CheckResult {
  validateHistory(history);
  const budget = budgetOf(opts);
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
    if (result.ok === false) return nonLinearizable(key, ops.length, result, byId, checked);
  }
  if (gaveUp.length > 0) {
    return { ok: 'unknown', checked: searched.size, reason: capReason(gaveUp) };
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

/** What a range read under `prefix` showed of each of `keys` it covers: its value, or null (absent). */
function rangeProjection(prefix: string, kvs: Readonly<Record<string, string>>, keys: readonly string[]): [string, Register][] {
  return keys.filter((key) => key.startsWith(prefix)).map((key) => [key, kvs[key] ?? null]);
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
      for (const [key, value] of rangeProjection(op.input.prefix, op.output.kvs, keys)) partitions.get(key)!.push(readOp(op, value));
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
