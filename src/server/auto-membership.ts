// Membership that manages itself, for clusters whose members come and go on their own (browser
// tabs). A member that wants in keeps asking every member until it sees itself in the
// configuration it has applied; a member that leaves tells every member once. Only the leader
// acts on either, so the requests carry everything the decision needs and no member has to
// remember what a previous leader promised:
//
//   join(id, wantsVote)  not a member yet      → the leader adds it as a learner;
//                        a learner, wantsVote   → the leader promotes it once its log is within
//                                                 etcd's readyPercent of the leader's;
//   leave(id)            a member               → the leader removes it. Every member remembers a
//                                                 leave for a while, because the member leaving
//                                                 may be the leader itself, and the next leader
//                                                 has to carry it out.
//
// One change at a time: Raft refuses a new configuration change while one is in flight.
// Join requests waiting to be carried out are bounded (joinsPendingMax) and forgotten when
// their joiner stops repeating them, so a flood of joiners cannot grow the member table
// faster than one change at a time, nor crowd out later joiners for good.

import { StateRole, type MemberId } from '../raft/types.ts';
import type { Clock } from '../seams.ts';
import { learnerReadyFraction, type KvMember } from './kv-member.ts';
import { disallowedTabVoters, isTab, mayVote } from './vote-policy.ts';

/** How long a tab may be unreachable before the leader removes it, by default. */
export const tabGraceMsDefault = 30_000;

export interface JoinRequest {
  id: MemberId;
  /** Shown in member lists until the member publishes its own attributes. */
  name: string;
  /** How peers reach it, as the transport understands it (a WebRTC member: `webrtc://<id>`). */
  peerURLs: string[];
  /** Promote to voter once caught up; false keeps it a learner (a read replica). */
  wantsVote: boolean;
}

export interface AutoMembershipOptions {
  clock: Clock;
  /** How long every member remembers a leave request for a later leader (default 60 s). */
  leaveMemoryMs?: number;
  /** How often the leader looks for learners to promote and leaves to carry out (default 250 ms). */
  checkIntervalMs?: number;
  /** How long the leader waits for an unreachable tab before removing it (default tabGraceMsDefault). */
  tabGraceMs?: number;
  /**
   * The tab vote policy this member wants for the cluster (vote-policy.ts). When set and the
   * replicated table says otherwise, the member proposes it once a leader is known; unset
   * leaves the cluster's setting alone.
   */
  tabsMayOutvote?: boolean;
  /** Join requests waiting at once, at most (default joinsPendingMaxDefault); more are dropped until some are done or forgotten. */
  joinsPendingMax?: number;
  log?: (level: 'info' | 'warn', msg: string) => void;
}

/** Default of AutoMembershipOptions.joinsPendingMax. */
export const joinsPendingMaxDefault = 8;

export class AutoMembership {
  /** Members that asked to be promoted, with the time of their latest request. */
  private readonly promotions = new Map<MemberId, number>();
  /** Members that asked to leave, with the time of their request. */
  private readonly leaves = new Map<MemberId, number>();
  /** Join requests not yet carried out, with the time of their latest repetition. */
  private readonly joins = new Map<MemberId, { req: JoinRequest; at: number }>();
  /** Join requests dropped because joins was full, since the last log line. */
  private joinsDropped = 0;
  private readonly joinsPendingMax: number;
  private busy = false;
  private readonly stopTimer: () => void;
  private stopped = false;
  private readonly leaveMemoryMs: number;
  private readonly tabGraceMs: number;
  /** The policy to propose, until the table holds it; null once done (or never asked). */
  private wantedTabsMayOutvote: boolean | null;
  /** On the leader: since when (clock ms) it has counted each tab, so a new leader or a new tab gets the whole grace. */
  private readonly tabSeenSinceMs = new Map<MemberId, number>();
  /** Tabs whose promotion the policy held back, so that it is logged once. */
  private readonly heldBack = new Set<MemberId>();

