// The safety checkers. Members report what they persist, apply, snapshot and become; every
// report is checked at once against the cluster's whole history, and the first violation
// throws a SimFailure carrying the offending values. The properties are the Raft paper's
// (figure 3) plus the application-level ones etcd relies on.

import { EntryType } from '../../src/raft/types.ts';
import type { ConfState, Entry, HardState, MemberId } from '../../src/raft/types.ts';
import type { SimDisk } from './seams.ts';
import { hashString32 } from './prng.ts';

export class SimFailure extends Error {
  constructor(
    readonly property: string,
    message: string,
  ) {
    super(`${property}: ${message}`);
  }
}

/**
 * What identifies an entry's content: its type, a hash of its bytes and their length (a client
 * proposal's bytes carry its proposer and sequence number, so distinct proposals differ).
 */
export function entryKey(e: Entry): string {
  if (e.type === EntryType.Normal && e.data.byteLength === 0) return 'noop';
  let h = 0x811c9dc5;
  for (let i = 0; i < e.data.byteLength; i++) h = Math.imul(h ^ e.data[i], 0x01000193) >>> 0;
  return `${e.type === EntryType.Normal ? 'entry' : 'confchange'}#${h.toString(16)}/${e.data.byteLength}`;
}

interface CommittedEntry {
  term: number;
  key: string;
  firstMember: MemberId;
}

interface LoggedEntry {
  key: string;
  /** Term of the preceding entry in the log that held this one, or -1 if unknown (compacted). */
  prevTerm: number;
  member: MemberId;
}

export class SafetyChecker {
  /** term → the one member that led it. */
  private readonly leaderByTerm = new Map<number, MemberId>();
  /** index → the entry first applied there; every later application must match. */
  private readonly committed = new Map<number, CommittedEntry>();
  /** `${index}/${term}` → the entry first persisted with that index and term, anywhere. */
  private readonly logged = new Map<string, LoggedEntry>();
  /** index → the configuration that applying the conf change at that index produced. */
  private readonly confStateByIndex = new Map<number, { conf: string; member: MemberId }>();
  /** `${member}/${term}` → the candidate that member voted for in that term. */
  private readonly voteByMemberTerm = new Map<string, MemberId>();
  /** index → a term by which it was committed: the term of the first persisted commit covering it. */
  private readonly commitTermByIndex = new Map<number, number>();
  /** Highest commit index any member has persisted. */
  commitMax = 0;
  /** Highest index applied anywhere (the committed map is dense up to here). */
  appliedMax = 0;
  leadersElected = 0;
  entriesCommitted = 0;

  /** Election safety: at most one leader per term, across the whole history. */
  onBecameLeader(member: MemberId, term: number, storage: SimDisk): void {
    const previous = this.leaderByTerm.get(term);
    if (previous !== undefined && previous !== member) {
      throw new SimFailure('election safety', `term ${term} has two leaders: m${previous} and m${member}`);
    }
    if (previous === undefined) this.leadersElected++;
    this.leaderByTerm.set(term, member);
    this.checkLeaderCompleteness(member, term, storage);
  }

  /**
   * Leader completeness (Raft §5.4): an entry committed in term U is in the log of every leader
   * of a term after U. A leader of an older term may still win late (its vote answers were
   * delayed, or it was frozen) and legitimately lack newer entries, so each entry is checked
   * only against leaders of terms after the one it was committed in.
   */
  private checkLeaderCompleteness(member: MemberId, term: number, storage: SimDisk): void {
    const snapIndex = storage.snapshotIndex();
    for (let index = 1; index <= this.appliedMax; index++) {
      const c = this.committed.get(index);
      if (!c) continue;
      if (index < snapIndex) continue;
      const committedInTerm = this.commitTermByIndex.get(index);
      if (committedInTerm === undefined || committedInTerm >= term) continue;
      const haveTerm = storage.term(index);
      const have = index === snapIndex ? null : storage.entry(index);
      if (haveTerm === null) {
        throw new SimFailure(
          'leader completeness',
          `m${member} leads term ${term} but its log (snapshot ${snapIndex}, last ${storage.lastIndex()}) lacks committed entry ${index}/t${c.term} "${c.key}"`,
        );
      }
      if (haveTerm !== c.term || (have && entryKey(have) !== c.key)) {
        throw new SimFailure(
          'leader completeness',
          `m${member} leads term ${term} with entry ${index}/t${haveTerm} "${have ? entryKey(have) : '(snapshot)'}" but ${index}/t${c.term} "${c.key}" was committed (first applied by m${c.firstMember})`,
        );
      }
    }
  }

