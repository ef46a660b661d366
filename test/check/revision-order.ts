// The per-key linearizability search guided by etcd's revisions (issue 15).
//
// WHY
// The Wing–Gong search (wgl.ts) orders a key's operations by wall-clock intervals only. On a
// long torture history (hundreds of thousands of operations, eight clients, hundreds of writes
// with unknown outcome) many intervals overlap and every unknown write stays pending to the
// end, so the search hits its cap and answers "unknown". etcd fixes most of the order itself:
// every acknowledged write has a revision of its own and every read a header revision, and
// checkRevisions (revisions.ts) has already verified that this order follows real time. So the
// acknowledged operations of a key are placed in revision order, and the search is only over
// where the writes with unknown outcome fall.
//
// THE ORDER
// Acknowledged operations on the key are sorted by (revision, writes before reads, then reads
// by return time): a write at its revision, a read (a get, a range projected on the key, a
// failed CAS, a delete that found nothing) after the write at its header revision and before
// the next. checkRevisions guarantees this respects real time: an operation that returned
// before another was called has a revision no greater (strictly smaller for a later write),
// and reads at one revision sorted by return time keep their real-time order.
// A write with unknown outcome U may be placed just before any acknowledged operation whose
// revision exceeds L(U), the greatest revision of any acknowledged operation (on any key) that
// returned before U was called — or nowhere (it never happened). Placed there it follows every
// operation that returned before its call, and it has no return to precede anything, so:
//
// SOUNDNESS: a sequence found is a valid linearization of the key's sub-history (register
// semantics, real-time order), whatever the revisions say — acceptance needs no trust in them
// beyond checkRevisions having passed. COMPLETENESS for a legitimate etcd run: a write that
// took effect got a revision greater than L(U), so the true order is among those searched.
// A key this search rejects has no order consistent with the revisions etcd reported; the
// caller then asks the wall-clock search (wgl.ts) whether it is linearizable at all.
//
// THE SEARCH
// Depth-first over states (next acknowledged index, register value, unknown writes used).
// From a state it first takes the next acknowledged operation if the model accepts it, then
// tries each available unknown write. Unknown writes with the same effect (the deletes of a
// key, puts of one value) form one group: they differ only in how early they become
// available, and with no return none has a deadline, so which member of a group is used does
// not matter — only how many. A memo of visited states prunes repeats, and unknown writes that
// would be overwritten before anything could observe them are not tried (see the loop).

/** The state of one key: its value, or null when absent. */
export type Register = string | null;

export interface AckedKeyOp {
  /** Id of the recorded operation, for witnesses. */
  source: number;
  revision: number;
  isWrite: boolean;
  /** A put: its state after does not depend on the state before. */
  overwrites: boolean;
  ret: number;
  /** The state after the operation, or undefined when its recorded output is impossible in `state`. */
  step(state: Register): Register | undefined;
}

export interface UnknownKeyOp {
  source: number;
  /** Ops with equal signatures have the same effect (interchangeable). */
  signature: string;
  /** L(U): the op may be placed only before acknowledged ops with a greater revision. */
  afterRevision: number;
  /** A put or delete: its state after does not depend on the state before. */
  overwrites: boolean;
  step(state: Register): Register | undefined;
}

export interface RevisionBudget {
  stepsLeft: number;
  deadline: number;
  now(): number;
}

export type RevisionSearchResult =
  | { ok: true; steps: number }
  | { ok: false; steps: number; linearized: number[]; stateAfter: Register; stuck: number; candidates: number[] }
  | { ok: 'unknown'; steps: number };

interface Group {
  overwrites: boolean;
  step(state: Register): Register | undefined;
  /** afterRevision of each member, ascending. */
  after: number[];
  sources: number[];
}

interface Frame {
  i: number;
  state: Register;
  /** Used count per group, shared and restored on backtrack via `usedGroup`. */
  usedKey: string;
  /** Next alternative to try: -1 the acknowledged op, then group k as k (first pass) and open + k (second pass). */
  alt: number;
  /** The group this frame used to get here (-1: came by an acknowledged op or the root). */
  usedGroup: number;
}

const CLOCK_CHECK_STEPS = 4096;

function registerKey(state: Register): string {
  return state === null ? '\u0001' : `=${state}`;
}

