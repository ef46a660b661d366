// A key-value member: the MVCC state machine replicated by a Member. Writes go through the
// Raft log; linearizable reads wait for a ReadIndex barrier, serializable reads are local.
// Lease expiry is decided by the leader alone and applied through the log, as etcd does.

import { decodeRequest, encodeRequest, RequestDecodeError } from '../codec/request.ts';
import { Errors, GrpcCode, MvccError } from '../mvcc/errors.ts';
import { checkSnapshotFrames } from '../mvcc/snapshot.ts';
import { MvccStateMachine, type StateMachineOptions } from '../mvcc/state-machine.ts';
import type {
  ApplyRequest,
  ApplyResponseByKind,
  CompactionRequest,
  DeleteRangeRequest,
  DeleteRangeResponse,
  HashKVResponse,
  LeaseGrantRequest,
  LeaseGrantResponse,
  LeaseLeasesResponse,
  LeaseRevokeResponse,
  LeaseTimeToLiveResponse,
  PutRequest,
  PutResponse,
  RangeRequest,
  RangeResponse,
  TxnRequest,
  TxnResponse,
  CompactionResponse,
} from '../mvcc/types.ts';
import { validateRequest } from '../mvcc/validate.ts';
import type { WatchSink, WatchStream } from '../mvcc/watch-hub.ts';
import { ConfChangeTransition, ConfChangeType, type ConfChange } from '../raft/confchange.ts';
import { StateRole, type ConfState, type MemberId } from '../raft/types.ts';
import type { Status } from '../raft/raw-node.ts';
import type { Histogram } from './histogram.ts';
import type { JwtAuth } from './jwt.ts';
import type { SnapshotView as StoreView } from '../mvcc/snapshot.ts';
import type { BackendStaging, ChunkProducer } from '../seams.ts';
import { Member, MemberError, type MemberEvent, type MemberOptions, type SnapshotView, type StateMachine } from './member.ts';
import { snapshotChunkBytesMax, viewChunkProducer } from './snapshot-stream.ts';
import {
  MemberTable,
  decodeMemberUpdate,
  encodeMemberContext,
  encodeMemberUpdate,
  isClusterId,
  memberUpdateTag,
  membersMax,
  type MemberRecord,
} from './member-table.ts';
import { AuthError, AuthErrors, AuthStore, authEntryTag, decodeAuthOp, encodeAuthOp, type AuthOp, type AuthResult } from './auth-store.ts';
import { checkPassword, hashPassword, newToken, type AuthCrypto } from './password.ts';
import { isTabRecord, mayVote, nodeVoters, tabMayVote, voteRefusal } from './vote-policy.ts';
import { checkBatchSize, checkClient, checkSeq, decodeOutboxBatch, encodeOutboxBatch, outboxEntryTag, OutboxSessions, type OutboxBatch, type OutboxEntry, type OutboxOutcome } from './outbox-sessions.ts';
import { concat } from '../client/bytes.ts';

/** What proposing an outbox entry resolves with (outbox-sessions.ts). */
export interface OutboxApplyResult {
  outcome: OutboxOutcome;
  /**
   * True when applying this proposal changed nothing: a retry of an entry applied before, or an
   * entry the member's backend already held when it applied it (then this may have been the
   * first proposal of it; the member can no longer tell).
   */
  duplicate: boolean;
  /** The txn's response, when this proposal is the one that applied it. */
  txn: TxnResponse | null;
}

/** A learner may be promoted once its log holds this fraction of the leader's (etcd: readyPercent). */
export const learnerReadyFraction = 0.9;

/** Leases revoked per tick at most, so a mass expiry does not flood the log (etcd: leaseRevokeRate). */
export const leaseRevokesPerTickMax = 100;

export interface KvMemberOptions extends Omit<MemberOptions, 'stateMachine'> {
  mvcc?: StateMachineOptions;
  /**
   * Largest request this member proposes (etcd's --max-request-bytes), checked before the
   * proposal; default and ceiling the state machine's own limit, which every member applies
   * alike (a larger one here would only have the request refused at apply).
   */
  requestBytesMax?: number;
  /**
   * The member table before any snapshot carried one: the initial members, as configured on
   * every member alike (etcd's --initial-cluster). Default: no names or URLs known.
   */
  initialMembers?: MemberRecord[];
  /**
   * The cluster id a founding member seeds the table with (etcd derives it from
   * --initial-cluster); a joiner leaves it out and learns the cluster's from the leader's
   * snapshot. An image that carries an id wins over this one.
   */
  foundingClusterId?: string;
  /** WebCrypto for password hashes and simple tokens (adapters pass globalThis.crypto); without it, auth requests are refused. */
  authCrypto?: AuthCrypto;
  /** How long a simple token stays valid on this member after it applied it (etcd's --auth-token-ttl). */
  authTokenTtlMs?: number;
  /** JWT tokens (etcd's --auth-token jwt,...) instead of simple ones; every member needs the same keys. */
  authJwt?: JwtAuth;
  /** Test-only sabotage (the simulator's checker self-test): outbox retries are applied again (OutboxSessions.forgetsRetries). */
  outboxForgetsRetries?: boolean;
}

/** The store image of a snapshot that left the store in a persistent backend. */
const storeInBackend = new TextEncoder().encode('meshkv: the store is in the backend');

function isStoreInBackend(stateImage: Uint8Array): boolean {
  return stateImage.length === storeInBackend.length && stateImage.every((b, i) => b === storeInBackend[i]);
}