  /**
   * Log matching, checked per entry as it is persisted: two entries with the same index and term
   * hold the same payload and follow an entry of the same term (which, by induction, makes the
   * logs identical up to there). A member never overwrites an entry it already knew to be
   * committed (a stale leader may still append below the cluster's commit index: its entries
   * are uncommitted and will be replaced).
   */
  onPersisted(member: MemberId, entries: readonly Entry[], storage: SimDisk, commitKnown: number): void {
    for (const e of entries) {
      const key = entryKey(e);
      const prev = storage.term(e.index - 1);
      const prevTerm = prev === null ? -1 : prev;
      const id = `${e.index}/${e.term}`;
      const seen = this.logged.get(id);
      if (!seen) {
        this.logged.set(id, { key, prevTerm, member });
      } else {
        if (seen.key !== key) {
          throw new SimFailure('log matching', `entry ${id} is "${key}" on m${member} but "${seen.key}" on m${seen.member}`);
        }
        if (seen.prevTerm >= 0 && prevTerm >= 0 && seen.prevTerm !== prevTerm) {
          throw new SimFailure(
            'log matching',
            `entry ${id} follows an entry of term ${prevTerm} on m${member} but of term ${seen.prevTerm} on m${seen.member}`,
          );
        }
        if (seen.prevTerm < 0 && prevTerm >= 0) seen.prevTerm = prevTerm;
      }
      const c = e.index <= commitKnown ? this.committed.get(e.index) : undefined;
      if (c && (c.term !== e.term || c.key !== key)) {
        throw new SimFailure(
          'committed entry lost',
          `m${member} persisted ${e.index}/t${e.term} "${key}" over committed ${e.index}/t${c.term} "${c.key}" ` +
            `(applied by m${c.firstMember}) although it knew commit ${commitKnown}`,
        );
      }
    }
  }

  /**
   * Vote safety: within one term a member votes for one candidate at most, across crashes too
   * (a vote that a crash could lose was not synced before the member answered).
   */
  onHardState(member: MemberId, hs: HardState): void {
    if (hs.vote === 0) return;
    const key = `${member}/${hs.term}`;
    const previous = this.voteByMemberTerm.get(key);
    if (previous === undefined) this.voteByMemberTerm.set(key, hs.vote);
    else if (previous !== hs.vote) {
      throw new SimFailure('vote safety', `m${member} voted for m${previous} and then for m${hs.vote} in term ${hs.term}`);
    }
  }

  /** A member's commit index only moves forward, across crashes too (its floor is what it persisted). */
  onCommit(member: MemberId, commit: number, commitFloor: number, term: number): void {
    if (commit < commitFloor) {
      throw new SimFailure('commit regression', `m${member} commit went from ${commitFloor} back to ${commit}`);
    }
    // The first persisted commit covering an index bounds the term it was committed in.
    for (let index = this.commitMax + 1; index <= commit; index++) this.commitTermByIndex.set(index, term);
    if (commit > this.commitMax) this.commitMax = commit;
  }

  /**
   * State machine safety: every member commits (and so applies) the same entry at the same
   * index. Checked on each member's disk as its commit index covers an entry, and on the log a
   * restarted member replays.
   */
  onCommitted(member: MemberId, e: Entry, how: string): void {
    const key = entryKey(e);
    const c = this.committed.get(e.index);
    if (!c) {
      this.committed.set(e.index, { term: e.term, key, firstMember: member });
      if (e.index > this.appliedMax) this.appliedMax = e.index;
    } else if (c.term !== e.term || c.key !== key) {
      throw new SimFailure(
        'state machine safety',
        `m${member} ${how} ${e.index}/t${e.term} "${key}" but m${c.firstMember} committed ${e.index}/t${c.term} "${c.key}"`,
      );
    }
    this.entriesCommitted++;
  }

  /** A snapshot's term is the committed entry's term at its index. */
  onSnapshot(member: MemberId, index: number, term: number, how: string): void {
    const c = this.committed.get(index);
    if (c && c.term !== term) {
      throw new SimFailure('snapshot', `m${member} ${how} a snapshot at ${index}/t${term} but entry ${index} was committed in term ${c.term}`);
    }
  }

  /** Applying the same conf change at the same index yields the same configuration everywhere. */
  onConfState(member: MemberId, index: number, cs: ConfState): void {
    const conf = describeConfState(cs);
    const seen = this.confStateByIndex.get(index);
    if (!seen) this.confStateByIndex.set(index, { conf, member });
    else if (seen.conf !== conf) {
      throw new SimFailure('configuration', `m${member} got ${conf} applying index ${index} but m${seen.member} got ${seen.conf}`);
    }
  }

  confChangesApplied(): number {
    return this.confStateByIndex.size;
  }

  committedEntry(index: number): CommittedEntry | undefined {
    return this.committed.get(index);
  }

  /** A digest of the committed history, for comparing runs. */
  historyDigest(): string {
    let h = 0;
    for (let i = 1; i <= this.appliedMax; i++) {
      const c = this.committed.get(i);
      h = hashString32(c ? `${i}/${c.term}/${c.key}` : `${i}/?`, h);
    }
    return h.toString(16);
  }
}

export function describeConfState(cs: ConfState): string {
  const list = (ids: MemberId[]) => ids.slice().sort((a, b) => a - b).join(',');
  let s = `voters=[${list(cs.voters)}]`;
  if (cs.learners.length > 0) s += ` learners=[${list(cs.learners)}]`;
  if (cs.votersOutgoing.length > 0) s += ` outgoing=[${list(cs.votersOutgoing)}]`;
  if (cs.learnersNext.length > 0) s += ` learnersNext=[${list(cs.learnersNext)}]`;
  if (cs.autoLeave) s += ' autoLeave';
  return s;
}

export function confMembers(cs: ConfState): MemberId[] {
  const all = new Set<MemberId>([...cs.voters, ...cs.learners, ...cs.votersOutgoing, ...cs.learnersNext]);
  return [...all].sort((a, b) => a - b);
}
