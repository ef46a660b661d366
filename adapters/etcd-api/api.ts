// etcd's v3 services over a KvMember, on wire objects (see proto.ts): shared by the gRPC server
// and the JSON gateway, so both answer alike. KV, Lease and Watch are here; Cluster, Maintenance
// and Auth in their own files, composed below. Every response carries etcd's header (cluster
// id, member id, revision, Raft term); every failure is an EtcdApiError with etcd's gRPC status
// code and exact message (errors.ts); every call passes the auth gate first (auth-gate.ts).

import { Errors, MvccError } from '../../src/mvcc/errors.ts';
import type { KvMember } from '../../src/server/kv-member.ts';
import type { WatchResponse } from '../../src/mvcc/types.ts';
import { LeaderClients } from './leader-client.ts';
import { EtcdApiError, Status } from './errors.ts';
import { metricsText } from './metrics.ts';
import { WatchSession } from './watch-session.ts';
import { AuthService } from './auth-service.ts';
import { ClusterService, type MemberInfo, type MembershipOptions } from './cluster-service.ts';
import { MaintenanceService } from './maintenance-service.ts';
import { authorize, type Caller, type Rpc } from './auth-gate.ts';
import {
  deleteBody,
  deleteRangeRequest,
  int,
  int64,
  keyValue,
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
export type { MemberInfo, MembershipOptions } from './cluster-service.ts';
export { etcdVersion, snapshotChunkBytesMax } from './maintenance-service.ts';

export interface EtcdApiOptions {
  kv: KvMember;
  /** uint64 as a decimal string: exact beyond 2^53. */
  clusterId: string;
  /** Names and URLs by member id; members missing here are listed unstarted, without URLs. */
  members: (id: number) => MemberInfo | undefined;
  /** Without it, membership changes are refused. */
  membership?: MembershipOptions;
}

export class EtcdApi {
  readonly kv: KvMember;
  private readonly clusterId: string;
  private readonly members: EtcdApiOptions['members'];
  private readonly leaderClients = new LeaderClients();
  /** Open watchers across every stream this API serves (the watcher gauge). */
  private watchersOpen = 0;
  private leaderChangesSeen = 0;
  private lastLeader = 0;
  /** Raft term for response headers, kept from member events (status() copies progress maps). */
  private term: number;
  private readonly unsubscribe: () => void;

  /** etcd's Auth service (auth-service.ts). */
  readonly auth: AuthService;
  /** etcd's Cluster service (cluster-service.ts). */
  readonly cluster: ClusterService;
  /** etcd's Maintenance service (maintenance-service.ts). */
  readonly maintenance: MaintenanceService;

  constructor(opts: EtcdApiOptions) {
    this.kv = opts.kv;
    this.auth = new AuthService(opts.kv, () => this.header());
    this.clusterId = opts.clusterId;
    this.members = opts.members;
    this.cluster = new ClusterService(opts.kv, (revision) => this.header(revision), opts.members, opts.membership, this.leaderClients, () => this.leaderClientUrl());
    this.maintenance = new MaintenanceService(opts.kv, (revision) => this.header(revision));
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

  /** The leader's client URL, for calls only the leader answers. */
  leaderClientUrl(): string {
    const leader = this.kv.member.status().lead;
    if (leader === 0) throw new EtcdApiError(Status.Unavailable, 'etcdserver: no leader');
    const url = this.members(leader)?.clientURLs[0];
    if (url === undefined) throw new EtcdApiError(Status.Unavailable, "etcdserver: not leader (the leader's client URL is not known yet)");
    return url;
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

  /** The size metrics report as etcd's db size (maintenance-service.ts). */
  dbSizeBytes(): number {
    return this.maintenance.dbSizeBytes();
  }

  /** Prometheus text exposition (metrics.ts). */
  metrics(): string {
    return metricsText(this);
  }

  /** @internal */
  countWatchers(delta: number): void {
    this.watchersOpen += delta;
  }


}