  constructor(
    private readonly kv: KvMember,
    private readonly opts: AutoMembershipOptions,
  ) {
    this.leaveMemoryMs = opts.leaveMemoryMs ?? 60_000;
    this.tabGraceMs = opts.tabGraceMs ?? tabGraceMsDefault;
    this.wantedTabsMayOutvote = opts.tabsMayOutvote ?? null;
    this.joinsPendingMax = opts.joinsPendingMax ?? joinsPendingMaxDefault;
    if (!Number.isSafeInteger(this.joinsPendingMax) || this.joinsPendingMax < 1) throw new Error(`auto membership: joinsPendingMax ${this.joinsPendingMax} is not a positive integer`);
    this.stopTimer = opts.clock.every(opts.checkIntervalMs ?? 250, () => this.act());
  }

  /** A member asks to join (or, already a learner, to be promoted). Cheap to repeat. */
  join(req: JoinRequest): void {
    if (this.stopped || req.id === 0) return;
    if (!this.joins.has(req.id) && !this.kv.members.get(req.id) && this.joins.size >= this.joinsPendingMax) {
      if (this.joinsDropped++ === 0) this.opts.log?.('warn', `automatic membership: ${this.joins.size} joins pending, the limit; dropping join requests until some are done`);
      return;
    }
    if (this.joinsDropped > 0 && this.joins.size < this.joinsPendingMax) {
      this.opts.log?.('info', `automatic membership: taking join requests again after dropping ${this.joinsDropped}`);
      this.joinsDropped = 0;
    }
    // A member that asks in again has changed its mind about leaving (a reopened tab).
    this.leaves.delete(req.id);
    this.joins.set(req.id, { req, at: this.opts.clock.now() });
    if (req.wantsVote) this.promotions.set(req.id, this.opts.clock.now());
    else this.promotions.delete(req.id);
    this.act();
  }

  /** A member says it is leaving for good. */
  leave(id: MemberId): void {
    if (this.stopped) return;
    this.joins.delete(id);
    this.promotions.delete(id);
    this.leaves.set(id, this.opts.clock.now());
    this.act();
  }

  /**
   * Switches the cluster's tab vote policy (a live change: the leader then promotes or demotes
   * tabs). Resolves once the setting is applied here.
   */
  async setTabsMayOutvote(tabsMayOutvote: boolean): Promise<void> {
    this.wantedTabsMayOutvote = null;
    await this.kv.setTabsMayOutvote(tabsMayOutvote);
    this.act();
  }

  stop(): void {
    this.stopped = true;
    this.stopTimer();
  }

  /** On the leader, carries out one pending change; elsewhere only forgets stale requests. */
  private act(): void {
    if (this.stopped || this.busy) return;
    this.forgetStale();
    if (this.maybeProposePolicy()) return;
    if (!this.kv.isLeader()) {
      this.tabSeenSinceMs.clear();
      return;
    }
    const change = this.nextChange();
    if (!change) return;
    this.busy = true;
    change()
      .catch((err: Error) => this.opts.log?.('warn', `automatic membership change failed; will retry: ${err.message}`))
      .finally(() => {
        this.busy = false;
      });
  }

  private forgetStale(): void {
    const now = this.opts.clock.now();
    for (const [id, at] of this.leaves) if (now - at > this.leaveMemoryMs) this.leaves.delete(id);
    // A joiner repeats its request while it wants in; one that stopped asking went away.
    for (const [id, at] of this.promotions) if (now - at > this.leaveMemoryMs) this.promotions.delete(id);
    for (const [id, j] of this.joins) if (now - j.at > this.leaveMemoryMs) this.joins.delete(id);
  }

  /** Proposes the policy this member was started with, if the cluster's differs (once a leader is known). */
  private maybeProposePolicy(): boolean {
    const wanted = this.wantedTabsMayOutvote;
    if (wanted === null || this.kv.status().lead === 0) return false;
    if (this.kv.members.tabsMayOutvote === wanted) {
      this.wantedTabsMayOutvote = null;
      return false;
    }
    this.busy = true;
    this.kv
      .setTabsMayOutvote(wanted)
      .then(() => {
        this.wantedTabsMayOutvote = null;
        this.opts.log?.('info', `tab vote policy set: ${wanted ? 'tabs may outvote the Node members' : 'tabs stay learners while Node members vote'}`);
      })
      .catch((err: Error) => this.opts.log?.('warn', `setting the tab vote policy failed; will retry: ${err.message}`))
      .finally(() => {
        this.busy = false;
      });
    return true;
  }