/** Adapts the MVCC store and the member table to the Member's StateMachine contract. */
class MvccReplica implements StateMachine {
  readonly members = new MemberTable();
  readonly membersChanged = new Set<(index: number) => void>();
  readonly auth: AuthStore;
  readonly outboxSessions = new OutboxSessions();

  constructor(
    readonly mvcc: MvccStateMachine,
    private readonly initialMembers: readonly MemberRecord[],
    private readonly foundingClusterId: string | null,
    private readonly nowMs: () => number,
    private readonly warn: (msg: string) => void,
    authTokenTtlMs?: number,
  ) {
    this.auth = new AuthStore(authTokenTtlMs);
  }

  apply(payload: Uint8Array, index: number): unknown {
    if (payload[0] === authEntryTag) {
      const op = decodeAuthOp(payload);
      if (op === null) {
        this.warn(`entry ${index}: undecodable auth entry skipped`);
        return { ok: false, error: new AuthError(GrpcCode.InvalidArgument, 'etcdserver: undecodable auth request') } satisfies AuthResult;
      }
      const result = this.auth.apply(op, this.nowMs());
      // The backend's applied index covers every entry, so the log can be cut at any of them.
      this.mvcc.markApplied(index);
      return result;
    }
    if (payload[0] === outboxEntryTag) return this.applyOutboxBatch(payload, index);
    if (payload[0] === memberUpdateTag) {
      const u = decodeMemberUpdate(payload);
      if (u === null) this.warn(`entry ${index}: undecodable member update skipped`);
      else this.members.applyUpdate(u);
      this.mvcc.markApplied(index);
      this.notify(index);
      return { ok: true, response: null };
    }
    // Entries the backend already holds must not be applied twice: a restarted member replays
    // its WAL from the last snapshot, and a member that received a leader's current state
    // replays the entries between the snapshot's index and that state's. The outcome is
    // unknown here, as etcd's is for a request whose wait it skips.
    if (index <= this.mvcc.appliedIndex) return { ok: false, error: new MvccError(GrpcCode.Unavailable, 'etcdserver: request timed out') };
    let req: ApplyRequest;
    try {
      req = decodeRequest(payload);
    } catch (err) {
      if (!(err instanceof RequestDecodeError)) throw err;
      // Every member decodes the same bytes the same way, so skipping keeps replicas equal.
      this.warn(`entry ${index} skipped: ${err.message}`);
      this.mvcc.markApplied(index);
      return { ok: false, error: new MvccError(GrpcCode.InvalidArgument, `etcdserver: ${err.message}`) };
    }
    return this.mvcc.apply(req, { nowMs: this.nowMs(), index });
  }

  /**
   * Over an asynchronous backend (a tab's IndexedDB): plans every kv request of the batch
   * against the store as the batch starts, fetches those values, then applies the batch. On
   * Node (memory, LMDB) it applies at once.
   */
  prepareApply(payloads: () => Uint8Array[], applyAll: () => void): Promise<void> | void {
    const prefetched = this.mvcc.prefetched;
    if (prefetched === null) return applyAll();
    const requests: ApplyRequest[] = [];
    for (const payload of payloads()) {
      if (payload[0] === authEntryTag || payload[0] === memberUpdateTag) continue;
      if (payload[0] === outboxEntryTag) {
        const batch = decodeOutboxBatch(payload);
        // A damaged batch: apply() skips it alike, with a warning.
        if (typeof batch !== 'string') for (const entry of batch.entries) requests.push({ kind: 'txn', request: entry.txn });
        continue;
      }
      try {
        requests.push(decodeRequest(payload));
      } catch (err) {
        // apply() skips it alike, with a warning.
        if (!(err instanceof RequestDecodeError)) throw err;
      }
    }
    return prefetched.run(() => {
      for (const request of requests) this.mvcc.planApply(request);
    }, applyAll);
  }

  /**
   * Each entry of an outbox batch is applied once per (client, seq): a retry is answered from
   * the session table. The table describes the backend's applied index (outbox-sessions.ts), so
   * an entry the backend already holds (replayed after a restart or an adopted snapshot stream)
   * is answered from it and changes nothing.
   */
  private applyOutboxBatch(payload: Uint8Array, index: number): { ok: true; response: OutboxApplyResult[] } | { ok: false; error: MvccError } {
    const batch = decodeOutboxBatch(payload);
    if (typeof batch === 'string') {
      this.warn(`entry ${index} skipped: ${batch}`);
      this.mvcc.markApplied(index);
      return { ok: false, error: new MvccError(GrpcCode.InvalidArgument, `meshkv: ${batch}`) };
    }
    if (index <= this.mvcc.appliedIndex) {
      // The backend holds this entry already (a replay after a restart, or an entry a streamed
      // snapshot brought): nothing changes now, and whether this proposal or an earlier one
      // applied it first is no longer known here, so it counts as a retry. An evicted client's
      // entry has no record left: applied, outcome unknown, on every member alike.
      return { ok: true, response: batch.entries.map((e) => ({ outcome: this.outboxSessions.applied(batch.client, e.seq)?.outcome ?? { kind: 'unknown' }, duplicate: true, txn: null })) };
    }
    const results: OutboxApplyResult[] = [];
    const batchSeqs = new Set(batch.entries.map((e) => e.seq));
    for (const entry of batch.entries) {
      const before = this.outboxSessions.applied(batch.client, entry.seq);
      if (before !== null) {
        results.push({ outcome: before.outcome, duplicate: true, txn: null });
        continue;
      }
      // One backend commit for the whole batch and its sessions (markApplied below): a crash keeps all of it or none.
      const result = this.mvcc.apply({ kind: 'txn', request: entry.txn }, { nowMs: this.nowMs(), index, deferCommit: true });
      const outcome: OutboxOutcome = !result.ok
        ? { kind: 'refused', message: result.error.message }
        : { kind: result.response.succeeded ? 'committed' : 'conflict', revision: result.response.header.revision };
      for (const op of this.outboxSessions.record(batch.client, entry.seq, outcome, index, batchSeqs)) this.mvcc.stageBackendOp(op);
      results.push({ outcome, duplicate: false, txn: result.ok ? result.response : null });
    }
    this.mvcc.markApplied(index);
    return { ok: true, response: results };
  }

