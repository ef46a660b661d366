// The Raft log, held in memory from the last compaction point. Storage is write-behind:
// entries above `stableIndex` are handed out in a Ready to be persisted, then marked stable.

import { assert } from './assert.ts';
import { entrySize, type Entry, type Snapshot } from './types.ts';

export class RaftLog {
  /** Index and term of the entry just before `entries[0]` (the compaction point). */
  private offsetIndex: number;
  private offsetTerm: number;
  /** entries[i].index === offsetIndex + 1 + i. */
  private entries: Entry[];
  /** Invariant: offsetIndex <= committed <= lastIndex() (commit never moves back). */
  committed: number;
  /** Highest index the application has applied. Invariant: applied <= applying <= committed. */
  applied: number;
  /** Highest index handed out in a Ready for applying, not yet confirmed by advance(). */
  applying: number;
  /** Highest index known to be on stable storage. */
  stableIndex: number;
  /** A snapshot received from the leader, not yet persisted and applied. */
  pendingSnapshot: Snapshot | null = null;
  /** The latest snapshot this member holds, sent to followers that fell behind the log. */
  snapshot: Snapshot | null;

  constructor(snapshot: Snapshot | null, entries: Entry[], committed: number) {
    this.snapshot = snapshot;
    this.offsetIndex = snapshot ? snapshot.metadata.index : 0;
    this.offsetTerm = snapshot ? snapshot.metadata.term : 0;
    for (let i = 0; i < entries.length; i++) {
      assert(
        entries[i].index === this.offsetIndex + 1 + i,
        `restored entry ${i} has index ${entries[i].index}, expected ${this.offsetIndex + 1 + i}`,
      );
    }
    this.entries = entries.slice();
    this.stableIndex = this.lastIndex();
    this.committed = Math.max(this.offsetIndex, Math.min(committed, this.lastIndex()));
    this.applied = this.offsetIndex;
    this.applying = this.offsetIndex;
  }

  firstIndex(): number {
    return this.offsetIndex + 1;
  }

  lastIndex(): number {
    return this.offsetIndex + this.entries.length;
  }

  lastTerm(): number {
    return this.term(this.lastIndex()) ?? 0;
  }

  /** The term of the entry at `index`, or undefined if it was compacted or does not exist. */
  term(index: number): number | undefined {
    if (index === this.offsetIndex) return this.offsetTerm;
    if (index < this.offsetIndex || index > this.lastIndex()) return undefined;
    return this.entries[index - this.offsetIndex - 1].term;
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  entryAt(index: number): Entry | undefined {
    if (index <= this.offsetIndex || index > this.lastIndex()) return undefined;
    return this.entries[index - this.offsetIndex - 1];
  }

  /** Raft §5.4.1: is a log ending at (lastIndex, lastTerm) at least as up to date as ours? */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const ourTerm = this.lastTerm();
    return lastTerm > ourTerm || (lastTerm === ourTerm && lastIndex >= this.lastIndex());
  }

  /**
   * Entries [lo, hi) totalling at most `bytesMax` (always at least one entry), or undefined if
   * `lo` was compacted away.
   */
  slice(lo: number, hi: number, bytesMax: number): Entry[] | undefined {
    if (lo <= this.offsetIndex) return undefined;
    hi = Math.min(hi, this.lastIndex() + 1);
    if (lo >= hi) return [];
    const out: Entry[] = [];
    let bytes = 0;
    for (let i = lo; i < hi; i++) {
      const e = this.entries[i - this.offsetIndex - 1];
      bytes += entrySize(e);
      if (out.length > 0 && bytes > bytesMax) break;
      out.push(e);
    }
    return out;
  }

  /** Appends entries that follow the log or overwrite an uncommitted suffix. Returns the new last index. */
  append(ents: readonly Entry[]): number {
    if (ents.length === 0) return this.lastIndex();
    const after = ents[0].index - 1;
    assert(after >= this.committed, `append would overwrite committed entry ${after + 1} (committed ${this.committed})`);
    assert(after <= this.lastIndex(), `append at ${after + 1} leaves a gap after last index ${this.lastIndex()}`);
    this.entries.length = after - this.offsetIndex;
    for (const e of ents) this.entries.push(e);
    if (this.stableIndex > after) this.stableIndex = after;
    return this.lastIndex();
  }

