// etcd's Cluster service over a KvMember: MemberList, MemberAdd (voter or learner),
// MemberRemove, MemberUpdate, MemberPromote, with etcd's strict reconfiguration checks
// (reconfig-check.ts). Who may call them is decided in auth-gate.ts, before these run.

import type { KvMember } from '../../src/server/kv-member.ts';
import { EtcdApiError, Status } from './errors.ts';
import type { LeaderClients } from './leader-client.ts';
import { checkAdd, checkRemove, type ReconfigView } from './reconfig-check.ts';
import { int, memberUrls, type Wire } from './server-wire.ts';

/** What MemberList shows of one member. */
export interface MemberInfo {
  name: string;
  peerURLs: string[];
  clientURLs: string[];
}

export interface MembershipOptions {
  /** The id a member added with these peer URLs gets (the joining member derives the same). */
  newMemberId(peerURLs: string[]): number;
  /**
   * Since when (Date.now()) this member's peer link to `id` has been up, or null while it is
   * down: etcd's strict reconfiguration check (reconfig-check.ts) counts connected members.
   */
  activeSince(id: number): number | null;
  /**
   * Whether this member listens for peers (--listen-peer-urls). Without a listener it cannot
   * reach a Node member added by its peer URLs, so adding or re-addressing one is refused;
   * removing and promoting members need no new link and work.
   */
  peerListener: boolean;
}

export class ClusterService {
  constructor(
    private readonly kv: KvMember,
    private readonly header: (revision?: number) => Wire,
    private readonly members: (id: number) => MemberInfo | undefined,
    private readonly membership: MembershipOptions | undefined,
    private readonly leaderClients: LeaderClients,
    private readonly leaderClientUrl: () => string,
  ) {}

  memberList(_w: Wire): Promise<Wire> {
    const conf = this.kv.status().confState;
    const member = (id: number, isLearner: boolean): Wire => {
      const info = this.members(id);
      return { ID: String(id), name: info?.name ?? '', peerURLs: info?.peerURLs ?? [], clientURLs: info?.clientURLs ?? [], isLearner };
    };
    // etcd lists voters and learners together, by id.
    const members = [...conf.voters.map((id) => member(id, false)), ...conf.learners.map((id) => member(id, true))].sort(
      (a, b) => Number(a.ID) - Number(b.ID),
    );
    // etcd's MemberList header carries no revision.
    return Promise.resolve({ header: { ...this.header(), revision: 0 }, members });
  }

  async memberAdd(w: Wire): Promise<Wire> {
    const membership = this.requireMembership();
    const peerURLs = memberUrls(w.peerURLs);
    this.requirePeerListener(membership, `add a member at ${peerURLs.join(',')}`);
    const isLearner = w.isLearner === true;
    checkAdd(this.reconfigView(membership), isLearner);
    const m = await this.kv.addMember(membership.newMemberId(peerURLs), peerURLs, isLearner);
    const list = await this.memberList({});
    return { header: list.header, member: { ...m, ID: String(m.id) }, members: list.members };
  }

  async memberRemove(w: Wire): Promise<Wire> {
    const membership = this.requireMembership();
    checkRemove(this.reconfigView(membership), int(w.ID));
    await this.kv.removeMember(int(w.ID));
    return this.memberList({});
  }

  private reconfigView(membership: MembershipOptions): ReconfigView {
    const conf = this.kv.status().confState;
    return {
      self: this.kv.id,
      voters: conf.voters,
      learners: conf.learners,
      isStarted: (id) => (this.members(id)?.name ?? '') !== '',
      activeSince: (id) => membership.activeSince(id),
      now: Date.now(),
    };
  }

  async memberUpdate(w: Wire): Promise<Wire> {
    this.requirePeerListener(this.requireMembership(), 'change the peer URLs of a member');
    await this.kv.updateMember(int(w.ID), memberUrls(w.peerURLs));
    return this.memberList({});
  }

  /**
   * Only the leader knows whether a learner has caught up: a follower forwards, as etcd's do,
   * with the caller's auth token (every member knows it), so the leader checks the same caller.
   */
  async memberPromote(w: Wire, forwarded = false, token?: string): Promise<Wire> {
    this.requireMembership();
    if (!forwarded && !this.kv.isLeader()) {
      await this.leaderClients.promote(this.leaderClientUrl(), String(w.ID ?? '0'), token);
      await this.kv.readBarrier();
    } else {
      await this.kv.promoteMember(int(w.ID));
    }
    return this.memberList({});
  }

  private requireMembership(): MembershipOptions {
    if (this.membership) return this.membership;
    throw new EtcdApiError(Status.FailedPrecondition, 'meshkv: this member does not serve membership changes');
  }

  private requirePeerListener(membership: MembershipOptions, what: string): void {
    if (membership.peerListener) return;
    throw new EtcdApiError(
      Status.FailedPrecondition,
      `meshkv: cannot ${what}: this member has no peer listener, so it could not reach that member; ` +
        'restart it with --listen-peer-urls http://<host>:<port> and --initial-advertise-peer-urls set to the same URL (its data stays), then try again. ' +
        '(member remove and member promote work without one.)',
    );
  }
}