  /**
   * The next change the leader should make, if any: leaves first, then tabs gone past their
   * grace, then demotions the vote policy asks for, then joins, then promotions.
   */
  private nextChange(): (() => Promise<void>) | null {
    const table = this.kv.members;
    const cs = this.kv.status().confState;
    for (const id of this.heldBack) if (!table.get(id)) this.heldBack.delete(id);
    for (const id of this.leaves.keys()) {
      if (id === this.kv.id) continue; // a leader that leaves is removed by the next one
      if (!table.get(id)) {
        this.leaves.delete(id);
        const cs = this.kv.status().confState;
        if (cs.voters.includes(id) || cs.learners.includes(id)) {
          this.opts.log?.('warn', `member ${id.toString(16)} asked to leave but has no record in the member table; remove it by hand`);
        }
        continue;
      }
      return async () => {
        await this.kv.removeMember(id);
        this.leaves.delete(id);
        this.opts.log?.('info', `removed member ${id.toString(16)}, which left`);
      };
    }
    const gone = this.tabPastGrace(cs.voters.concat(cs.learners));
    if (gone !== null) {
      return async () => {
        await this.kv.removeMember(gone.id);
        this.tabSeenSinceMs.delete(gone.id);
        this.opts.log?.('warn', `removed tab member ${gone.id.toString(16)}: unreachable for ${Math.round(gone.silentMs / 1000)} s (grace ${Math.round(this.tabGraceMs / 1000)} s); it is added again if it comes back`);
      };
    }
    // The leader itself last: a leader that demotes itself steps down.
    const demote = disallowedTabVoters(table, cs).sort((a, b) => Number(a === this.kv.id) - Number(b === this.kv.id))[0];
    if (demote !== undefined) {
      return async () => {
        await this.kv.demoteMember(demote);
        this.opts.log?.('info', `demoted tab member ${demote.toString(16)} to learner: Node members vote in this cluster and tabs may not outvote them`);
      };
    }
    for (const [id, { req }] of this.joins) {
      if (table.get(id)) {
        this.joins.delete(id);
        continue;
      }
      return async () => {
        await this.kv.addMember(id, req.peerURLs, true);
        this.joins.delete(id);
        this.opts.log?.('info', `added member ${id.toString(16)} (${req.name}) as a learner`);
      };
    }
    for (const id of this.promotions.keys()) {
      const m = table.get(id);
      if (!m || !m.isLearner || !this.caughtUp(id)) continue;
      if (!mayVote(table, cs, id)) {
        if (!this.heldBack.has(id)) this.opts.log?.('info', `keeping tab member ${id.toString(16)} a learner: Node members vote in this cluster and tabs may not outvote them`);
        this.heldBack.add(id);
        continue;
      }
      this.heldBack.delete(id);
      return async () => {
        await this.kv.promoteMember(id);
        this.promotions.delete(id);
        this.opts.log?.('info', `promoted member ${id.toString(16)} to voter`);
      };
    }
    return null;
  }

  /** On the leader: a tab member (not this one) unreachable for longer than the grace, if any. */
  private tabPastGrace(members: readonly MemberId[]): { id: MemberId; silentMs: number } | null {
    // The member's clock, the one its last-heard times are on.
    const now = this.kv.member.now();
    const table = this.kv.members;
    for (const id of [...this.tabSeenSinceMs.keys()]) if (!members.includes(id)) this.tabSeenSinceMs.delete(id);
    for (const id of members) {
      if (id === this.kv.id || !isTab(table, id)) continue;
      const seenSince = this.tabSeenSinceMs.get(id) ?? now;
      this.tabSeenSinceMs.set(id, seenSince);
      const silentMs = now - Math.max(seenSince, this.kv.member.lastHeardFrom(id) ?? 0);
      if (silentMs > this.tabGraceMs) return { id, silentMs };
    }
    return null;
  }

  /** The learner's log is close enough to the leader's that promoting it cannot stall commits. */
  private caughtUp(id: MemberId): boolean {
    const s = this.kv.status();
    if (s.role !== StateRole.Leader || s.progress === null) return false;
    const match = s.progress.get(id)?.match ?? 0;
    return match > 0 && match >= s.lastIndex * learnerReadyFraction;
  }
}
