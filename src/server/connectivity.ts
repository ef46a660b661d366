// Whether a member is online, as an app sees it (docs/offline.md): it hears from a leader that
// has a quorum. Offline, linearizable reads and writes cannot complete, while local
// (serializable) reads still answer from the member's replica, as of the last revision it
// applied. ConnectivityWatch samples the member on every Raft change and every `sampleMs`, and
// tells its listeners when the state changes.
//
// A leader is online: with check-quorum it steps down within an election timeout of losing its
// quorum. A follower or learner is online while it heard from its leader within an election
// timeout; a voter that stops hearing campaigns (pre-vote) and forgets the leader, a learner
// keeps the leader's id, so silence is what tells. Raft's leader heartbeats every heartbeat
// interval, so an online member never goes that long without a message.

import type { Clock } from '../seams.ts';
import type { KvMember } from './kv-member.ts';

export interface Connectivity {
  state: 'online' | 'offline';
  /** Clock time (the member clock's milliseconds) this member last heard from a leader with a quorum; null if never since it started. */
  lastLeaderAtMs: number | null;
  /** The store revision this member had applied then (0 if never). */
  lastLeaderRevision: number;
  /**
   * How old the local replica's view may be, in milliseconds: 0 while online (it may still lag
   * the leader by the replication delay), else the time since it last heard from a leader.
   * Null when it never did.
   */
  stalenessMs: number | null;
}

export class ConnectivityWatch {
  private readonly listeners = new Set<(c: Connectivity) => void>();
  private lastLeaderAtMs: number | null = null;
  private lastLeaderRevision = 0;
  private state: Connectivity['state'] = 'offline';
  private readonly stops: (() => void)[];

  constructor(
    private readonly kv: KvMember,
    clock: Clock,
    sampleMs: number,
  ) {
    this.stops = [kv.onChange(() => this.sample()), clock.every(sampleMs, () => this.sample())];
    this.sample();
  }

  current(): Connectivity {
    this.sample();
    return this.snapshot();
  }

  /** Calls `fn` on every change between online and offline; returns the unsubscribe. */
  onChange(fn: (c: Connectivity) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  stop(): void {
    for (const stop of this.stops) stop();
    this.listeners.clear();
  }

  private snapshot(): Connectivity {
    const now = this.kv.member.now();
    const stalenessMs = this.state === 'online' ? 0 : this.lastLeaderAtMs === null ? null : now - this.lastLeaderAtMs;
    return { state: this.state, lastLeaderAtMs: this.lastLeaderAtMs, lastLeaderRevision: this.lastLeaderRevision, stalenessMs };
  }

  private sample(): void {
    if (this.kv.isStopped()) return;
    const member = this.kv.member;
    const now = member.now();
    const lead = member.basicStatus().lead;
    let heardAtMs: number | null = null;
    if (lead === this.kv.id) heardAtMs = now;
    else if (lead !== 0) {
      const heard = member.lastHeardFrom(lead);
      if (heard !== null && now - heard <= member.electionTimeoutMs) heardAtMs = heard;
    }
    if (heardAtMs !== null) {
      this.lastLeaderAtMs = heardAtMs;
      this.lastLeaderRevision = this.kv.currentRevision;
    }
    const state = heardAtMs !== null ? 'online' : 'offline';
    if (state === this.state) return;
    this.state = state;
    const c = this.snapshot();
    for (const fn of [...this.listeners]) fn(c);
  }
}
