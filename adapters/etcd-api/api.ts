// etcd's v3 services over a KvMember, on wire objects (see proto.ts): shared by the gRPC server
// and the JSON gateway, so both answer alike. Every response carries etcd's header (cluster id,
// member id, revision, Raft term); every failure is an EtcdApiError with etcd's gRPC status
// code and exact message.

import { MemberError } from '../../src/server/member.ts';
import { checkAdd, checkRemove, type ReconfigView } from './reconfig-check.ts';
import { Errors, MvccError } from '../../src/mvcc/errors.ts';
import type { KvMember } from '../../src/server/kv-member.ts';
import type { Histogram } from '../../src/server/histogram.ts';
import type { WatchStream } from '../../src/mvcc/watch-hub.ts';
import type {
  Compare,
  DeleteRangeResponse,
  KeyValue,
  PutResponse,
  RangeRequest,
  RangeResponse,
  RequestOp,
  ResponseOp,
  TxnRequest,
  TxnResponse,
  WatchResponse,
} from '../../src/mvcc/types.ts';
import { StateRole } from '../../src/raft/types.ts';
import { encodeSnapshotFile } from './snapshot-file.ts';
import { LeaderClients } from './leader-client.ts';

/** The server version etcdctl shows; meshkv serves etcd 3.4's API. */
export const etcdVersion = '3.4.23';
/** Bytes per Snapshot stream message (etcd sends 32 KiB chunks). */
export const snapshotChunkBytesMax = 32 * 1024;

/** gRPC status codes used here (etcd's choices; see rpctypes). */
export const Status = {
  Unknown: 2,
  InvalidArgument: 3,
  DeadlineExceeded: 4,
  NotFound: 5,
  ResourceExhausted: 8,
  FailedPrecondition: 9,
  OutOfRange: 11,
  Unimplemented: 12,
  Internal: 13,
  Unavailable: 14,
} as const;

export class EtcdApiError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/** Maps any failure to etcd's status code and message. */
export function toApiError(err: unknown): EtcdApiError {
  if (err instanceof EtcdApiError) return err;
  if (err instanceof MvccError) return new EtcdApiError(err.code, err.message);
  if (err instanceof MemberError) {
    // etcd answers timeouts, a stopped server and a missing leader with Unavailable.
    return new EtcdApiError(Status.Unavailable, err.message);
  }
  return new EtcdApiError(Status.Unknown, err instanceof Error ? err.message : String(err));
}

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

type Wire = Record<string, any>;

// ---- wire → core ----

const noBytes = new Uint8Array(0);

function bytes(v: unknown): Uint8Array {
  return v instanceof Uint8Array ? v : noBytes;
}

/** int64 fields that hold revisions, counts and TTLs: exact up to 2^53, which revisions never reach. */
function int(v: unknown): number {
  return v === undefined || v === null || v === '' ? 0 : Number(v);
}

/** int64 fields that hold lease ids: any 64-bit value. */
function int64(v: unknown): bigint {
  return v === undefined || v === null || v === '' ? 0n : BigInt(v as string);
}

function rangeRequest(w: Wire): RangeRequest {
  return {
    key: bytes(w.key),
    rangeEnd: bytes(w.range_end),
    limit: int(w.limit),
    revision: int(w.revision),
    sortOrder: (w.sort_order ?? 0) as RangeRequest['sortOrder'],
    sortTarget: (w.sort_target ?? 0) as RangeRequest['sortTarget'],
    serializable: w.serializable === true,
    keysOnly: w.keys_only === true,
    countOnly: w.count_only === true,
    minModRevision: int(w.min_mod_revision),
    maxModRevision: int(w.max_mod_revision),
    minCreateRevision: int(w.min_create_revision),
    maxCreateRevision: int(w.max_create_revision),
  };
}

function putRequest(w: Wire) {
  return {
    key: bytes(w.key),
    value: bytes(w.value),
    lease: int64(w.lease),
    prevKv: w.prev_kv === true,
    ignoreValue: w.ignore_value === true,
    ignoreLease: w.ignore_lease === true,
  };
}

function deleteRangeRequest(w: Wire) {
  return { key: bytes(w.key), rangeEnd: bytes(w.range_end), prevKv: w.prev_kv === true };
}

function compare(w: Wire): Compare {
  return {
    result: (w.result ?? 0) as Compare['result'],
    target: (w.target ?? 0) as Compare['target'],
    key: bytes(w.key),
    version: int(w.version),
    createRevision: int(w.create_revision),
    modRevision: int(w.mod_revision),
    value: bytes(w.value),
    lease: int64(w.lease),
    rangeEnd: bytes(w.range_end),
  };
}

