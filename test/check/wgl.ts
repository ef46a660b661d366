// The Wing–Gong linearizability search with Lowe's memoization, for one key's history.
//
// The history becomes a list of call and return events in time order (a call sorts before a
// return at the same instant, so touching intervals count as concurrent: the checker must
// never reject a history that a legitimate run could produce). The search walks the list:
// at a call it tries to linearize that operation now — apply it to the model and, if the
// model accepts the output, remove the call and its return from the list and start again
// from the front; at a return it has met an operation that had to take effect already, so
// it backtracks (undoes the most recent choice and tries the next call after it). A cache
// of (set of linearized operations, model state) pairs already explored prunes the search
// from exponential to, in practice, near-linear for histories with little concurrency.
//
// An operation with an unknown outcome has no return event: it may be linearized at any
// point after its call, and once every acknowledged operation has been linearized the
// search succeeds, the rest never having taken effect (equivalent, for one key, to taking
// effect after everything).

/** One operation on one key, ready for the search. */
export interface KeyOp<S> {
  /** Index of the recorded operation this comes from, for witnesses. */
  source: number;
  call: number;
  /** Infinity for an unknown outcome. */
  ret: number;
  /** The state after the operation, or undefined when its recorded output is impossible in `state`. */
  step(state: S): S | undefined;
}

export type SearchResult =
  | { ok: true; steps: number }
  | { ok: false; steps: number; linearized: number[]; stateAfter: unknown; stuck: number; candidates: number[] }
  | { ok: 'unknown'; steps: number };

export interface SearchBudget {
  /** Steps left across every search sharing this budget. */
  stepsLeft: number;
  /** Absolute deadline on `now()`. */
  deadline: number;
  now(): number;
}

const HEAD = 0;
/** How many steps between two reads of the clock. */
const CLOCK_CHECK_STEPS = 4096;

/**
 * Searches for a linearization of `ops` starting from `initial`. `stateKey` must map equal
 * model states to equal strings (it keys the memo cache).
 */
export function searchLinearization<S>(ops: KeyOp<S>[], initial: S, stateKey: (s: S) => string, budget: SearchBudget): SearchResult {
  // Events: 1..n are calls, n+1.. are returns of acknowledged ops; 0 and last are sentinels.
  const n = ops.length;
  const events: { time: number; isCall: boolean; op: number }[] = [];
  ops.forEach((op, i) => {
    events.push({ time: op.call, isCall: true, op: i });
    if (op.ret !== Infinity) events.push({ time: op.ret, isCall: false, op: i });
  });
  events.sort((a, b) => a.time - b.time || (a.isCall === b.isCall ? 0 : a.isCall ? -1 : 1));
  const size = events.length + 2;
  const TAIL = size - 1;
  const next = new Int32Array(size);
  const prev = new Int32Array(size);
  const isCall = new Uint8Array(size);
  const opOf = new Int32Array(size);
  const returnOf = new Int32Array(n).fill(-1);
  const callOf = new Int32Array(n);
  for (let i = 0; i < size; i++) {
    next[i] = i + 1;
    prev[i] = i - 1;
  }
  events.forEach((e, i) => {
    const node = i + 1;
    isCall[node] = e.isCall ? 1 : 0;
    opOf[node] = e.op;
    if (e.isCall) callOf[e.op] = node;
    else returnOf[e.op] = node;
  });

  const unlink = (x: number): void => {
    next[prev[x]] = next[x];
    prev[next[x]] = prev[x];
  };
  const relink = (x: number): void => {
    next[prev[x]] = x;
    prev[next[x]] = x;
  };

  const words = new Uint16Array(Math.ceil(n / 16) || 1);
  const flip = (i: number): void => {
    words[i >> 4] ^= 1 << (i & 15);
  };
  const seen = new Set<string>();
  const stack: { op: number; state: S }[] = [];
  let state = initial;
  let acknowledgedLeft = ops.filter((op) => op.ret !== Infinity).length;
  let steps = 0;
  let best: { depth: number; linearized: number[]; stateAfter: S; stuck: number; candidates: number[] } | null = null;

  let node = next[HEAD];
  while (acknowledgedLeft > 0) {
    steps++;
    if (--budget.stepsLeft < 0) return { ok: 'unknown', steps };
    if (steps % CLOCK_CHECK_STEPS === 0 && budget.now() > budget.deadline) return { ok: 'unknown', steps };
    if (node === TAIL) throw new Error('linearizability search: walked past the last event with acknowledged operations left (a bug in the search)');
    const op = opOf[node];
    if (isCall[node]) {
      const after = ops[op].step(state);
      if (after !== undefined) {
        flip(op);
        const memo = String.fromCharCode(...words) + '\u0000' + stateKey(after);
        if (!seen.has(memo)) {
          seen.add(memo);
          stack.push({ op, state });
          state = after;
          unlink(node);
          if (returnOf[op] >= 0) {
            unlink(returnOf[op]);
            acknowledgedLeft--;
          }
          node = next[HEAD];
          continue;
        }
        flip(op);
      }
      node = next[node];
      continue;
    }
    // A return: `op` must have been linearized before this point, and no choice made so far allows it.
    if (best === null || stack.length > best.depth) best = snapshotFailure(stack, state, op, node);
    const undo = stack.pop();
    if (undo === undefined) return { ok: false, steps, ...best! };
    flip(undo.op);
    if (returnOf[undo.op] >= 0) {
      relink(returnOf[undo.op]);
      acknowledgedLeft++;
    }
    relink(callOf[undo.op]);
    state = undo.state;
    node = next[callOf[undo.op]];
  }
  return { ok: true, steps };

  function snapshotFailure(linearizedStack: { op: number }[], stateNow: S, stuck: number, at: number) {
    const candidates: number[] = [];
    for (let x = next[HEAD]; x !== at; x = next[x]) if (isCall[x]) candidates.push(ops[opOf[x]].source);
    return { depth: linearizedStack.length, linearized: linearizedStack.map((e) => ops[e.op].source), stateAfter: stateNow, stuck: ops[stuck].source, candidates };
  }
}
