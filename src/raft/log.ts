// The Raft log, held in memory from the last compaction point. Storage is write-behind:
// entries above `stableIndex` are handed out in a Ready to be persisted, then marked stable.
//
// Entries that are both stable and applied are only read again to catch up a lagging follower
// or to find a term, yet the log holds them until the next snapshot (thousands of entries): long
// enough for each to be promoted to the old generation of a garbage-collected heap. So once
// `packEntriesMin` of them have collected they are packed: their terms, types and data copied
// into one buffer (a `PackedRun`), and an Entry is built again only when one is read. A put's
// entry then costs the old generation a slice of a shared buffer instead of an object, a view
// and a buffer of its own.

import { assert } from './assert.ts';
import { entrySize, type Entry, type EntryType, type Snapshot } from './types.ts';

/** Stable, applied entries packed together; runs are only ever dropped whole or compacted past. */
interface PackedRun {
  /** Index of the run's first entry. */
  first: number;
  /** Per entry i: term at [3i], end of its data in `bytes` at [3i + 1], type at [3i + 2]. */
  meta: Float64Array;
  bytes: Uint8Array;
}

/** Stable, applied entries collected before they are packed into one run. */
export const packEntriesMin = 64;

export class RaftLog {
  /** Index and term of the entry just before the first held one (the compaction point). */
  private offsetIndex: number;
  private offsetTerm: number;
  /**
   * Packed entries (offsetIndex, packedIndex], in order: runs[0] holds offsetIndex + 1 (it may
   * also hold compacted entries before it), each run starts where the previous one ends.
   * Invariant: offsetIndex <= packedIndex, and every packed entry was stable and applied when
   * packed (packedIndex <= applied, but for a restored snapshot not yet applied, when there
   * are no runs and packedIndex === offsetIndex), so appends (above committed) never reach one.
   */
  private runs: PackedRun[] = [];
  private packedIndex: number;
  /** The entries after the packed ones: entries[i].index === packedIndex + 1 + i. */
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
    this.packedIndex = this.offsetIndex;
    this.stableIndex = this.lastIndex();
    this.committed = Math.max(this.offsetIndex, Math.min(committed, this.lastIndex()));
    this.applied = this.offsetIndex;
    this.applying = this.offsetIndex;
  }

  firstIndex(): number {
    return this.offsetIndex + 1;
  }

  lastIndex(): number {
    return this.packedIndex + this.entries.length;
  }

  lastTerm(): number {
    return this.term(this.lastIndex()) ?? 0;
  }

  /** The term of the entry at `index`, or undefined if it was compacted or does not exist. */
  term(index: number): number | undefined {
    if (index === this.offsetIndex) return this.offsetTerm;
    if (index < this.offsetIndex || index > this.lastIndex()) return undefined;
    if (index > this.packedIndex) return this.entries[index - this.packedIndex - 1].term;
    const run = this.runOf(index);
    return run.meta[3 * (index - run.first)];
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  entryAt(index: number): Entry | undefined {
    if (index <= this.offsetIndex || index > this.lastIndex()) return undefined;
    if (index > this.packedIndex) return this.entries[index - this.packedIndex - 1];
    return unpack(this.runOf(index), index);
  }

  /** The packed run holding `index` (offsetIndex < index <= packedIndex). */
  private runOf(index: number): PackedRun {
    return this.runs[this.runIndexOf(index)];
  }

  /** Where in `runs` the run holding `index` is (offsetIndex < index <= packedIndex). */
  private runIndexOf(index: number): number {
    const runs = this.runs;
    // Reads mostly ask for recent entries: try the newest run before searching.
    let hi = runs.length - 1;
    if (runs[hi].first <= index) return hi;
    let lo = 0;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (runs[mid].first <= index) lo = mid;
      else hi = mid - 1;
    }
    assert(runs[lo].first <= index, `no packed run holds entry ${index} (first run starts at ${runs[0].first})`);
    return lo;
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
      const e = i > this.packedIndex ? this.entries[i - this.packedIndex - 1] : this.entryAt(i)!;
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
    assert(after >= this.packedIndex, `append at ${after + 1} would overwrite packed entry (packed up to ${this.packedIndex})`);
    this.entries.length = after - this.packedIndex;
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
    return this.entries.slice(Math.max(this.stableIndex, this.packedIndex) - this.packedIndex);
  }

  /** After a Ready's entries were persisted: mark stable the prefix that still matches. */
  stableTo(ents: readonly Entry[]): void {
    for (let i = ents.length - 1; i >= 0; i--) {
      const e = ents[i];
      if (this.matchTerm(e.index, e.term)) {
        if (e.index > this.stableIndex) this.stableIndex = e.index;
        this.maybePack();
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
    this.maybePack();
  }

  /** Packs the stable, applied entries into one run once `packEntriesMin` of them collected. */
  private maybePack(): void {
    const upTo = Math.min(this.applied, this.stableIndex, this.lastIndex());
    const count = upTo - this.packedIndex;
    if (count < packEntriesMin) return;
    const ents = this.entries;
    let dataBytes = 0;
    for (let i = 0; i < count; i++) dataBytes += ents[i].data.byteLength;
    // One buffer per run: the metadata first (8-byte aligned), the entries' data after it.
    const metaBytes = 3 * 8 * count;
    const buffer = new ArrayBuffer(metaBytes + dataBytes);
    const meta = new Float64Array(buffer, 0, 3 * count);
    const bytes = new Uint8Array(buffer, metaBytes, dataBytes);
    let end = 0;
    for (let i = 0; i < count; i++) {
      const e = ents[i];
      bytes.set(e.data, end);
      end += e.data.byteLength;
      meta[3 * i] = e.term;
      meta[3 * i + 1] = end;
      meta[3 * i + 2] = e.type;
    }
    this.runs.push({ first: this.packedIndex + 1, meta, bytes });
    this.entries = ents.slice(count);
    this.packedIndex = upTo;
  }

  /** Replace the whole log with a snapshot received from the leader. */
  restore(s: Snapshot): void {
    const { index, term } = s.metadata;
    assert(index > this.committed, `restore snapshot ${index} at or below commit ${this.committed}`);
    this.offsetIndex = index;
    this.offsetTerm = term;
    this.entries = [];
    this.runs = [];
    this.packedIndex = index;
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
    if (index >= this.packedIndex) {
      this.runs = [];
      this.entries = this.entries.slice(index - this.packedIndex);
      this.packedIndex = index;
    } else {
      // Runs wholly at or below `index` go; the one holding index + 1 stays whole.
      const keep = this.runIndexOf(index + 1);
      if (keep > 0) this.runs = this.runs.slice(keep);
    }
    this.offsetIndex = index;
    this.offsetTerm = term;
  }
}

function unpack(run: PackedRun, index: number): Entry {
  const i = index - run.first;
  const meta = run.meta;
  const start = i === 0 ? 0 : meta[3 * i - 2];
  return { term: meta[3 * i], index, type: meta[3 * i + 2] as EntryType, data: run.bytes.subarray(start, meta[3 * i + 1]) };
}