function requestOp(w: Wire): RequestOp {
  if (w.request_range) return { requestRange: rangeRequest(w.request_range) };
  if (w.request_put) return { requestPut: putRequest(w.request_put) };
  if (w.request_delete_range) return { requestDeleteRange: deleteRangeRequest(w.request_delete_range) };
  if (w.request_txn) return { requestTxn: txnRequest(w.request_txn) };
  // An empty RequestOp: etcd's checkRequestOp answers "key not found".
  throw Errors.keyNotFound();
}

function txnRequest(w: Wire): TxnRequest {
  return {
    compare: (w.compare ?? []).map(compare),
    success: (w.success ?? []).map(requestOp),
    failure: (w.failure ?? []).map(requestOp),
  };
}

/** Peer URLs of MemberAdd/MemberUpdate, normalized as the member table keeps them (etcd: ErrGRPCMemberBadURLs). */
function memberUrls(v: unknown): string[] {
  const bad = () => new EtcdApiError(Status.InvalidArgument, 'etcdserver: given member URLs are invalid');
  if (!Array.isArray(v) || v.length === 0) throw bad();
  return v.map((u) => {
    let url: URL;
    try {
      url = new URL(String(u));
    } catch {
      throw bad();
    }
    if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.port === '') throw bad();
    return url.origin;
  });
}

// ---- core → wire ----

export function keyValue(kv: KeyValue): Wire {
  return {
    key: kv.key,
    create_revision: kv.createRevision,
    mod_revision: kv.modRevision,
    version: kv.version,
    value: kv.value,
    lease: kv.lease.toString(),
  };
}

function rangeBody(r: RangeResponse): Wire {
  return { kvs: r.kvs.map(keyValue), more: r.more, count: r.count };
}
function putBody(r: PutResponse): Wire {
  return { prev_kv: r.prevKv ? keyValue(r.prevKv) : null };
}
function deleteBody(r: DeleteRangeResponse): Wire {
  return { deleted: r.deleted, prev_kvs: r.prevKvs.map(keyValue) };
}
function txnBody(r: TxnResponse): Wire {
  return { succeeded: r.succeeded, responses: r.responses.map(responseOp) };
}