export function searchByRevision(ackedIn: AckedKeyOp[], unknown: UnknownKeyOp[], budget: RevisionBudget): RevisionSearchResult {
  const acked = [...ackedIn].sort((a, b) => a.revision - b.revision || Number(a.isWrite ? 0 : 1) - Number(b.isWrite ? 0 : 1) || a.ret - b.ret);
  const bySignature = new Map<string, Group>();
  for (const u of [...unknown].sort((a, b) => a.afterRevision - b.afterRevision)) {
    let g = bySignature.get(u.signature);
    if (g === undefined) bySignature.set(u.signature, (g = { overwrites: u.overwrites, step: u.step, after: [], sources: [] }));
    g.after.push(u.afterRevision);
    g.sources.push(u.source);
  }
  // Groups sorted by when their first member becomes available.
  const groups = [...bySignature.values()].sort((a, b) => a.after[0] - b.after[0]);
  const used = new Int32Array(groups.length);
  /** How many members of group g may be placed before acknowledged op i. */
  const available = (g: number, i: number): number => {
    const after = groups[g].after;
    const revision = acked[i].revision;
    let lo = 0;
    let hi = after.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (after[mid] < revision) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  /** Number of groups with at least one member available before acknowledged op i. */
  const groupsOpen = (i: number): number => {
    const revision = acked[i].revision;
    let lo = 0;
    let hi = groups.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (groups[mid].after[0] < revision) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };

  const seen = new Set<string>();
  const stack: Frame[] = [{ i: 0, state: null, usedKey: '', alt: -1, usedGroup: -1 }];
  let steps = 0;
  let deepest = { i: -1, state: null as Register };

  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    if (top.i === acked.length) return { ok: true, steps };
    steps++;
    if (--budget.stepsLeft < 0) return { ok: 'unknown', steps };
    if (steps % CLOCK_CHECK_STEPS === 0 && budget.now() > budget.deadline) return { ok: 'unknown', steps };
    const open = groupsOpen(top.i);
    if (top.i > deepest.i) deepest = { i: top.i, state: top.state };
    let pushed: Frame | null = null;
    // Alternatives: the acknowledged op, then the unknown writes after which it is accepted
    // (the likely ones), then the other unknown writes (the start of a chain of them).
    while (pushed === null && top.alt < 2 * open) {
      const alt = top.alt++;
      if (alt < 0) {
        const after = acked[top.i].step(top.state);
        if (after !== undefined) pushed = { i: top.i + 1, state: after, usedKey: top.usedKey, alt: -1, usedGroup: -1 };
        continue;
      }
      const g = alt % open;
      if (used[g] >= available(g, top.i)) continue;
      // Pruned without losing an order: an unknown write placed just before an acknowledged
      // put, or an unknown put or delete placed just after another unknown write, is
      // overwritten before anything observes it; one that leaves the value as it was (a CAS
      // whose compare fails, a put of the value already there) changes nothing. The same
      // order without it is valid too, and leaves it free for later.
      if (acked[top.i].overwrites || (groups[g].overwrites && top.usedGroup >= 0)) continue;
      const after = groups[g].step(top.state);
      if (after === undefined || after === top.state) continue;
      const enables = acked[top.i].step(after) !== undefined;
      if (enables !== alt < open) continue;
      pushed = { i: top.i, state: after, usedKey: `${top.usedKey},${g}`, alt: -1, usedGroup: g };
    }
    if (pushed === null) {
      const done = stack.pop()!;
      if (done.usedGroup >= 0) used[done.usedGroup]--;
      continue;
    }
    // The used set is keyed in the order of use: equal sets reached in another order are
    // explored again, which costs time but never hides an order.
    const memo = `${pushed.i}\u0000${registerKey(pushed.state)}\u0000${pushed.usedKey}`;
    if (seen.has(memo)) continue;
    seen.add(memo);
    if (pushed.usedGroup >= 0) used[pushed.usedGroup]++;
    stack.push(pushed);
  }
  const stuck = acked[deepest.i];
  return {
    ok: false,
    steps,
    linearized: acked.slice(0, deepest.i).map((op) => op.source),
    stateAfter: deepest.state,
    stuck: stuck.source,
    // The unknown writes that could have been placed there (one per group).
    candidates: groups.slice(0, groupsOpen(deepest.i)).map((g) => g.sources[0]),
  };
}
