// etcd's v3 services over a KvMember, on wire objects (see proto.ts): shared by the gRPC server
// and the JSON gateway, so both answer alike. Every response carries etcd's header (cluster id,
// member id, revision, Raft term); every failure is an EtcdApiError with etcd's gRPC status
// code and exact message.

import { checkAdd, checkRemove, type ReconfigView } from './reconfig-check.ts';
import { Errors, MvccError } from '../../src/mvcc/errors.ts';
import type { KvMember } from '../../src/server/kv-member.ts';
import type { WatchResponse } from '../../src/mvcc/types.ts';
import { StateRole } from '../../src/raft/types.ts';
import { encodeSnapshotFile } from './snapshot-file.ts';
import { LeaderClients } from './leader-client.ts';
import { EtcdApiError, Status } from './errors.ts';
import { metricsText } from './metrics.ts';
import { WatchSession } from './watch-session.ts';
import { AuthService } from './auth-service.ts';
import { authorize, type Caller, type Rpc } from './auth-gate.ts';
import {
  deleteBody,
  deleteRangeRequest,
  int,
  int64,
  keyValue,
  memberUrls,
  putBody,
  putRequest,
  rangeBody,
  rangeRequest,
  txnBody,
  txnRequest,
  type Wire,
} from './server-wire.ts';

export { EtcdApiError, Status, toApiError } from './errors.ts';
export { WatchSession } from './watch-session.ts';

/** The server version etcdctl shows; meshkv serves etcd 3.4's API. */
export const etcdVersion = '3.4.23';
/** Bytes per Snapshot stream message (etcd sends 32 KiB chunks). */
export const snapshotChunkBytesMax = 32 * 1024;

/** What MemberList shows of one member. */
export interface MemberInfo {
  name: string;
  peerURLs: string[];
  clientURLs: string[];
}

export interface EtcdApiOptions {
  kv: KvMember;
  /** uint64 as a decimal string: exact beyond 2^53. */
  clusterId: string;
  /** Names and URLs by member id; members missing here are listed unstarted, without URLs. */
  members: (id: number) => MemberInfo | undefined;
  /** Without it, membership changes are refused. */
  membership?: MembershipOptions;
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

export class EtcdApi {
  readonly kv: KvMember;
  private readonly clusterId: string;
  private readonly members: EtcdApiOptions['members'];
  private readonly membership: EtcdApiOptions['membership'];
  private readonly leaderClients = new LeaderClients();
  /** Open watchers across every stream this API serves (the watcher gauge). */
  private watchersOpen = 0;
  private leaderChangesSeen = 0;
  private lastLeader = 0;
  /** Raft term for response headers, kept from member events (status() copies progress maps). */
  private term: number;
  private readonly unsubscribe: () => void;
  private snapshotSizeCache = { revision: -1, bytes: 0 };

  /** etcd's Auth service (auth-service.ts). */
  readonly auth: AuthService;

  constructor(opts: EtcdApiOptions) {
    this.kv = opts.kv;
    this.auth = new AuthService(opts.kv, () => this.header());
    this.clusterId = opts.clusterId;
    this.members = opts.members;
    this.membership = opts.membership;
    const status = opts.kv.member.status();
    this.term = status.term;
    this.observeLeader(status.lead);
    this.unsubscribe = opts.kv.member.onChange((e) => {
      this.term = e.term;
      this.observeLeader(e.leader);
    });
  }

  private observeLeader(leader: number): void {
    if (leader !== 0 && leader !== this.lastLeader) this.leaderChangesSeen++;
    this.lastLeader = leader;
  }

  /**
   * The auth check every RPC passes before its service runs (auth-gate.ts): resolves the token
   * and throws etcd's error when the caller may not make this call.
   */
  authorize(rpc: Rpc, w: Wire, token: string | undefined): Caller {
    return authorize(this.kv, rpc, w, token);
  }

  close(): void {
    this.unsubscribe();
    this.leaderClients.close();
  }

  header(revision = this.kv.mvcc.currentRevision): Wire {
    return {
      cluster_id: this.clusterId,
      member_id: String(this.kv.id),
      revision,
      raft_term: this.term,
    };
  }

  // ---- KV ----

