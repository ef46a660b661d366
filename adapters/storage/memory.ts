// In-memory Storage for unit tests and the simulator. Memory-only: nothing survives the process.
//
// It keeps what a disk would have synced apart from what was only written: a save with
// sync=false stays pending until the next synced save or snapshot. The simulator "crashes" a
// member by taking copyState('synced') and booting a new MemoryStorage from it.

import type { Entry, HardState, Snapshot } from '../../src/raft/types.ts';
import { emptyHardState } from '../../src/raft/types.ts';
import type { PersistBatch, PersistedState, Storage } from '../../src/seams.ts';
import { StorageError } from './errors.ts';
import type { LogView } from './log-rules.ts';
import { checkOwnSnapshot, planBatch } from './log-rules.ts';

/** Unsynced batches kept apart at most; beyond it they are synced, like a page cache writing back. */
export const pendingBatchesMax = 4096;

interface State {
  hardState: HardState;
  snapshot: Snapshot | null;
  /** Invariant: contiguous, first index = snapshot index + 1. */
  entries: Entry[];
}

type Op = { kind: 'batch'; batch: PersistBatch } | { kind: 'snapshot'; snapshot: Snapshot };

export class MemoryStorage implements Storage {
  /** What a crash would keep. */
  private synced: State;
  /** Written with sync=false since the last sync, deep-copied, in order. */
  private pending: Op[] = [];
  /** synced + pending: what load() and the next batch's checks see. */
  private current: State;
  private closed = false;

  /** Boots from `initial` (e.g. a crashed member's copyState('synced')), or empty. */
  constructor(initial?: PersistedState) {
    this.synced = initial ? copyState(initial) : { hardState: emptyHardState(), snapshot: null, entries: [] };
    if (initial) assertContiguous(this.synced);
    this.current = copyState(this.synced);
  }

  async load(): Promise<PersistedState> {
    this.assertOpen();
    return copyState(this.current);
  }

  async save(batch: PersistBatch, sync: boolean): Promise<void> {
    this.assertOpen();
    const op: Op = { kind: 'batch', batch: copyBatch(batch) };
    applyOp(this.current, op);
    this.pending.push(op);
    // Past pendingBatchesMax, write back as a page cache eventually would.
    if (sync || op.batch.snapshot !== null || this.pending.length >= pendingBatchesMax) this.sync();
  }

  async saveSnapshot(snapshot: Snapshot): Promise<void> {
    this.assertOpen();
    const op: Op = { kind: 'snapshot', snapshot: copySnapshot(snapshot) };
    applyOp(this.current, op);
    this.pending.push(op);
    this.sync();
  }

  /** A clean close makes pending saves durable, as a real disk's close would. */
  async close(): Promise<void> {
    if (!this.closed) this.sync();
    this.closed = true;
  }

  /**
   * A deep copy of the state, synchronously: 'synced' is what survives a crash (the default),
   * 'written' also includes saves made with sync=false. Works after close().
   */
  copyState(which: 'synced' | 'written' = 'synced'): PersistedState {
    return copyState(which === 'synced' ? this.synced : this.current);
  }

  private sync(): void {
    for (const op of this.pending) applyOp(this.synced, op);
    this.pending = [];
  }

  private assertOpen(): void {
    if (this.closed) throw new StorageError('closed', 'memory storage used after close()');
  }
}

function view(state: State): LogView {
  const snapshotIndex = state.snapshot?.metadata.index ?? 0;
  return {
    snapshotIndex,
    lastIndex: snapshotIndex + state.entries.length,
    termAt(index) {
      if (index === snapshotIndex && state.snapshot !== null) return state.snapshot.metadata.term;
      return state.entries[index - snapshotIndex - 1]?.term;
    },
  };
}

/** Applies an op, validating it first. Entry objects are shared between `synced` and `current` but never mutated. */
function applyOp(state: State, op: Op): void {
  if (op.kind === 'snapshot') {
    const v = view(state);
    checkOwnSnapshot(v, op.snapshot);
    state.entries = state.entries.slice(Math.min(op.snapshot.metadata.index - v.snapshotIndex, state.entries.length));
    state.snapshot = op.snapshot;
    return;
  }
  const { batch } = op;
  const plan = planBatch(view(state), batch);
  if (batch.snapshot !== null) {
    const dropped = batch.snapshot.metadata.index - view(state).snapshotIndex;
    state.entries = plan.snapshotReset ? [] : state.entries.slice(dropped);
    state.snapshot = batch.snapshot;
  }
  if (batch.entries.length > 0) {
    // In place, O(batch): `synced` and `current` never share an entries array.
    state.entries.length = plan.appendFromIndex - view(state).snapshotIndex - 1;
    for (const e of batch.entries) state.entries.push(e);
  }
  if (batch.hardState !== null) state.hardState = batch.hardState;
}

function assertContiguous(state: State): void {
  const base = state.snapshot?.metadata.index ?? 0;
  state.entries.forEach((e, i) => {
    if (e.index !== base + 1 + i) {
      throw new StorageError('invalid-batch', `initial state: entry ${i} has index ${e.index}, expected ${base + 1 + i}`);
    }
  });
}

function copyEntry(e: Entry): Entry {
  return { term: e.term, index: e.index, type: e.type, data: e.data.slice() };
}

function copySnapshot(s: Snapshot): Snapshot {
  const c = s.metadata.confState;
  return {
    metadata: {
      index: s.metadata.index,
      term: s.metadata.term,
      confState: {
        voters: [...c.voters],
        learners: [...c.learners],
        votersOutgoing: [...c.votersOutgoing],
        learnersNext: [...c.learnersNext],
        autoLeave: c.autoLeave,
      },
    },
    data: s.data.slice(),
  };
}

function copyBatch(b: PersistBatch): PersistBatch {
  return {
    hardState: b.hardState && { ...b.hardState },
    entries: b.entries.map(copyEntry),
    snapshot: b.snapshot && copySnapshot(b.snapshot),
  };
}

function copyState(s: PersistedState | State): State {
  return {
    hardState: { ...s.hardState },
    snapshot: s.snapshot && copySnapshot(s.snapshot),
    entries: s.entries.map(copyEntry),
  };
}