/** Responses inside a txn carry only the revision in their header, as etcd's do. */
function responseOp(op: ResponseOp): Wire {
  const inner = (r: { header: { revision: number } }, body: Wire) => ({ header: { revision: r.header.revision }, ...body });
  if ('responseRange' in op) return { response_range: inner(op.responseRange, rangeBody(op.responseRange)) };
  if ('responsePut' in op) return { response_put: inner(op.responsePut, putBody(op.responsePut)) };
  if ('responseDeleteRange' in op) return { response_delete_range: inner(op.responseDeleteRange, deleteBody(op.responseDeleteRange)) };
  return { response_txn: inner(op.responseTxn, txnBody(op.responseTxn)) };
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

  constructor(opts: EtcdApiOptions) {
    this.kv = opts.kv;
    this.clusterId = opts.clusterId;
    this.members = opts.members;
    this.membership = opts.membership;
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

  close(): void {
    this.unsubscribe();
    this.leaderClients.close();
  }

  header(revision = this.kv.currentRevision): Wire {
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
    if (!forwarded && !this.kv.isLeader()) {
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

  /** Only the leader knows whether a learner has caught up: a follower forwards, as etcd's do. */
  async memberPromote(w: Wire, forwarded = false): Promise<Wire> {
    this.requireMembership();
    if (!forwarded && !this.kv.isLeader()) {
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
    const leader = this.kv.status().lead;
    if (leader === 0) throw new EtcdApiError(Status.Unavailable, 'etcdserver: no leader');
    const url = this.members(leader)?.clientURLs[0];
    if (url === undefined) throw new EtcdApiError(Status.Unavailable, "etcdserver: not leader (the leader's client URL is not known yet)");
    return url;
  }

  // ---- Maintenance ----

  status(_w: Wire): Promise<Wire> {
    const s = this.kv.status();
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

  /** No alarms are ever raised. Without a header, as etcd 3.4 answers (`alarm list -w json` prints `{}`). */
  alarm(_w: Wire): Promise<Wire> {
    return Promise.resolve({ alarms: [] });
  }

  /** meshkv's store has no free pages to reclaim: success without work. */
  defragment(_w: Wire): Promise<Wire> {
    return Promise.resolve({ header: this.header() });
  }

  async moveLeader(w: Wire): Promise<Wire> {
    const target = int(w.targetID);
    const s = this.kv.status();
    if (s.role !== StateRole.Leader) throw new EtcdApiError(Status.FailedPrecondition, 'etcdserver: not leader');
    if (!s.confState.voters.includes(target)) throw new EtcdApiError(Status.FailedPrecondition, 'etcdserver: bad leader transferee');
    if (target !== this.kv.id) {
      this.kv.transferLeadership(target);
      await this.waitFor(() => this.kv.status().lead === target);
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
  openWatch(send: (w: Wire) => boolean): WatchSession {
    return new WatchSession(this, send);
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

  /** @internal */
  countWatchers(delta: number): void {
    this.watchersOpen += delta;
  }

  // ---- metrics ----

  /** Prometheus text exposition of a few gauges and counters, named as etcd names them. */
  metrics(): string {
    const s = this.kv.status();
    const keys = this.kv.mvcc.range({ key: new Uint8Array([0]), rangeEnd: new Uint8Array([0]), countOnly: true }).count;
    const lines: string[] = [];
    const metric = (name: string, type: 'gauge' | 'counter', help: string, value: number) => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, `${name} ${value}`);
    };
    metric('etcd_server_has_leader', 'gauge', 'Whether or not a leader exists. 1 is existence, 0 is not.', s.lead !== 0 ? 1 : 0);
    metric('etcd_server_is_leader', 'gauge', 'Whether or not this member is a leader. 1 if is, 0 otherwise.', s.role === StateRole.Leader ? 1 : 0);
    metric('etcd_server_leader_changes_seen_total', 'counter', 'The number of leader changes seen.', this.leaderChangesSeen);
    metric('etcd_server_proposals_committed_total', 'gauge', 'The total number of consensus proposals committed.', s.commit);
    metric('etcd_server_proposals_applied_total', 'gauge', 'The total number of consensus proposals applied.', s.applied);
    metric('etcd_server_proposals_pending', 'gauge', 'The current number of pending proposals to commit.', this.kv.member.proposalsPending);
    metric('etcd_server_proposals_failed_total', 'counter', 'The total number of failed proposals seen.', this.kv.member.proposalsFailed);
    metric('meshkv_raft_term', 'gauge', 'The current Raft term.', s.term);
    metric('etcd_debugging_mvcc_keys_total', 'gauge', 'Total number of keys.', keys);
    metric('etcd_debugging_mvcc_watcher_total', 'gauge', 'Total number of watchers.', this.watchersOpen);
    metric('etcd_debugging_mvcc_db_total_size_in_bytes', 'gauge', 'Total size of the underlying database in bytes.', this.dbSizeBytes());
    const histogram = (name: string, help: string, h: Histogram) => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} histogram`);
      h.boundsMs.forEach((bound, i) => lines.push(`${name}_bucket{le="${bound / 1000}"} ${h.counts[i]}`));
      lines.push(`${name}_bucket{le="+Inf"} ${h.count}`, `${name}_sum ${h.sum / 1000}`, `${name}_count ${h.count}`);
    };
    histogram('etcd_disk_wal_fsync_duration_seconds', 'The latency distributions of fsync called by WAL.', this.kv.member.syncMs);
    histogram('meshkv_server_apply_duration_seconds', 'The latency distributions of applying one batch of committed entries.', this.kv.member.applyMs);
    return lines.join('\n') + '\n';
  }

  /**
   * etcd's db size: the backend's file when it has one (LMDB); otherwise the size of the latest
   * snapshot image. Before the first snapshot the store is small (fewer entries than the
   * snapshot interval since it was empty), so it is encoded, at most once per revision.
   */
  private dbSizeBytes(): number {
    const backendBytes = this.kv.mvcc.backendSizeBytes();
    if (backendBytes !== null) return backendBytes;
    const snapshotBytes = this.kv.member.snapshotBytes();
    if (snapshotBytes > 0) return snapshotBytes;
    const revision = this.kv.currentRevision;
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

/** One watch stream's state: its watchers in the hub, and the request handling. */
export class WatchSession {
  private readonly stream: WatchStream;
  private closed = false;

  constructor(
    private readonly api: EtcdApi,
    send: (w: Wire) => boolean,
  ) {
    this.stream = api.kv.mvcc.watchHub.openStream({
      send: (r) => {
        if (this.closed) return false;
        if (r.created && !r.canceled) api.countWatchers(1);
        if (r.canceled && r.watchId >= 0 && !r.created) api.countWatchers(-1);
        return send(api.watchResponse(r));
      },
    });
  }

  /** Handles one WatchRequest (create, cancel or progress). */
  handle(w: Wire): void {
    if (this.closed) return;
    if (w.create_request) {
      const c = w.create_request;
      this.stream.watch({
        key: bytes(c.key),
        rangeEnd: bytes(c.range_end),
        startRevision: int(c.start_revision),
        progressNotify: c.progress_notify === true,
        filters: c.filters ?? [],
        prevKv: c.prev_kv === true,
        watchId: int(c.watch_id),
      });
    } else if (w.cancel_request) {
      // etcd sends nothing for an unknown watch id.
      this.stream.cancel(int(w.cancel_request.watch_id));
    } else if (w.progress_request) {
      this.stream.requestProgress();
    }
  }

  close(): void {
    if (this.closed) return;
    this.api.countWatchers(-this.stream.watchIds.length);
    this.closed = true;
    this.stream.close();
  }
}
