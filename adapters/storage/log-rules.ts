// The rules every Storage adapter applies to a PersistBatch, in one place so that the memory
// adapter, fs-wal and IndexedDB agree exactly on what survives a reload.
//
// Order inside a batch: snapshot first, then entries, then hard state.
// - A snapshot received in a batch drops every stored entry at or below its index. If the
//   stored log holds the snapshot's own entry (same index and term), the entries after it are
//   consistent with the leader (log matching) and are kept; otherwise they may conflict with
//   the leader's log and are dropped too, so that the log stays contiguous after the snapshot.
// - A snapshot the member made itself (saveSnapshot) only compacts: entries after it stay.
// - An entry at index i replaces the stored entries at i and later (a leader overwrote the tail).

import type { Entry, HardState, Snapshot } from '../../src/raft/types.ts';
import type { PersistBatch } from '../../src/seams.ts';
import { StorageError } from './errors.ts';

/** What an adapter must know about its log to apply a batch. */
export interface LogView {
  /** Index of the stored snapshot, 0 when there is none. */
  snapshotIndex: number;
  /** Index of the last stored entry, or snapshotIndex when no entry follows the snapshot. */
  lastIndex: number;
  /** Term of the stored entry at `index`, or undefined if none is stored there. */
  termAt(index: number): number | undefined;
}

/**
 * What a durable adapter keeps in memory of its stored log to plan batches: the snapshot point
 * and the term of every stored entry after it. Updated only after the data is written.
 */
export class LogShape implements LogView {
  constructor(
    private point: { index: number; term: number } | null,
    private terms: number[],
  ) {}

  /** The stored snapshot's index and term, or null. */
  get marker(): { index: number; term: number } | null {
    return this.point;
  }

  get snapshotIndex(): number {
    return this.point?.index ?? 0;
  }

  get lastIndex(): number {
    return this.snapshotIndex + this.terms.length;
  }

  termAt(index: number): number | undefined {
    const snapshotIndex = this.snapshotIndex;
    return index === snapshotIndex && this.point !== null ? this.point.term : this.terms[index - snapshotIndex - 1];
  }

  /** `entries` were stored from `fromIndex` on, replacing what was there and after it. */
  appended(fromIndex: number, entries: readonly Entry[]): void {
    this.terms.length = fromIndex - this.snapshotIndex - 1;
    for (const e of entries) this.terms.push(e.term);
  }

  /** A snapshot at `point` was stored: entries at or below it are gone; with `reset`, all of them. */
  snapshotStored(point: { index: number; term: number }, reset: boolean): void {
    const covered = point.index - this.snapshotIndex;
    this.terms = reset ? [] : this.terms.slice(Math.min(covered, this.terms.length));
    this.point = { index: point.index, term: point.term };
  }
}

export interface BatchPlan {
  /** True when the batch's snapshot discards every stored entry, not only those at or below it. */
  snapshotReset: boolean;
  /** Index at which `entries` are appended: stored entries at and after it are replaced. */
  appendFromIndex: number;
}

/** Validates `batch` against `view`; throws a StorageError('invalid-batch' | 'snapshot-out-of-date'). */
export function planBatch(view: LogView, batch: PersistBatch): BatchPlan {
  let snapshotIndex = view.snapshotIndex;
  let lastIndex = view.lastIndex;
  let snapshotReset = false;
  if (batch.snapshot !== null) {
    checkSnapshot(view, batch.snapshot);
    const { index, term } = batch.snapshot.metadata;
    snapshotReset = view.termAt(index) !== term;
    snapshotIndex = index;
    lastIndex = snapshotReset ? index : Math.max(lastIndex, index);
  }
  if (batch.hardState !== null) checkHardState(batch.hardState);
  const entries = batch.entries;
  if (entries.length === 0) return { snapshotReset, appendFromIndex: lastIndex + 1 };
  for (let i = 0; i < entries.length; i++) {
    checkEntry(entries[i]);
    if (i > 0 && entries[i].index !== entries[i - 1].index + 1) {
      throw invalid(`entries not contiguous: index ${entries[i].index} follows ${entries[i - 1].index}`);
    }
    if (i > 0 && entries[i].term < entries[i - 1].term) {
      throw invalid(`entry terms decrease: term ${entries[i].term} at index ${entries[i].index} after term ${entries[i - 1].term}`);
    }
  }
  const first = entries[0].index;
  if (first <= snapshotIndex) {
    throw invalid(`entry index ${first} is at or below the snapshot index ${snapshotIndex}`);
  }
  if (first > lastIndex + 1) {
    throw invalid(`entry index ${first} would leave a gap after the last stored index ${lastIndex}`);
  }
  return { snapshotReset, appendFromIndex: first };
}

/** Validates a snapshot the member made itself. */
export function checkOwnSnapshot(view: LogView, snapshot: Snapshot): void {
  checkSnapshot(view, snapshot);
}

function checkSnapshot(view: LogView, snapshot: Snapshot): void {
  const { index, term } = snapshot.metadata;
  checkIndex('snapshot index', index);
  checkIndex('snapshot term', term);
  if (!(snapshot.data instanceof Uint8Array)) throw invalid(`snapshot data at index ${index} is not a Uint8Array`);
  if (index <= view.snapshotIndex) {
    throw new StorageError(
      'snapshot-out-of-date',
      `snapshot index ${index} is not after the stored snapshot index ${view.snapshotIndex}`,
    );
  }
}

function checkEntry(e: Entry): void {
  checkIndex('entry index', e.index);
  checkIndex('entry term', e.term);
  if (e.index === 0) throw invalid('entry index 0: indexes start at 1');
  if (!(e.data instanceof Uint8Array)) throw invalid(`entry data at index ${e.index} is not a Uint8Array`);
  if (!Number.isInteger(e.type) || e.type < 0 || e.type > 255) throw invalid(`entry type ${e.type} at index ${e.index} is not a byte`);
}

function checkHardState(hs: HardState): void {
  checkIndex('hard state term', hs.term);
  checkIndex('hard state vote', hs.vote);
  checkIndex('hard state commit', hs.commit);
}

function checkIndex(what: string, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) throw invalid(`${what} ${n} is not a non-negative safe integer`);
}

function invalid(message: string): StorageError {
  return new StorageError('invalid-batch', message);
}