  applyConfChange(cc: ConfChange, cs: ConfState, index: number): void {
    this.members.applyConfChange(cc, cs);
    this.mvcc.markApplied(index);
    this.notify(index);
  }

  /**
   * With a persistent backend: the member table's bytes and a marker, the store staying in the
   * backend (durableAt makes it durable first). Otherwise: the member table's bytes, then an O(1)
   * copy-on-write view of the store that the member serializes frame by frame between applies;
   * both taken now, at one applied index.
   */
  snapshot(): SnapshotView | Uint8Array {
    const header = this.members.imageHeader(this.auth.encodeImage(), this.outboxSessions.encodeImage());
    if (this.mvcc.backendPersistent) {
      this.markerIndex = this.mvcc.appliedIndex;
      return concat([header, storeInBackend]);
    }
    const view = this.mvcc.snapshot();
    return {
      *frames() {
        yield header;
        yield* view.frames();
      },
    };
  }

  failure(): Error | null {
    const err = this.mvcc.backendFailure;
    return err === null ? null : new Error(`the backend failed, nothing more can be applied: ${err.message}`);
  }

  async durableAt(index: number): Promise<void> {
    if (!this.mvcc.backendPersistent) return;
    // Everything up to `index` is applied, but entries the store never sees (a leader's empty
    // entry) leave its applied index behind: move it up, or a snapshot right after such an entry
    // would wait for an index the backend never reaches (found by the simulator, issue 15).
    this.mvcc.markApplied(index);
    const durable = await this.mvcc.durable();
    if (durable < index) throw new Error(`the backend is durable up to ${durable}, below the snapshot at ${index}`);
  }

  /**
   * A snapshot that left the store in the backend is streamed from a read view of the backend
   * (at its applied index, at or after the snapshot's; the receiver skips the entries between).
   */
  streamSource(image: Uint8Array): { producer: ChunkProducer; appliedIndex: number } | null {
    const { stateImage } = MemberTable.unwrapImage(image);
    // An asynchronous backend (a tab's IndexedDB) has no read views: imageForPeer sends it whole.
    if (!isStoreInBackend(stateImage) || this.mvcc.prefetched !== null) return null;
    // A backend that produces chunks elsewhere (LMDB: a worker thread) keeps that work off this thread.
    const elsewhere = this.mvcc.backendChunkProducer(snapshotChunkBytesMax);
    if (elsewhere !== null) return elsewhere;
    const { view, appliedIndex } = this.mvcc.backendView();
    return { producer: viewChunkProducer(view, appliedIndex), appliedIndex };
  }

  /**
   * A snapshot not streamed (see streamSource) whose image left the store in an asynchronous
   * backend is sent with the store's image instead, at the backend's applied index (at or after
   * the snapshot's; the receiver skips the entries in between). It cannot be read here: the image
   * is encoded once fetched, and sent when Raft sends the snapshot again (the peer refuses the
   * marker sent meanwhile).
   */
  imageForPeer(image: Uint8Array): Uint8Array {
    const { stateImage } = MemberTable.unwrapImage(image);
    const prefetched = this.mvcc.prefetched;
    if (!isStoreInBackend(stateImage) || prefetched === null) return image;
    const ready = this.imageForPeerReady;
    if (ready !== null && ready.appliedIndex >= this.markerIndex) {
      this.imageForPeerReady = null;
      // The sessions as of the store image's index, not the snapshot's (outbox-sessions.ts).
      return concat([MemberTable.headerWithSessions(image, ready.sessionsImage), ready.image]);
    }
    if (!this.imageForPeerPending) {
      this.imageForPeerPending = true;
      const encode = (): Uint8Array => this.mvcc.snapshot().encode();
      prefetched
        .run(encode, () => ({ image: encode(), sessionsImage: this.outboxSessions.encodeImage(), appliedIndex: this.mvcc.appliedIndex }))
        .then(
          (built) => (this.imageForPeerReady = built),
          (err: unknown) => this.warn(`encoding a snapshot for a peer: ${err instanceof Error ? err.message : String(err)}`),
        )
        .finally(() => (this.imageForPeerPending = false));
    }
    return image;
  }

  stageStream(image: Uint8Array): BackendStaging {
    const { stateImage } = MemberTable.unwrapImage(image);
    if (!isStoreInBackend(stateImage)) throw new Error('snapshot stream: the head\'s image does not say the store follows');
    return this.mvcc.stage();
  }

  /**
   * The staged store becomes the state. Raft then stores the snapshot with the image returned:
   * the marker when the backend outlives the process, else the whole store (a memory backend,
   * as in a tab, must find it in the snapshot after a restart).
   */
  async adoptStream(staging: BackendStaging, image: Uint8Array, appliedIndex: number): Promise<Uint8Array> {
    await this.mvcc.adoptStaged(staging, appliedIndex);
    // The streamed backend holds the sessions as of its applied index, past the head's.
    this.outboxSessions.load(this.mvcc.backendReader);
    if (this.mvcc.backendPersistent) return image;
    return concat([MemberTable.headerWithSessions(image, this.outboxSessions.encodeImage()), this.mvcc.snapshot().encode()]);
  }