  async range(w: Wire): Promise<Wire> {
    const r = await this.kv.range(rangeRequest(w));
    return { header: this.header(r.header.revision), ...rangeBody(r) };
  }

  async put(w: Wire): Promise<Wire> {
    const r = await this.kv.put(putRequest(w));
    return { header: this.header(r.header.revision), ...putBody(r) };
  }

  async deleteRange(w: Wire): Promise<Wire> {
    const r = await this.kv.deleteRange(deleteRangeRequest(w));
    return { header: this.header(r.header.revision), ...deleteBody(r) };
  }

  async txn(w: Wire): Promise<Wire> {
    const r = await this.kv.txn(txnRequest(w));
    return { header: this.header(r.header.revision), ...txnBody(r) };
  }

  async compact(w: Wire): Promise<Wire> {
    const r = await this.kv.compact({ revision: int(w.revision), physical: w.physical === true });
    return { header: this.header(r.header.revision) };
  }

  // ---- Lease ----

  async leaseGrant(w: Wire): Promise<Wire> {
    const r = await this.kv.leaseGrant({ TTL: int(w.TTL), ID: int64(w.ID) });
    return { header: this.header(r.header.revision), ID: r.ID.toString(), TTL: r.TTL, error: r.error };
  }

  async leaseRevoke(w: Wire): Promise<Wire> {
    const r = await this.kv.leaseRevoke(int64(w.ID));
    return { header: this.header(r.header.revision) };
  }

  /**
   * One keep-alive; a lease that does not exist answers TTL 0, which clients read as "not found".
   * Only the leader's clock decides expiry, so a follower forwards the keep-alive to the
   * leader's client URL (once: a forwarded call that finds no leader here fails).
   */
  async leaseKeepAlive(w: Wire, forwarded = false): Promise<Wire> {
    const id = int64(w.ID);
    if (!forwarded && !this.kv.member.isLeader()) {
      const r = await this.leaderClients.keepAlive(this.leaderClientUrl(), id.toString());
      return { header: this.header(), ID: id.toString(), TTL: int(r.TTL) };
    }
    try {
      const r = await this.kv.leaseKeepAlive(id);
      return { header: this.header(), ID: id.toString(), TTL: r.TTL };
    } catch (err) {
      if (err instanceof MvccError && err.message === Errors.leaseNotFound().message) {
        return { header: this.header(), ID: id.toString(), TTL: 0 };
      }
      throw err;
    }
  }

  async leaseTimeToLive(w: Wire): Promise<Wire> {
    const r = await this.kv.leaseTimeToLive(int64(w.ID), w.keys === true);
    return { header: this.header(r.header.revision), ID: r.ID.toString(), TTL: r.TTL, grantedTTL: r.grantedTTL, keys: r.keys };
  }

  async leaseLeases(_w: Wire): Promise<Wire> {
    const r = await this.kv.leaseLeases();
    return { header: this.header(r.header.revision), leases: r.leases.map((l) => ({ ID: l.ID.toString() })) };
  }

  // ---- Cluster ----

