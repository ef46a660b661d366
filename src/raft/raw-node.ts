// The application's handle on Raft: feed it ticks, messages and proposals; take Ready
// batches of work; confirm each with advance().

import type { RaftConfig } from './config.ts';
import { encodeConfChange, type ConfChange } from './confchange.ts';
import { Raft, RaftError, type RaftRestore } from './raft.ts';
import {
  EntryType,
  emptyHardState,
  MessageType,
  newMessage,
  type ConfState,
  type Entry,
  type HardState,
  type MemberId,
  type Message,
  type Ready,
  type Snapshot,
  type SnapshotMetadata,
  type SoftState,
  StateRole,
  isLocalMessage,
} from './types.ts';
import type { ProgressState } from './progress.ts';

/** Bytes of committed entries handed out in one Ready, so a long catch-up applies in slices. */
export const applyBytesMax = 64 * 1024 * 1024;

export interface ProgressStatus {
  match: number;
  next: number;
  state: ProgressState;
  isLearner: boolean;
  recentActive: boolean;
  inflight: number;
}

/** The scalar part of Status: cheap enough for every Ready. */
export interface BasicStatus {
  id: MemberId;
  term: number;
  vote: MemberId;
  commit: number;
  applied: number;
  lastIndex: number;
  lead: MemberId;
  role: StateRole;
}

export interface Status extends BasicStatus {
  confState: ConfState;
  leadTransferee: MemberId;
  /** Only on the leader. */
  progress: Map<MemberId, ProgressStatus> | null;
}

export class RawNode {
  readonly raft: Raft;
  private prevSoft: SoftState;
  private prevHard: HardState;
  /** The Ready handed out and not yet advanced: only one is outstanding at a time. */
  private outstanding: Ready | null = null;

  constructor(config: RaftConfig, restore: RaftRestore | null, peers: readonly MemberId[]) {
    this.raft = new Raft(config, restore, peers);
    this.prevSoft = { lead: this.raft.lead, role: this.raft.role };
    // After a bootstrap the first Ready must carry the hard state too.
    this.prevHard = restore ? { ...restore.hardState } : emptyHardState();
  }

  tick(): void {
    this.raft.tick();
  }

  /** Start an election now (tests and bootstrapping a single member). */
  campaign(): void {
    this.raft.step(newMessage(MessageType.Hup, this.raft.id, this.raft.id, 0));
  }

  propose(data: Uint8Array): void {
    this.proposeEntries([{ term: 0, index: 0, type: EntryType.Normal, data }]);
  }

  /** Proposes several entries at once: they are appended and replicated as one batch. */
  proposeBatch(datas: readonly Uint8Array[]): void {
    this.proposeEntries(datas.map((data) => ({ term: 0, index: 0, type: EntryType.Normal, data })));
  }

  proposeConfChange(cc: ConfChange): void {
    this.proposeEntries([{ term: 0, index: 0, type: EntryType.ConfChange, data: encodeConfChange(cc) }]);
  }

  private proposeEntries(entries: Entry[]): void {
    const m = newMessage(MessageType.Prop, this.raft.id, this.raft.id, 0);
    m.entries = entries;
    this.raft.lastDropReason = null;
    this.raft.step(m);
    // Every path that refuses a proposal records why.
    if (this.raft.lastDropReason !== null) {
      throw new RaftError('proposal-dropped', `raft: proposal dropped: ${this.raft.lastDropReason}`);
    }
  }

  /** Delivers a message from the network. Local message types are refused. */
  step(m: Message): void {
    if (isLocalMessage(m.type)) {
      this.raft.cfg.logger.warn(`${this.raft.id} dropped local message type ${m.type} from the network (from ${m.from})`);
      return;
    }
    this.raft.step(m);
  }

  transferLeader(to: MemberId): void {
    this.raft.step({ ...newMessage(MessageType.TransferLeader, this.raft.id, to, 0) });
  }

  /** Ask for a linearizable read point; it arrives as a ReadState carrying `ctx`. */
  readIndex(ctx: Uint8Array): void {
    const m = newMessage(MessageType.ReadIndex, this.raft.id, this.raft.id, 0);
    m.context = ctx;
    this.raft.step(m);
  }

  reportUnreachable(id: MemberId): void {
    this.raft.step(newMessage(MessageType.Unreachable, this.raft.id, id, 0));
  }

  reportSnapshot(id: MemberId, failed: boolean): void {
    const m = newMessage(MessageType.SnapStatus, this.raft.id, id, 0);
    m.reject = failed;
    this.raft.step(m);
  }

  applyConfChange(cc: ConfChange): ConfState {
    return this.raft.applyConfChange(cc);
  }

  /** Whether ready() has work. Sends batched appends and forwards first (see Raft.flush). */
  hasReady(): boolean {
    if (this.outstanding !== null) return false;
    const r = this.raft;
    r.flush();
    if (r.msgs.length > 0 || r.readStates.length > 0) return true;
    if (r.lead !== this.prevSoft.lead || r.role !== this.prevSoft.role) return true;
    const hs = r.hardState();
    if (hs.term !== this.prevHard.term || hs.vote !== this.prevHard.vote || hs.commit !== this.prevHard.commit) return true;
    if (r.log.pendingSnapshot !== null && r.log.pendingSnapshot.metadata.index > r.log.applied) return true;
    if (r.log.stableIndex < r.log.lastIndex()) return true;
    return r.log.hasNextCommittedEntries();
  }