  /** The applied index of the latest snapshot that left the store in the backend (made or restored). */
  private markerIndex = 0;
  /** A store image encoded from the asynchronous backend for the next snapshot sent, and its applied index. */
  private imageForPeerReady: { image: Uint8Array; sessionsImage: Uint8Array; appliedIndex: number } | null = null;
  private imageForPeerPending = false;

  checkImage(image: Uint8Array): string | null {
    let stateImage: Uint8Array;
    try {
      stateImage = MemberTable.unwrapImage(image).stateImage;
    } catch (err) {
      return (err as Error).message;
    }
    // A peer sends the marker only as a stream's head (handled before this check); a snapshot
    // message holding it is otherwise only ever this member's own.
    if (isStoreInBackend(stateImage)) return 'snapshot: holds no store (it stays in the sender\'s backend)';
    return stateImage.length === 0 ? null : checkSnapshotFrames(stateImage);
  }

  restore(image: Uint8Array, index: number): void {
    const { records, settings, authImage, sessionsImage, stateImage } = MemberTable.unwrapImage(image);
    // The store first: a corrupt image is refused before the member table changes. An empty
    // store image is the bootstrap snapshot. A backend already at or past `index` (a restart
    // whose backend outlived its last snapshot) holds a newer state than the image: keep it.
    // The member table and auth state come from the image either way: the entries after it
    // are applied to them again (only the store and the outbox sessions, which describe the
    // backend's applied index, skip what the backend holds).
    if (isStoreInBackend(stateImage)) {
      this.markerIndex = index;
      if (this.mvcc.appliedIndex < index) {
        throw new Error(
          `the snapshot at index ${index} keeps the store in the backend, which holds only up to index ${this.mvcc.appliedIndex}: restore the data dir from a backup, or remove the member and add it back empty`,
        );
      }
      this.outboxSessions.load(this.mvcc.backendReader);
    } else if (stateImage.length > 0 && index > this.mvcc.appliedIndex) {
      // The image's sessions are as of its store's index; they go into the backend with it.
      const sessions = new OutboxSessions();
      sessions.restoreImage(sessionsImage);
      this.mvcc.restore(stateImage, index, sessions.backendOps());
      this.outboxSessions.restoreImage(sessionsImage);
    } else {
      this.mvcc.markApplied(index);
      this.outboxSessions.load(this.mvcc.backendReader);
    }
    this.auth.restoreImage(authImage);
    this.members.reset(records ?? this.initialMembers, { ...settings, clusterId: settings.clusterId ?? this.foundingClusterId });
    this.notify(index);
  }

  private notify(index: number): void {
    for (const fn of this.membersChanged) fn(index);
  }
}

export interface KvMemberMetrics {
  /** Keys in the store at the current revision. */
  keys: number;
  proposalsPending: number;
  proposalsFailed: number;
  /** Storage syncs (etcd's WAL fsync). */
  syncMs: Histogram;
  /** Applying one batch of committed entries. */
  applyMs: Histogram;
  /** A snapshot holding up the member's Ready loop. */
  snapshotMs: Histogram;
}

const leaseIdSuffixMask = (1n << 48n) - 1n;
const leaseIdMask = (1n << 63n) - 1n;

export class KvMember {
  /**
   * The Raft driver, for the core's in-process connection, tests and the simulator; adapters
   * use the methods below. Not in the package's declarations.
   * @internal
   */
  readonly member: Member;
  /**
   * The store, for the core's in-process connection, tests and the simulator; adapters use the
   * methods below. Not in the package's declarations.
   * @internal
   */
  readonly mvcc: MvccStateMachine;
  private readonly opts: KvMemberOptions;
  private wasLeader = false;
  private stopLeaseTicker: (() => void) | null = null;
  /** Low 48 bits of the lease ids this member proposes; see leaseGrant. */
  private leaseIdSuffix: bigint | null = null;

  private constructor(
    member: Member,
    mvcc: MvccStateMachine,
    private readonly replica: MvccReplica,
    opts: KvMemberOptions,
  ) {
    this.member = member;
    this.mvcc = mvcc;
    this.opts = opts;
  }

  // ---- what adapters read and do through the member: the Raft driver and the store behind it
  // (`member`, `mvcc`) are for tests and metrics ----

  /** Role, term, leader, indexes and configuration (and, on the leader, each follower's progress). */
  status(): Status {
    return this.member.status();
  }

  isLeader(): boolean {
    return this.member.isLeader();
  }

  /** True once stopped (or its storage failed): it serves nothing any more. */
  isStopped(): boolean {
    return this.member.isStopped();
  }

  /** Calls `fn` on every role, term, leader and index change; returns the unsubscribe. */
  onChange(fn: (e: MemberEvent) => void): () => void {
    return this.member.onChange(fn);
  }

  /** Hands leadership to the voter `to` (etcd's MoveLeader); from the leader only. */
  transferLeadership(to: MemberId): void {
    this.member.transferLeadership(to);
  }

  /** The store's revision: that of the last applied write. */
  get currentRevision(): number {
    return this.mvcc.currentRevision;
  }

  /** The last outbox entry applied for `client` (outbox-sessions.ts), or null if none is known. */
  outboxAppliedSeq(client: string): number | null {
    return this.replica.outboxSessions.lastApplied(client);
  }

