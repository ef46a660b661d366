// A member's simulated disk, with the semantics of src/seams.ts Storage. A synced save survives
// any crash; an unsynced one (a Ready with mustSync false) survives only if the crash spares the
// page cache — so a Ready that wrongly claims it needs no sync shows up as lost votes or
// entries. Everything else (the Raft object, the state machine) never survives a crash.
// Synchronous on purpose: in the simulator a save completes before the member sends anything.

import type { Entry, HardState, Snapshot } from '../../src/raft/types.ts';
import type { PersistBatch, PersistedState } from '../../src/seams.ts';
import { emptyHardState } from '../../src/raft/types.ts';

export class SimStorage {
  private hardState: HardState = emptyHardState();
  private snapshot: Snapshot | null = null;
  /** Contiguous, in index order, all above the snapshot's index. */
  private entries: Entry[] = [];
  /** Whether anything was ever saved: an empty store means "bootstrap again" at restart. */
  everSaved = false;
  /**
   * The image as of the last sync: what a crash that loses unsynced writes leaves. Arrays are
   * never mutated in place, so holding references is a snapshot.
   */
  private synced: { hardState: HardState; snapshot: Snapshot | null; entries: Entry[]; everSaved: boolean } = {
    hardState: emptyHardState(),
    snapshot: null,
    entries: [],
    everSaved: false,
  };

  /** Sabotage for the checker self-test: a disk that acknowledges syncs it never does. */
  ignoresSync = false;

  save(batch: PersistBatch, sync: boolean): void {
    // A received snapshot replaces the whole log: entries after it may conflict with the leader's.
    if (batch.snapshot) this.storeSnapshot(batch.snapshot, false);
    if (batch.entries.length > 0) this.appendEntries(batch.entries);
    if (batch.hardState) this.hardState = { ...batch.hardState };
    if (batch.snapshot || batch.entries.length > 0 || batch.hardState) this.everSaved = true;
    if (sync && !this.ignoresSync) this.sync();
  }

  /**
   * The machine stops. With `loseUnsynced`, writes since the last sync never reached the disk.
   * Returns whether anything was lost.
   */
  crash(loseUnsynced: boolean): boolean {
    if (!loseUnsynced && !this.ignoresSync) return false;
    const lost = this.hardState !== this.synced.hardState || this.entries !== this.synced.entries || this.snapshot !== this.synced.snapshot;
    this.hardState = this.synced.hardState;
    this.snapshot = this.synced.snapshot;
    this.entries = this.synced.entries;
    this.everSaved = this.synced.everSaved;
    return lost;
  }

  private sync(): void {
    this.synced = { hardState: this.hardState, snapshot: this.snapshot, entries: this.entries, everSaved: this.everSaved };
  }

  /** A snapshot the member made itself: entries at or below its index are dropped. */
  saveSnapshot(snapshot: Snapshot): void {
    if (this.snapshot && snapshot.metadata.index < this.snapshot.metadata.index) {
      throw new Error(`storage: snapshot ${snapshot.metadata.index} is older than the stored ${this.snapshot.metadata.index}`);
    }
    this.storeSnapshot(snapshot, true);
    this.everSaved = true;
    this.sync();
  }

  /** A copy of everything durable, as a restarting member loads it. */
  load(): PersistedState {
    return {
      hardState: { ...this.hardState },
      snapshot: this.snapshot,
      entries: this.entries.slice(),
    };
  }

  snapshotIndex(): number {
    return this.snapshot ? this.snapshot.metadata.index : 0;
  }

  lastIndex(): number {
    return this.entries.length > 0 ? this.entries[this.entries.length - 1].index : this.snapshotIndex();
  }

  persistedHardState(): HardState {
    return this.hardState;
  }

  /** The durable entry at `index`, or null when compacted or beyond the end. */
  entry(index: number): Entry | null {
    const first = this.snapshotIndex() + 1;
    if (index < first || index > this.lastIndex()) return null;
    const e = this.entries[index - first];
    if (e.index !== index) throw new Error(`storage: entry at slot ${index - first} has index ${e.index}, expected ${index}`);
    return e;
  }

  /** The term at `index` if known (an entry or the snapshot's own index), else null. */
  term(index: number): number | null {
    if (this.snapshot && index === this.snapshot.metadata.index) return this.snapshot.metadata.term;
    if (index === 0) return 0;
    const e = this.entry(index);
    return e ? e.term : null;
  }

  /**
   * Sabotage for the checker self-test: replace the data of the durable entry at `index`, as a
   * disk that silently corrupts a record would. Returns false when no such entry is stored.
   */
  corruptEntry(index: number, data: Uint8Array): boolean {
    const e = this.entry(index);
    if (!e) return false;
    this.entries = this.entries.slice();
    this.entries[index - (this.snapshotIndex() + 1)] = { ...e, data };
    this.sync();
    return true;
  }

  private storeSnapshot(snapshot: Snapshot, keepLaterEntries: boolean): void {
    const index = snapshot.metadata.index;
    const kept = keepLaterEntries ? this.entries.filter((e) => e.index > index) : [];
    // Keep the log only if it continues the snapshot without a gap; otherwise it is stale.
    this.entries = kept.length > 0 && kept[0].index === index + 1 ? kept : [];
    this.snapshot = snapshot;
    if (this.hardState.commit < index) this.hardState = { ...this.hardState, commit: index };
  }

  private appendEntries(entries: Entry[]): void {
    const first = entries[0].index;
    for (let i = 1; i < entries.length; i++) {
      if (entries[i].index !== first + i) {
        throw new Error(`storage: save got a gap: entry ${i} has index ${entries[i].index}, expected ${first + i}`);
      }
    }
    const snapIndex = this.snapshotIndex();
    if (first > this.lastIndex() + 1) {
      throw new Error(`storage: save starts at ${first} but the log ends at ${this.lastIndex()}`);
    }
    // Entries at or below the snapshot are already covered by it.
    const fresh = entries.filter((e) => e.index > snapIndex);
    if (fresh.length === 0) return;
    const keepCount = fresh[0].index - (snapIndex + 1);
    this.entries = this.entries.slice(0, keepCount).concat(fresh.map((e) => ({ ...e })));
  }
}