  ready(): Ready {
    if (this.outstanding !== null) throw new Error('raft: ready() called again before advance()');
    const r = this.raft;
    r.flush();
    const soft: SoftState = { lead: r.lead, role: r.role };
    const hs = r.hardState();
    const softChanged = soft.lead !== this.prevSoft.lead || soft.role !== this.prevSoft.role;
    const hardChanged = hs.term !== this.prevHard.term || hs.vote !== this.prevHard.vote || hs.commit !== this.prevHard.commit;
    const entries = r.log.unstableEntries();
    const committedEntries = r.log.nextCommittedEntries(applyBytesMax);
    const rd: Ready = {
      softState: softChanged ? soft : null,
      hardState: hardChanged ? hs : null,
      readStates: r.readStates,
      entries,
      snapshot: r.log.pendingSnapshot,
      committedEntries,
      messages: r.msgs,
      mustSync: entries.length > 0 || hs.term !== this.prevHard.term || hs.vote !== this.prevHard.vote || r.log.pendingSnapshot !== null,
      sendBeforePersist: false,
    };
    // A leader counts its own entries toward a quorum as soon as it appends them, so a commit
    // index can cover entries not yet on its disk only where it alone is a quorum. Otherwise
    // followers acknowledge this Ready's entries only after receiving them from these very
    // messages, so nothing sent now depends on the write that follows.
    rd.sendBeforePersist =
      r.role === StateRole.Leader &&
      rd.snapshot === null &&
      hs.term === this.prevHard.term &&
      hs.vote === this.prevHard.vote &&
      (entries.length === 0 || hs.commit < entries[0].index);
    r.msgs = [];
    r.readStates = [];
    if (committedEntries.length > 0) r.log.acceptApplying(committedEntries[committedEntries.length - 1].index);
    if (softChanged) this.prevSoft = soft;
    if (hardChanged) this.prevHard = hs;
    this.outstanding = rd;
    return rd;
  }

  /** The caller persisted, sent and applied `rd`. */
  advance(rd: Ready): void {
    if (this.outstanding !== rd) throw new Error('raft: advance() with a Ready that is not the outstanding one');
    this.outstanding = null;
    const log = this.raft.log;
    if (rd.snapshot) log.snapshotApplied(rd.snapshot);
    if (rd.entries.length > 0) log.stableTo(rd.entries);
    if (rd.committedEntries.length > 0) this.raft.appliedTo(rd.committedEntries[rd.committedEntries.length - 1].index);
  }

  /**
   * Makes a snapshot at the applied index with the application's image `data`, keeps it to
   * send to lagging followers, and drops log entries before it except the last `keepEntries`.
   * Call between advance() and the next ready(); persist the result with Storage.saveSnapshot.
   */
  createSnapshot(data: Uint8Array, keepEntries = 0): Snapshot {
    if (this.outstanding !== null) throw new Error('raft: createSnapshot() while a Ready is outstanding');
    return this.install(this.snapshotPoint(), data, keepEntries);
  }

  private install(point: SnapshotMetadata, data: Uint8Array, keepEntries: number): Snapshot {
    const snap: Snapshot = { metadata: point, data };
    this.raft.log.snapshot = snap;
    this.raft.log.compact(Math.max(0, point.index - keepEntries));
    return snap;
  }

  /**
   * The metadata a snapshot of the current applied state will carry. With `snapshotFrom`,
   * an application can take an O(1) view of its state now, serialize it over time while it
   * keeps applying, and install the result when it is ready.
   */
  snapshotPoint(): SnapshotMetadata {
    const log = this.raft.log;
    const index = log.applied;
    const term = log.term(index);
    if (term === undefined) throw new Error(`raft: cannot snapshot at ${index}: entry compacted`);
    return { index, term, confState: this.raft.trk.confState() };
  }

  /**
   * Installs a snapshot made from the state at `point` (see snapshotPoint), keeping the last
   * `keepEntries` entries before it. Returns null if the point is no longer useful: a newer
   * snapshot was installed or restored meanwhile, or the log was replaced under it.
   */
  snapshotFrom(point: SnapshotMetadata, data: Uint8Array, keepEntries = 0): Snapshot | null {
    if (this.outstanding !== null) throw new Error('raft: snapshotFrom() while a Ready is outstanding');
    const log = this.raft.log;
    if (point.index > log.applied) throw new Error(`raft: snapshot point ${point.index} is past applied ${log.applied}`);
    const current = log.snapshot?.metadata.index ?? 0;
    if (point.index <= current || log.term(point.index) !== point.term) return null;
    return this.install(point, data, keepEntries);
  }

  basicStatus(): BasicStatus {
    const r = this.raft;
    return {
      id: r.id,
      term: r.term,
      vote: r.vote,
      commit: r.log.committed,
      applied: r.log.applied,
      lastIndex: r.log.lastIndex(),
      lead: r.lead,
      role: r.role,
    };
  }

  /** Everything, including copies of the configuration and (on the leader) every follower's progress. */
  status(): Status {
    const r = this.raft;
    let progress: Map<MemberId, ProgressStatus> | null = null;
    if (r.role === StateRole.Leader) {
      progress = new Map();
      for (const id of r.trk.memberIds()) {
        const p = r.trk.progress.get(id)!;
        progress.set(id, {
          match: p.match,
          next: p.next,
          state: p.state,
          isLearner: p.isLearner,
          recentActive: p.recentActive,
          inflight: p.inflights.count,
        });
      }
    }
    return {
      ...this.basicStatus(),
      confState: r.trk.confState(),
      leadTransferee: r.leadTransferee,
      progress,
    };
  }
}