  /** History below this revision is compacted away. */
  get compactRevision(): number {
    return this.mvcc.compactRevision;
  }

  /** Resolves once this member has applied everything committed before the call (ReadIndex). */
  readBarrier(): Promise<void> {
    return this.member.readBarrier();
  }

  /** Opens a stream of watches on the store (etcd's Watch RPC stream); events go to `sink`. */
  openWatchStream(sink: WatchSink): WatchStream {
    return this.mvcc.watchHub.openStream(sink);
  }

  /** The keys attached to lease `id` (a local read); throws etcd's "lease not found" for no such lease. */
  leaseKeys(id: bigint): Uint8Array[] {
    return this.mvcc.leaseTimeToLive(id, true, 0).keys;
  }

  /** etcd's Hash: a checksum of the whole store as applied here. */
  hash(): number {
    return this.mvcc.hash();
  }

  /** The store's image as etcd's Snapshot RPC sends it (before the snapshot file's framing). */
  snapshotImage(): Uint8Array {
    return this.mvcc.snapshot().encode();
  }

  /** A consistent view of the store as applied now (O(1)); release it when done. */
  storeView(): StoreView {
    return this.mvcc.snapshot();
  }

  /** The backend's size on disk, or null where the backend keeps nothing on disk. */
  backendSizeBytes(): number | null {
    return this.mvcc.backendSizeBytes();
  }

  /** The size of the Raft snapshot this member last kept. */
  snapshotBytes(): number {
    return this.member.snapshotBytes();
  }

  /** Counters and latency histograms for the Prometheus endpoint, named after etcd's metrics. */
  metrics(): KvMemberMetrics {
    const m = this.member;
    const keys = this.mvcc.range({ key: new Uint8Array([0]), rangeEnd: new Uint8Array([0]), countOnly: true }).count;
    return { keys, proposalsPending: m.proposalsPending, proposalsFailed: m.proposalsFailed, syncMs: m.syncMs, applyMs: m.applyMs, snapshotMs: m.snapshotMs };
  }

  // ---- membership ----

  /** The applied member table (read-only: it changes only through the log). */
  get members(): MemberTable {
    return this.replica.members;
  }

  /** Called after every change to the member table (applied entry or restored snapshot), with its Raft index. */
  onMembersChanged(fn: (index: number) => void): () => void {
    this.replica.membersChanged.add(fn);
    return () => this.replica.membersChanged.delete(fn);
  }

  /**
   * Adds a member known so far by its peer URLs (etcd's MemberAdd); its name and client URLs
   * arrive when it starts and publishes them. Resolves once the change is applied here.
   */
  async addMember(id: MemberId, peerURLs: string[], isLearner: boolean): Promise<MemberRecord> {
    const table = this.members.list();
    if (table.length >= membersMax) throw new MvccError(GrpcCode.FailedPrecondition, `meshkv: a cluster has at most ${membersMax} members`);
    if (table.some((m) => m.peerURLs.some((u) => peerURLs.includes(u)))) throw new MvccError(GrpcCode.FailedPrecondition, 'etcdserver: Peer URLs already exists');
    if (table.some((m) => m.id === id)) throw new MvccError(GrpcCode.FailedPrecondition, 'etcdserver: member ID already exist');
    if (!isLearner && isTabRecord({ peerURLs }) && !tabMayVote(nodeVoters(this.members, this.member.status().confState).length, this.members.tabsMayOutvote)) {
      throw new MvccError(GrpcCode.FailedPrecondition, voteRefusal(id));
    }
    await this.member.changeMembership({
      transition: ConfChangeTransition.Auto,
      changes: [{ type: isLearner ? ConfChangeType.AddLearnerNode : ConfChangeType.AddNode, memberId: id }],
      context: encodeMemberContext({ name: '', peerURLs, clientURLs: [] }),
    });
    const added = this.members.get(id);
    if (!added) throw new MvccError(GrpcCode.FailedPrecondition, 'etcdserver: re-configuration failed: the change was refused');
    return added;
  }

  async removeMember(id: MemberId): Promise<void> {
    this.requireMember(id);
    await this.member.changeMembership({ transition: ConfChangeTransition.Auto, changes: [{ type: ConfChangeType.RemoveNode, memberId: id }], context: null });
  }

  async updateMember(id: MemberId, peerURLs: string[]): Promise<void> {
    this.requireMember(id);
    if (this.members.list().some((m) => m.id !== id && m.peerURLs.some((u) => peerURLs.includes(u)))) {
      throw new MvccError(GrpcCode.FailedPrecondition, 'etcdserver: Peer URLs already exists');
    }
    await this.member.propose(encodeMemberUpdate({ kind: 'peerURLs', id, peerURLs }));
  }

  /**
   * Learner → voter, from the leader only, and only once the learner's log is within 90% of
   * the leader's (etcd's readyPercent), so that the new voter does not stall commits.
   */
  async promoteMember(id: MemberId): Promise<void> {
    const m = this.requireMember(id);
    if (!m.isLearner) throw new MvccError(GrpcCode.FailedPrecondition, 'etcdserver: can only promote a learner member');
    const s = this.member.status();
    if (!mayVote(this.members, s.confState, id)) throw new MvccError(GrpcCode.FailedPrecondition, voteRefusal(id));
    if (s.role !== StateRole.Leader || s.progress === null) throw new MemberError('no-leader', 'etcdserver: not leader');
    const learnerMatch = s.progress.get(id)?.match ?? 0;
    const leaderMatch = s.progress.get(this.id)?.match ?? s.lastIndex;
    if (learnerMatch < leaderMatch * learnerReadyFraction) {
      throw new MvccError(GrpcCode.FailedPrecondition, 'etcdserver: can only promote a learner member which is in sync with leader');
    }
    await this.member.changeMembership({ transition: ConfChangeTransition.Auto, changes: [{ type: ConfChangeType.AddNode, memberId: id }], context: null });
  }

