// etcd's v3 services over a KvMember, on wire objects (see proto.ts): shared by the gRPC server
// and the JSON gateway, so both answer alike. This is where the service groups (kv-service.ts,
// lease-service.ts, cluster-service.ts, maintenance-service.ts, auth-service.ts) and watch
// streams (watch-session.ts) are composed over one member, with the header they share. Every response carries etcd's header (cluster
// id, member id, revision, Raft term); every failure is an EtcdApiError with etcd's gRPC status
// code and exact message (errors.ts); every call passes the auth gate first (auth-gate.ts).

import type { KvMember } from '../../src/server/kv-member.ts';
import type { WatchResponse } from '../../src/mvcc/types.ts';
import { LeaderClients } from './leader-client.ts';
import { EtcdApiError, Status } from './errors.ts';
import { metricsText } from './metrics.ts';
import { WatchSession } from './watch-session.ts';
import { AuthService } from './auth-service.ts';
import { ClusterService, type MemberInfo, type MembershipOptions } from './cluster-service.ts';
import { MaintenanceService } from './maintenance-service.ts';
import { KvService } from './kv-service.ts';
import { LeaseService } from './lease-service.ts';
import { authorize, userOfCall, type Caller, type Rpc } from './auth-gate.ts';
import { keyValue, type Wire } from './server-wire.ts';
import type { HeaderWire } from './proto-codec.ts';

export { EtcdApiError, Status, toApiError } from './errors.ts';
export { WatchSession } from './watch-session.ts';
export type { MemberInfo, MembershipOptions } from './cluster-service.ts';
export { etcdVersion, snapshotChunkBytesMax } from './maintenance-service.ts';

export interface EtcdApiOptions {
  kv: KvMember;
  /**
   * The cluster id for response headers, uint64 as a decimal string (exact beyond 2^53); a
   * function is read per response (a joining member learns the id with the leader's snapshot).
   */
  clusterId: string | (() => string);
  /** Names and URLs by member id; members missing here are listed unstarted, without URLs. */
  members: (id: number) => MemberInfo | undefined;
  /** Without it, membership changes are refused. */
  membership?: MembershipOptions;
}

export class EtcdApi {
  readonly kv: KvMember;
  private readonly clusterId: () => string;
  private readonly members: EtcdApiOptions['members'];
  private readonly leaderClients = new LeaderClients();
  /** Open watchers across every stream this API serves (the watcher gauge). */
  private watchersOpen = 0;
  private leaderChangesSeen = 0;
  private lastLeader = 0;
  /** Raft term for response headers, kept from member events (status() copies progress maps). */
  private term: number;
  private readonly unsubscribe: () => void;

  /** etcd's KV service (kv-service.ts). */
  readonly kvService: KvService;
  /** etcd's Lease service (lease-service.ts). */
  readonly lease: LeaseService;
  /** etcd's Auth service (auth-service.ts). */
  readonly auth: AuthService;
  /** etcd's Cluster service (cluster-service.ts). */
  readonly cluster: ClusterService;
  /** etcd's Maintenance service (maintenance-service.ts). */
  readonly maintenance: MaintenanceService;

  constructor(opts: EtcdApiOptions) {
    this.kv = opts.kv;
    this.auth = new AuthService(opts.kv, () => this.header());
    const clusterId = opts.clusterId;
    this.clusterId = typeof clusterId === 'string' ? () => clusterId : clusterId;
    this.members = opts.members;
    this.cluster = new ClusterService(opts.kv, (revision) => this.header(revision), opts.members, opts.membership, this.leaderClients, () => this.leaderClientUrl());
    this.kvService = new KvService(opts.kv, (revision) => this.header(revision));
    this.lease = new LeaseService(opts.kv, (revision) => this.header(revision), this.leaderClients, () => this.leaderClientUrl());
    this.maintenance = new MaintenanceService(opts.kv, (revision) => this.header(revision));
    const status = opts.kv.status();
    this.term = status.term;
    this.observeLeader(status.lead);
    this.unsubscribe = opts.kv.onChange((e) => {
      this.term = e.term;
      this.observeLeader(e.leader);
    });
  }

  private observeLeader(leader: number): void {
    if (leader !== 0 && leader !== this.lastLeader) this.leaderChangesSeen++;
    this.lastLeader = leader;
  }

  /** The user a call's token names (auth-gate.ts); first of the two steps every RPC passes. */
  userOf(token: string | undefined): Promise<string> {
    return userOfCall(this.kv, token);
  }

  /**
   * The auth check every RPC passes before its service runs (auth-gate.ts), for the user
   * userOf resolved: throws etcd's error when the caller may not make this call.
   */
  authorize(rpc: Rpc, w: Wire, user: string): Caller {
    return authorize(this.kv, rpc, w, user);
  }

  close(): void {
    this.unsubscribe();
    this.leaderClients.close();
  }

  header(revision = this.kv.currentRevision): HeaderWire {
    return {
      cluster_id: this.clusterId(),
      member_id: String(this.kv.id),
      revision,
      raft_term: this.term,
    };
  }

  /** The leader's client URL, for calls only the leader answers. */
  leaderClientUrl(): string {
    const leader = this.kv.status().lead;
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
  openWatch(send: (r: WatchResponse) => boolean, caller: Caller = { user: '' }): WatchSession {
    return new WatchSession(this, send, caller);
  }

  /** A watch response as a wire object, for the JSON gateway. */
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
