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

import { StateRole, type MemberId } from '../raft/types.ts';
import type { Clock } from '../seams.ts';
import { learnerReadyFraction, type KvMember } from './kv-member.ts';

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
  log?: (level: 'info' | 'warn', msg: string) => void;
}

export class AutoMembership {
  /** Members that asked to be promoted, with the time of their latest request. */
  private readonly promotions = new Map<MemberId, number>();
  /** Members that asked to leave, with the time of their request. */
  private readonly leaves = new Map<MemberId, number>();
  private readonly joins = new Map<MemberId, JoinRequest>();
  private busy = false;
  private readonly stopTimer: () => void;
  private stopped = false;
  private readonly leaveMemoryMs: number;

  constructor(
    private readonly kv: KvMember,
    private readonly opts: AutoMembershipOptions,
  ) {
    this.leaveMemoryMs = opts.leaveMemoryMs ?? 60_000;
    this.stopTimer = opts.clock.every(opts.checkIntervalMs ?? 250, () => this.act());
  }

  /** A member asks to join (or, already a learner, to be promoted). Cheap to repeat. */
  join(req: JoinRequest): void {
    if (this.stopped || req.id === 0) return;
    // A member that asks in again has changed its mind about leaving (a reopened tab).
    this.leaves.delete(req.id);
    this.joins.set(req.id, req);
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

  stop(): void {
    this.stopped = true;
    this.stopTimer();
  }

  /** On the leader, carries out one pending change; elsewhere only forgets stale requests. */
  private act(): void {
    if (this.stopped || this.busy) return;
    this.forgetStale();
    if (!this.kv.isLeader()) return;
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
  }

  /** The next change the leader should make, if any: leaves first, then joins, then promotions. */
  private nextChange(): (() => Promise<void>) | null {
    const table = this.kv.members;
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
    for (const [id, req] of this.joins) {
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
      return async () => {
        await this.kv.promoteMember(id);
        this.promotions.delete(id);
        this.opts.log?.('info', `promoted member ${id.toString(16)} to voter`);
      };
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