  /** The index of the first entry in `ents` that is new or conflicts with ours, or 0 if all match. */
  findConflict(ents: readonly Entry[]): number {
    for (const e of ents) {
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /**
   * Fast backtracking: the largest index <= `index` whose term is <= `term`, with its term.
   * A rejecting follower uses it so the leader can skip a whole term of conflicting entries.
   */
  findConflictByTerm(index: number, term: number): { index: number; term: number } {
    for (let i = Math.min(index, this.lastIndex()); i >= this.offsetIndex; i--) {
      const t = this.term(i)!;
      if (t <= term) return { index: i, term: t };
    }
    // The answer lies below the compaction point, where terms are unknown: as etcd-io/raft
    // does, assume a possible match there, with term 0 for "unknown".
    return { index: Math.min(index, this.offsetIndex - 1), term: 0 };
  }

  /**
   * The follower side of an append: if our log has (index, logTerm), take the entries,
   * overwrite any conflicting suffix, and advance commit. Returns the last new index, or -1.
   */
  maybeAppend(index: number, logTerm: number, leaderCommit: number, ents: readonly Entry[]): number {
    if (!this.matchTerm(index, logTerm)) return -1;
    const lastNew = index + ents.length;
    const conflict = this.findConflict(ents);
    if (conflict !== 0) {
      assert(conflict > this.committed, `entry ${conflict} conflicts with committed entry (committed ${this.committed})`);
      this.append(ents.slice(conflict - index - 1));
    }
    this.commitTo(Math.min(leaderCommit, lastNew));
    return lastNew;
  }

  commitTo(index: number): void {
    if (index <= this.committed) return;
    assert(index <= this.lastIndex(), `commit ${index} is past last index ${this.lastIndex()}`);
    this.committed = index;
  }

  /** The leader commits `index` only if it is from the leader's current term (Raft §5.4.2, figure 8). */
  maybeCommit(index: number, term: number): boolean {
    if (index > this.committed && this.term(index) === term) {
      this.commitTo(index);
      return true;
    }
    return false;
  }

  unstableEntries(): Entry[] {
    if (this.stableIndex >= this.lastIndex()) return [];
    return this.entries.slice(Math.max(this.stableIndex, this.offsetIndex) - this.offsetIndex);
  }

  /** After a Ready's entries were persisted: mark stable the prefix that still matches. */
  stableTo(ents: readonly Entry[]): void {
    for (let i = ents.length - 1; i >= 0; i--) {
      const e = ents[i];
      if (this.matchTerm(e.index, e.term)) {
        if (e.index > this.stableIndex) this.stableIndex = e.index;
        return;
      }
    }
  }

  hasNextCommittedEntries(): boolean {
    return this.committed > this.applying && this.pendingSnapshot === null;
  }

  /** Committed entries not yet handed out for applying, at most `bytesMax` (at least one). */
  nextCommittedEntries(bytesMax: number): Entry[] {
    if (!this.hasNextCommittedEntries()) return [];
    return this.slice(this.applying + 1, this.committed + 1, bytesMax) ?? [];
  }

  acceptApplying(index: number): void {
    assert(index <= this.committed, `applying ${index} past commit ${this.committed}`);
    if (index > this.applying) this.applying = index;
  }

  appliedTo(index: number): void {
    assert(index <= this.committed, `applied ${index} past commit ${this.committed}`);
    if (index > this.applied) this.applied = index;
    if (index > this.applying) this.applying = index;
  }

  /** Replace the whole log with a snapshot received from the leader. */
  restore(s: Snapshot): void {
    const { index, term } = s.metadata;
    assert(index > this.committed, `restore snapshot ${index} at or below commit ${this.committed}`);
    this.offsetIndex = index;
    this.offsetTerm = term;
    this.entries = [];
    this.committed = index;
    this.stableIndex = Math.min(this.stableIndex, index);
    this.pendingSnapshot = s;
    this.snapshot = s;
  }

  /** The snapshot was persisted and applied. */
  snapshotApplied(s: Snapshot): void {
    if (this.pendingSnapshot === s) {
      this.pendingSnapshot = null;
      if (this.stableIndex < s.metadata.index) this.stableIndex = s.metadata.index;
      this.appliedTo(s.metadata.index);
    }
  }

  /** Drop entries up to and including `index` (they are covered by a snapshot). */
  compact(index: number): void {
    if (index <= this.offsetIndex) return;
    assert(index <= this.applied, `compact ${index} past applied ${this.applied}`);
    const term = this.term(index)!;
    this.entries = this.entries.slice(index - this.offsetIndex);
    this.offsetIndex = index;
    this.offsetTerm = term;
  }
}
