// What the leader knows about each follower's log, and how fast it may send to it.

import { assert } from './assert.ts';
import { VoteResult, jointCommitted, jointIds, jointVoteResult, type JointConfig } from './quorum.ts';
import type { ConfState, MemberId } from './types.ts';

export enum ProgressState {
  /** The leader sends one append at a time and waits to learn where the follower's log matches. */
  Probe = 'probe',
  /** The follower's log matches: appends stream optimistically, bounded by the inflight limits. */
  Replicate = 'replicate',
  /** The follower needs a snapshot; appends pause until it reports the snapshot applied or failed. */
  Snapshot = 'snapshot',
}

/**
 * The append messages in flight to one follower: a FIFO of (last index, bytes).
 * Bounded by a message count and, optionally, a byte total.
 */
export class Inflights {
  private readonly indexes: number[] = [];
  private readonly sizes: number[] = [];
  private head = 0;
  bytes = 0;

  constructor(readonly messagesMax: number, readonly bytesMax: number) {
    assert(messagesMax > 0, `inflight messagesMax must be > 0, got ${messagesMax}`);
  }

  get count(): number {
    return this.indexes.length - this.head;
  }

  full(): boolean {
    return this.count >= this.messagesMax || (this.bytesMax > 0 && this.bytes >= this.bytesMax);
  }

  add(lastIndex: number, bytes: number): void {
    assert(!this.full(), `inflights: add while full (count=${this.count}, bytes=${this.bytes})`);
    const n = this.indexes.length;
    assert(n === this.head || this.indexes[n - 1] < lastIndex, `inflights: index ${lastIndex} not increasing`);
    this.indexes.push(lastIndex);
    this.sizes.push(bytes);
    this.bytes += bytes;
  }

  /** Frees every message whose last index is <= `index`. */
  freeLE(index: number): void {
    while (this.head < this.indexes.length && this.indexes[this.head] <= index) {
      this.bytes -= this.sizes[this.head];
      this.head++;
    }
    if (this.head > 64 && this.head * 2 > this.indexes.length) {
      this.indexes.splice(0, this.head);
      this.sizes.splice(0, this.head);
      this.head = 0;
    }
  }

  freeFirstOne(): void {
    if (this.count > 0) this.freeLE(this.indexes[this.head]);
  }

  reset(): void {
    this.indexes.length = 0;
    this.sizes.length = 0;
    this.head = 0;
    this.bytes = 0;
  }
}

export class Progress {
  /** Highest index known to match the leader's log. Invariant: match < next. */
  match = 0;
  next: number;
  state = ProgressState.Probe;
  /** In Snapshot state: the index of the snapshot being sent. */
  pendingSnapshot = 0;
  /** Heard from since the last check-quorum round. */
  recentActive = false;
  /** In Probe state: an append was sent and no answer came back since the last heartbeat. */
  probeSent = false;
  /**
   * In Replicate state: an empty append was sent on a heartbeat answer to check that the
   * appends in flight arrived; no other is sent until the follower answers an append.
   */
  emptyAppendSent = false;
  readonly inflights: Inflights;

  constructor(next: number, messagesMax: number, bytesMax: number, public isLearner: boolean) {
    this.next = next;
    this.inflights = new Inflights(messagesMax, bytesMax);
  }

  private resetState(state: ProgressState): void {
    this.probeSent = false;
    this.emptyAppendSent = false;
    this.pendingSnapshot = 0;
    this.state = state;
    this.inflights.reset();
  }

  becomeProbe(): void {
    if (this.state === ProgressState.Snapshot) {
      const pending = this.pendingSnapshot;
      this.resetState(ProgressState.Probe);
      this.next = Math.max(this.match + 1, pending + 1);
    } else {
      this.resetState(ProgressState.Probe);
      this.next = this.match + 1;
    }
  }

  becomeReplicate(): void {
    this.resetState(ProgressState.Replicate);
    this.next = this.match + 1;
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.resetState(ProgressState.Snapshot);
    this.pendingSnapshot = snapshotIndex;
  }