  memberList(_w: Wire): Promise<Wire> {
    const conf = this.kv.member.status().confState;
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
    const conf = this.kv.member.status().confState;
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

  /** Only the leader knows whether a learner has caught up: a follower forwards, as etcd's do. */
  async memberPromote(w: Wire, forwarded = false): Promise<Wire> {
    this.requireMembership();
    if (!forwarded && !this.kv.member.isLeader()) {
      await this.leaderClients.promote(this.leaderClientUrl(), String(w.ID ?? '0'));
      await this.kv.member.readBarrier();
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

  private leaderClientUrl(): string {
    const leader = this.kv.member.status().lead;
    if (leader === 0) throw new EtcdApiError(Status.Unavailable, 'etcdserver: no leader');
    const url = this.members(leader)?.clientURLs[0];
    if (url === undefined) throw new EtcdApiError(Status.Unavailable, "etcdserver: not leader (the leader's client URL is not known yet)");
    return url;
  }

  // ---- Maintenance ----

  status(_w: Wire): Promise<Wire> {
    const s = this.kv.member.status();
    const dbSize = this.dbSizeBytes();
    return Promise.resolve({
      header: this.header(),
      version: etcdVersion,
      dbSize,
      leader: String(s.lead),
      raftIndex: s.commit,
      raftTerm: s.term,
      raftAppliedIndex: s.applied,
      errors: [],
      dbSizeInUse: dbSize,
      isLearner: s.confState.learners.includes(this.kv.id),
    });
  }

  hash(_w: Wire): Promise<Wire> {
    return Promise.resolve({ header: this.header(), hash: this.kv.mvcc.hash() });
  }

  async hashKV(w: Wire): Promise<Wire> {
    const r = this.kv.hashKV(int(w.revision));
    return { header: this.header(r.header.revision), hash: r.hash, compact_revision: r.compactRevision };
  }

  alarm(_w: Wire): Promise<Wire> {
    return Promise.resolve({ header: this.header(), alarms: [] });
  }

  /** meshkv's store has no free pages to reclaim: success without work. */
  defragment(_w: Wire): Promise<Wire> {
    return Promise.resolve({ header: this.header() });
  }

  async moveLeader(w: Wire): Promise<Wire> {
    const target = int(w.targetID);
    const s = this.kv.member.status();
    if (s.role !== StateRole.Leader) throw new EtcdApiError(Status.FailedPrecondition, 'etcdserver: not leader');
    if (!s.confState.voters.includes(target)) throw new EtcdApiError(Status.FailedPrecondition, 'etcdserver: bad leader transferee');
    if (target !== this.kv.id) {
      this.kv.member.transferLeadership(target);
      await this.waitFor(() => this.kv.member.status().lead === target);
    }
    return { header: this.header() };
  }

  /**
   * The store image as etcd streams a snapshot: chunks with the bytes still to come, the whole
   * framed so that etcdctl's checks pass (see snapshot-file.ts).
   */
  *snapshot(): Generator<Wire> {
    const all = encodeSnapshotFile(this.kv.mvcc.snapshot().encode());
    const header = this.header();
    for (let at = 0; at < all.length; at += snapshotChunkBytesMax) {
      const blob = all.subarray(at, at + snapshotChunkBytesMax);
      yield { header, remaining_bytes: all.length - at - blob.length, blob };
    }
  }

  // ---- Watch ----

  /**
   * One client watch stream. `send` returns false when the client's buffer is full: event
   * responses are then held back and re-sent from history (the hub's flow control).
   */
  openWatch(send: (w: Wire) => boolean, caller: Caller = { user: '' }): WatchSession {
    return new WatchSession(this, send, caller);
  }

  /** @internal */
  watchResponse(r: WatchResponse): Wire {
    return {
      header: this.header(r.header.revision),
      watch_id: r.watchId,
      created: r.created,
      canceled: r.canceled,
      compact_revision: r.compactRevision,
      cancel_reason: r.cancelReason,
      events: r.events.map((e) => ({ type: e.type, kv: keyValue(e.kv), prev_kv: e.prevKv ? keyValue(e.prevKv) : null })),
    };
  }

  /** Watchers open across every watch stream this API serves. */
  get watcherCount(): number {
    return this.watchersOpen;
  }

  /** Leader changes this member has seen (etcd's leader_changes_seen counter). */
  get leaderChanges(): number {
    return this.leaderChangesSeen;
  }

  /** Prometheus text exposition (metrics.ts). */
  metrics(): string {
    return metricsText(this);
  }

  /** @internal */
  countWatchers(delta: number): void {
    this.watchersOpen += delta;
  }

  /**
   * meshkv's equivalent of etcd's db file: the size of the latest snapshot image. Before the
   * first snapshot the store is small (fewer entries than the snapshot interval since it was
   * empty), so it is encoded, at most once per revision.
   */
  dbSizeBytes(): number {
    const snapshotBytes = this.kv.member.snapshotBytes();
    if (snapshotBytes > 0) return snapshotBytes;
    const revision = this.kv.mvcc.currentRevision;
    if (this.snapshotSizeCache.revision !== revision) {
      this.snapshotSizeCache = { revision, bytes: this.kv.mvcc.snapshot().encode().length };
    }
    return this.snapshotSizeCache.bytes;
  }

  private async waitFor(done: () => boolean, timeoutMs = 7000): Promise<void> {
    const start = Date.now();
    while (!done()) {
      if (Date.now() - start > timeoutMs) throw new EtcdApiError(Status.Unavailable, 'etcdserver: request timed out');
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}