  /** Voter → learner (the vote policy's demotion): one voter fewer, so a simple change. */
  async demoteMember(id: MemberId): Promise<void> {
    const m = this.requireMember(id);
    if (m.isLearner) return;
    await this.member.changeMembership({ transition: ConfChangeTransition.Auto, changes: [{ type: ConfChangeType.AddLearnerNode, memberId: id }], context: null });
  }

  /** Sets the cluster's tab vote policy through the log (vote-policy.ts); the leader then promotes or demotes tabs. */
  async setTabsMayOutvote(tabsMayOutvote: boolean): Promise<void> {
    await this.member.propose(encodeMemberUpdate({ kind: 'tabVotes', tabsMayOutvote }));
  }

  /** Publishes this member's name and client URLs through the log (etcd's publish on start). */
  async publishAttributes(name: string, clientURLs: string[]): Promise<void> {
    await this.member.propose(encodeMemberUpdate({ kind: 'attributes', id: this.id, name, clientURLs }));
  }

  /**
   * etcd's publish, kept up: once there is a leader, puts this member's name and client URLs in
   * the member table through the log, and again whenever the table disagrees (say, a snapshot
   * from the leader predates the last publish). Checks on every leader change and every
   * `retryMs`, one proposal at a time. Returns the stop.
   */
  keepAttributesPublished(name: string, clientURLs: readonly string[], retryMs: number): () => void {
    let stopped = false;
    let publishing = false;
    const check = () => {
      if (stopped || publishing) return;
      const mine = this.members.get(this.id);
      if (!mine || (mine.name === name && sameStrings(mine.clientURLs, clientURLs))) return;
      if (this.member.status().lead === 0) return;
      publishing = true;
      this.publishAttributes(name, [...clientURLs])
        .then(
          () => this.opts.log?.('info', `published member attributes: name ${JSON.stringify(name)}, client URLs ${JSON.stringify(clientURLs)}`),
          (err: Error) => {
            if (!stopped) this.opts.log?.('warn', `publishing member attributes failed; will retry: ${err.message}`);
          },
        )
        .finally(() => (publishing = false));
    };
    const stopTimer = this.opts.clock.every(retryMs, check);
    const unwatchLeader = this.member.onChange(check);
    check();
    return () => {
      stopped = true;
      stopTimer();
      unwatchLeader();
    };
  }

  private requireMember(id: MemberId): MemberRecord {
    const m = this.members.get(id);
    if (!m) throw new MvccError(GrpcCode.NotFound, 'etcdserver: member not found');
    return m;
  }

  static async start(opts: KvMemberOptions): Promise<KvMember> {
    const mvcc = new MvccStateMachine(opts.mvcc);
    if (opts.foundingClusterId !== undefined && !isClusterId(opts.foundingClusterId)) throw new RangeError(`kvMember: founding cluster id ${JSON.stringify(opts.foundingClusterId)} is not a uint64 in decimal`);
    const replica = new MvccReplica(mvcc, opts.initialMembers ?? [], opts.foundingClusterId ?? null, () => opts.clock.now(), (m) => opts.log?.('warn', `member ${opts.id}: ${m}`), opts.authTokenTtlMs);
    replica.outboxSessions.forgetsRetries = opts.outboxForgetsRetries === true;
    const member = await Member.start({ ...opts, stateMachine: replica });
    const kv = new KvMember(member, mvcc, replica, opts);
    member.onChange((e) => kv.onRoleChange(e.role));
    kv.stopLeaseTicker = opts.clock.every(opts.tickMs ?? 100, () => kv.onTick());
    return kv;
  }

  get id(): number {
    return this.member.id;
  }

  async stop(): Promise<void> {
    this.stopLeaseTicker?.();
    await this.member.stop();
  }

  // ---- auth ----

  /** The applied auth store (read-only: it changes only through the log). */
  get auth(): AuthStore {
    return this.replica.auth;
  }

  /** Proposes one auth change; resolves with the auth revision once applied here. */
  async authChange(op: Exclude<AuthOp, { kind: 'authenticate' | 'userAdd' | 'userChangePassword' }>): Promise<number> {
    return this.proposeAuth(op);
  }

  /** Adds a user; the password is hashed here and only the hash enters the log. */
  async userAdd(name: string, password: string, noPassword: boolean): Promise<number> {
    if (name === '') throw AuthErrors.userEmpty();
    const hash = noPassword ? '' : await hashPassword(this.requireCrypto(), password);
    return this.proposeAuth({ kind: 'userAdd', name, password: hash, noPassword });
  }

  async userChangePassword(name: string, password: string): Promise<number> {
    const user = this.auth.getUser(name);
    if (!user) throw AuthErrors.userNotFound();
    const hash = user.noPassword ? '' : await hashPassword(this.requireCrypto(), password);
    return this.proposeAuth({ kind: 'userChangePassword', name, password: hash });
  }