  /** Records that entries up to `lastIndex` were sent. */
  sentEntries(lastIndex: number, bytes: number): void {
    if (this.state === ProgressState.Replicate) {
      if (lastIndex >= this.next) {
        this.next = lastIndex + 1;
        this.inflights.add(lastIndex, bytes);
      }
    } else if (this.state === ProgressState.Probe) {
      this.probeSent = true;
    }
  }

  /** The follower acknowledged up to `n`. Returns false if the ack is stale. */
  maybeUpdate(n: number): boolean {
    let updated = false;
    if (this.match < n) {
      this.match = n;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, n + 1);
    return updated;
  }

  /**
   * The follower rejected an append at `rejected` and hinted that its log matches at most
   * up to `matchHint`. Returns false if the rejection is stale.
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === ProgressState.Replicate) {
      // Stale: the rejection is for an index the follower already matched.
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    // In probe state, only the rejection of the most recent probe (next - 1) counts.
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1);
    this.probeSent = false;
    return true;
  }

  /** Whether sending appends to this follower is currently held back by flow control. */
  isPaused(): boolean {
    switch (this.state) {
      case ProgressState.Probe:
        return this.probeSent;
      case ProgressState.Replicate:
        return this.inflights.full();
      case ProgressState.Snapshot:
        return true;
    }
  }
}

/** Membership plus per-member progress, owned by the Raft state machine. */
export class ProgressTracker {
  config: JointConfig = { incoming: new Set(), outgoing: new Set() };
  learners = new Set<MemberId>();
  /** Learners that become voters when the joint configuration is left; they are voters in `outgoing`. */
  learnersNext = new Set<MemberId>();
  autoLeave = false;
  progress = new Map<MemberId, Progress>();
  votes = new Map<MemberId, boolean>();

  constructor(readonly inflightMessagesMax: number, readonly inflightBytesMax: number) {}

  isJoint(): boolean {
    return this.config.outgoing.size > 0;
  }

  confState(): ConfState {
    const sorted = (s: Set<MemberId>) => [...s].sort((a, b) => a - b);
    return {
      voters: sorted(this.config.incoming),
      votersOutgoing: sorted(this.config.outgoing),
      learners: sorted(this.learners),
      learnersNext: sorted(this.learnersNext),
      autoLeave: this.autoLeave,
    };
  }

  isVoter(id: MemberId): boolean {
    return this.config.incoming.has(id) || this.config.outgoing.has(id);
  }

  /** Voters of both halves, sorted, so iteration order is deterministic. */
  voterIds(): MemberId[] {
    return [...jointIds(this.config)].sort((a, b) => a - b);
  }

  /** Every member with progress (voters and learners), sorted. */
  memberIds(): MemberId[] {
    return [...this.progress.keys()].sort((a, b) => a - b);
  }

  committed(): number {
    return jointCommitted(this.config, (id) => {
      const p = this.progress.get(id);
      return p ? p.match : 0;
    });
  }

  resetVotes(): void {
    this.votes.clear();
  }

  recordVote(id: MemberId, granted: boolean): void {
    if (!this.votes.has(id)) this.votes.set(id, granted);
  }

  tallyVotes(): { granted: number; rejected: number; result: VoteResult } {
    let granted = 0;
    let rejected = 0;
    for (const id of this.voterIds()) {
      const v = this.votes.get(id);
      if (v === undefined) continue;
      if (v) granted++;
      else rejected++;
    }
    return { granted, rejected, result: jointVoteResult(this.config, this.votes) };
  }

  /** Whether the members marked recentActive (plus the leader itself) form a quorum. */
  quorumActive(self: MemberId): boolean {
    const votes = new Map<MemberId, boolean>();
    for (const [id, p] of this.progress) {
      if (p.isLearner) continue;
      votes.set(id, id === self || p.recentActive);
    }
    return jointVoteResult(this.config, votes) === VoteResult.Won;
  }
}