  /**
   * Checks a password here and, when it matches, proposes a fresh simple token so that every
   * member accepts it (etcd's Authenticate). Resolves with the token.
   */
  async authenticate(name: string, password: string): Promise<string> {
    const crypto = this.requireCrypto();
    const jwt = this.opts.authJwt;
    // A JWT needs no log entry; the barrier makes the password check see every change committed before.
    if (jwt) await this.member.readBarrier();
    if (!this.auth.enabled) throw AuthErrors.authNotEnabled();
    const user = this.auth.getUser(name);
    // A missing user costs a hash too, so timing does not tell which names exist.
    const matches = await checkPassword(crypto, password, user && !user.noPassword ? user.password : 'pbkdf2-sha256$100000$AAAAAAAAAAAAAAAAAAAAAA==$');
    if (!user || user.noPassword || !matches) throw AuthErrors.authFailed();
    if (jwt) return jwt.sign(name, this.auth.revision);
    const token = newToken(crypto);
    await this.proposeAuth({ kind: 'authenticate', name, token });
    return token;
  }

  /**
   * The user a token names. A simple token expires by this member's clock (etcd's
   * --auth-token-ttl); a JWT by its `exp`, and it is refused as old once an auth change was
   * applied after it was issued (etcd's ErrAuthOldRevision).
   */
  async userOfToken(token: string): Promise<string> {
    const jwt = this.opts.authJwt;
    if (!jwt) return this.auth.userOfToken(token, this.opts.clock.now());
    const claims = await jwt.verify(token);
    if (claims.revision < this.auth.revision) throw AuthErrors.authOldRevision();
    return claims.username;
  }

  private requireCrypto(): AuthCrypto {
    if (this.opts.authCrypto) return this.opts.authCrypto;
    throw new AuthError(GrpcCode.FailedPrecondition, 'meshkv: this member was started without WebCrypto, so it cannot hash passwords');
  }

  private async proposeAuth(op: AuthOp): Promise<number> {
    const result = (await this.member.propose(encodeAuthOp(op))) as AuthResult;
    if (!result.ok) throw result.error;
    return result.revision;
  }

  // ---- KV ----

  async range(req: RangeRequest): Promise<RangeResponse> {
    this.validate({ kind: 'range', request: req });
    if (!req.serializable) await this.member.readBarrier();
    const prefetched = this.mvcc.prefetched;
    return prefetched === null ? this.mvcc.range(req) : prefetched.read(() => this.mvcc.range(req));
  }

  put(req: PutRequest): Promise<PutResponse> {
    return this.write({ kind: 'put', request: req });
  }

  deleteRange(req: DeleteRangeRequest): Promise<DeleteRangeResponse> {
    return this.write({ kind: 'deleteRange', request: req });
  }

  txn(req: TxnRequest): Promise<TxnResponse> {
    return this.write({ kind: 'txn', request: req });
  }

  compact(req: CompactionRequest): Promise<CompactionResponse> {
    return this.write({ kind: 'compaction', request: req });
  }

  /**
   * Proposes one outbox entry: its txn is applied at most once per (client, seq), however often
   * it is proposed (outbox-sessions.ts). Resolves once it is applied here; a retry resolves with
   * the first application's outcome. A timeout leaves the outcome unknown: propose it again.
   */
  async proposeOutboxEntry(entry: OutboxEntry): Promise<OutboxApplyResult> {
    return (await this.proposeOutboxBatch({ client: entry.client, entries: [{ seq: entry.seq, txn: entry.txn }] }))[0];
  }

  /** Proposes consecutive outbox entries of one client as one Raft entry; one result per entry, in order. */
  async proposeOutboxBatch(batch: OutboxBatch): Promise<OutboxApplyResult[]> {
    const bad = checkClient(batch.client) ?? checkBatchSize(batch.entries.length) ?? batch.entries.map((e) => checkSeq(e.seq)).find((m) => m !== null) ?? null;
    if (bad !== null) throw new MvccError(GrpcCode.InvalidArgument, `meshkv: ${bad}`);
    for (const e of batch.entries) this.validate({ kind: 'txn', request: e.txn });
    const payload = encodeOutboxBatch(batch);
    const limit = Math.min(this.mvcc.limits.requestBytesMax, this.opts.requestBytesMax ?? Infinity);
    if (payload.length > limit) throw new MvccError(GrpcCode.InvalidArgument, 'etcdserver: request is too large');
    const result = (await this.member.propose(payload)) as { ok: true; response: OutboxApplyResult[] } | { ok: false; error: MvccError };
    if (!result.ok) throw result.error;
    return result.response;
  }

  /** The outcome the state machine remembers for an outbox client's entry `seq`, or null if it has not applied it (outbox-sessions.ts). */
  outboxApplied(client: string, seq: number): OutboxOutcome | null {
    return this.replica.outboxSessions.applied(client, seq)?.outcome ?? null;
  }

  // ---- leases ----

  /**
   * A grant without an id gets one here, before proposing, so every replica applies the same id
   * (the log entry carries it; no replica draws its own). Shaped like etcd's: the member id's
   * low 16 bits on top, then a 40-bit start drawn from the member's random source once per run,
   * shifted left by 8, plus one per grant. So ids are large and spread out, two members' ids
   * differ in their top bits (unless the member ids share their low 16 bits), and a restarted
   * member starts elsewhere (etcd starts from the time of day; meshkv's core has only a
   * monotonic clock).
   */
  leaseGrant(req: LeaseGrantRequest): Promise<LeaseGrantResponse> {
    if ((req.ID ?? 0n) !== 0n) return this.write({ kind: 'leaseGrant', request: req });
    this.leaseIdSuffix ??= BigInt(Math.floor(this.opts.random() * 2 ** 40)) << 8n;
    this.leaseIdSuffix = (this.leaseIdSuffix + 1n) & leaseIdSuffixMask;
    // int64 ids must stay positive: bit 63 is cleared, and a zero id would mean "assign one".
    let id = ((BigInt(this.id) & 0xffffn) << 48n) | this.leaseIdSuffix;
    id &= leaseIdMask;
    if (id === 0n) id = 1n;
    return this.write({ kind: 'leaseGrant', request: { ...req, ID: id } });
  }

  leaseRevoke(id: bigint): Promise<LeaseRevokeResponse> {
    return this.write({ kind: 'leaseRevoke', request: { ID: id } });
  }

  /** Keep-alive is served by the leader, whose clock alone decides expiry. */
  async leaseKeepAlive(id: bigint): Promise<{ ID: bigint; TTL: number }> {
    if (!this.member.isLeader()) throw new MvccError(GrpcCode.Unavailable, 'etcdserver: not leader');
    const { ttlSeconds, checkpoint } = this.mvcc.lessor.renew(id, this.opts.clock.now());
    if (checkpoint) await this.write({ kind: 'leaseCheckpoint', request: { checkpoints: [checkpoint] } });
    return { ID: id, TTL: ttlSeconds };
  }

  async leaseTimeToLive(id: bigint, keys: boolean): Promise<LeaseTimeToLiveResponse> {
    await this.member.readBarrier();
    return this.mvcc.leaseTimeToLive(id, keys, this.opts.clock.now());
  }

  async leaseLeases(): Promise<LeaseLeasesResponse> {
    await this.member.readBarrier();
    return this.mvcc.leaseLeases();
  }

  /**
   * Whether a Raft message from `peer` should reach this member (transports ask, after they
   * authenticated the peer): a member of its table or of its configuration, the leader it
   * follows, or anyone while this member has no configuration yet. A member joining an existing cluster may not know the
   * current leader until that leader's first append or snapshot gives it a configuration.
   */
  hearsFrom(peer: MemberId): boolean {
    if (this.members.get(peer) !== undefined) return true;
    const status = this.member.status();
    // The leader Raft follows, even when this member's configuration does not hold it: a
    // snapshot taken before that leader was added gives such a configuration, and only that
    // leader's appends bring the entry that adds it (seen in test/cluster: a learner restored
    // a snapshot at 121 from a leader added after it and dropped that leader's appends for good).
    if (status.lead === peer) return true;
    const cs = status.confState;
    const configured = [cs.voters, cs.learners, cs.votersOutgoing, cs.learnersNext];
    return configured.every((ids) => ids.length === 0) || configured.some((ids) => ids.includes(peer));
  }

  // ---- maintenance ----

  hashKV(revision = 0): HashKVResponse {
    return this.mvcc.hashKV(revision);
  }

  private validate(req: ApplyRequest): void {
    const limits = this.mvcc.limits;
    const err = validateRequest(req, this.opts.requestBytesMax === undefined ? limits : { ...limits, requestBytesMax: Math.min(limits.requestBytesMax, this.opts.requestBytesMax) });
    if (err) throw err;
  }

  private async write<K extends ApplyRequest['kind']>(req: ApplyRequest & { kind: K }): Promise<ApplyResponseByKind[K]> {
    this.validate(req);
    const result = (await this.member.propose(encodeRequest(req))) as
      | { ok: true; response: ApplyResponseByKind[K] }
      | { ok: false; error: MvccError };
    if (!result.ok) throw result.error;
    return result.response;
  }

  private onRoleChange(role: StateRole): void {
    const leader = role === StateRole.Leader;
    if (leader === this.wasLeader) return;
    this.wasLeader = leader;
    const tickMs = this.opts.tickMs ?? 100;
    // A new leader cannot know when the old one last renewed a lease: extend every lease by an
    // election timeout so none expires early.
    if (leader) this.mvcc.lessor.promote(this.opts.clock.now(), tickMs * (this.opts.electionTicks ?? 10));
    else this.mvcc.lessor.demote();
  }

  /**
   * Catches unsynced watchers up from history; over an asynchronous backend, one bounded
   * catch-up at a time, its revisions fetched first.
   */
  private syncWatchers(): void {
    const hub = this.mvcc.watchHub;
    const prefetched = this.mvcc.prefetched;
    // Without unsynced watchers it reads nothing (it only sends progress notifications).
    if (prefetched === null || hub.unsyncedCount === 0) {
      hub.syncWatchers();
      return;
    }
    if (this.watchCatchUp) return;
    this.watchCatchUp = true;
    prefetched
      .run(
        () => hub.planSync(),
        () => hub.syncWatchers(),
      )
      .catch((err: unknown) => this.opts.log?.('warn', `member ${this.id}: watch catch-up: ${err instanceof Error ? err.message : String(err)}`))
      .finally(() => (this.watchCatchUp = false));
  }

  private watchCatchUp = false;

  private onTick(): void {
    this.syncWatchers();
    if (!this.wasLeader) return;
    const now = this.opts.clock.now();
    for (const id of this.mvcc.lessor.expired(now, leaseRevokesPerTickMax)) {
      this.write({ kind: 'leaseRevoke', request: { ID: id } }).catch((err: Error) => {
        // Revoked meanwhile, or leadership lost: the next leader decides again.
        if (!(err instanceof MemberError) && !(err instanceof MvccError && err.message === Errors.leaseNotFound().message)) {
          this.opts.log?.('warn', `member ${this.id}: revoking expired lease ${id}: ${err.message}`);
        }
      });
    }
  }
}

function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
