// The deterministic state machine the Raft log replicates: one `apply` per committed entry.
// Given the same entries in the same order, every member reaches the same store, leases,
// revisions and hash. The context's time only drives leader-local lease expiry bookkeeping,
// which is not replicated state.

import { fromBinaryString } from './bytes.ts';
import { MvccError } from './errors.ts';
import { applyDeleteRange, applyPut, applyRange, applyTxn } from './apply-kv.ts';
import { KvStore, type WriteTxn } from './kv-store.ts';
import { MemoryBackend } from '../backend/memory.ts';
import { PrefetchedBackend } from '../backend/prefetched.ts';
import { planRequest } from './plan.ts';
import type { Backend, BackendOp, BackendReader, BackendReadView, BackendStaging, ChunkProducer } from '../seams.ts';
import { DEFAULT_LESSOR_CONFIG, Lessor, type LeaseState, type LessorConfig } from './lessor.ts';
import { decodeInt64, decodeLease, decodeU64, encodeInt64, encodeLease, leaseKey, metaKeys, nextLeaseIdKey } from '../backend/layout.ts';
import { SnapshotDecodeError, SnapshotView, decodeSnapshot } from './snapshot.ts';
import { DEFAULT_LIMITS, validateRequest, type Limits } from './validate.ts';
import { WatchHub } from './watch-hub.ts';
import { Errors } from './errors.ts';
import {
  CRC32C_INITIAL,
  crc32cFinish,
  crc32cUpdateBinaryString,
  crc32cUpdateUint53,
} from '../codec/crc32c.ts';
import type {
  ApplyRequest,
  ApplyResponseByKind,
  CompactionResponse,
  HashKVResponse,
  LeaseGrantResponse,
  LeaseLeasesResponse,
  LeaseRevokeResponse,
  LeaseTimeToLiveResponse,
  PutRequest,
  DeleteRangeRequest,
  RangeRequest,
  RangeResponse,
} from './types.ts';

export interface ApplyContext {
  /** The member's monotonic clock, ms. Used only for the leader's lease expiry bookkeeping. */
  nowMs: number;
  /**
   * The Raft index of the entry being applied, stored with its writes in the backend. Default:
   * one past the previous apply's (for tests and tools that apply without a log).
   */
  index?: number;
  /**
   * Leave the backend batch open: the caller applies more requests of the same Raft entry (an
   * outbox batch) and then commits them all at once with markApplied(index), so a crash never
   * leaves part of the entry in the backend.
   */
  deferCommit?: boolean;
}

export type ApplyResult<R> = { ok: true; response: R } | { ok: false; error: MvccError };

export interface StateMachineOptions {
  lessor?: LessorConfig;
  limits?: Limits;
  /** Where values and history live. Default: a fresh MemoryBackend. */
  backend?: Backend;
}

export class MvccStateMachine {
  private store: KvStore;
  readonly lessor: Lessor;
  readonly watchHub: WatchHub;
  readonly limits: Limits;

  constructor(options: StateMachineOptions = {}) {
    this.lessor = new Lessor(options.lessor ?? DEFAULT_LESSOR_CONFIG);
    this.limits = options.limits ?? DEFAULT_LIMITS;
    const backend = options.backend ?? new MemoryBackend();
    this.store = backend.appliedIndex > 0 ? this.open(backend) : new KvStore(this.lessor, backend);
    this.watchHub = new WatchHub(() => this.store);
  }

  /** Opens the state a backend holds (a restart): the key index from its records, the leases from its lease bucket. */
  private open(backend: Backend): KvStore {
    const leases: LeaseState[] = [];
    backend.range('lease', new Uint8Array(0), null, (_k, v) => {
      leases.push(decodeLease(v));
    });
    const next = backend.get('meta', nextLeaseIdKey);
    const store = KvStore.open(this.lessor, backend);
    const outside = store.findKeyOutsideLeases(new Set(leases.map((l) => l.id)));
    if (outside !== undefined) throw new Error(`mvcc: the backend's key ${JSON.stringify(outside.key)} is attached to lease ${outside.lease}, which its lease bucket does not hold`);
    this.lessor.restore(leases, next === undefined ? 1n : decodeInt64(next));
    store.attachLeases();
    return store;
  }

  get currentRevision(): number {
    return this.store.currentRevision;
  }

  /** -1 before the first compaction (etcd's value). */
  get compactRevision(): number {
    return this.store.compactRevision;
  }

  get keyCount(): number {
    return this.store.keyCount;
  }

  /**
   * Applies one committed request. Deterministic; never throws for a request etcd would
   * answer with an error: the error comes back as a value and the state is unchanged.
   */
  apply<R extends ApplyRequest>(request: R, ctx: ApplyContext): ApplyResult<ApplyResponseByKind[R['kind']]> {
    let result: ApplyResult<ApplyResponseByKind[R['kind']]>;
    try {
      const invalid = validateRequest(request, this.limits);
      result = invalid !== null ? { ok: false, error: invalid } : { ok: true, response: this.dispatch(request, ctx) as ApplyResponseByKind[R['kind']] };
    } catch (error) {
      if (!(error instanceof MvccError)) throw error;
      result = { ok: false, error };
    }
    // Applied either way (an etcd error changes nothing but is still the entry's outcome).
    if (!ctx.deferCommit) this.store.commit(ctx.index ?? this.store.appliedIndex + 1);
    return result;
  }

  /**
   * Records that entries up to `index` are applied when they did not go through apply()
   * (membership entries): the backend's applied index moves with them.
   */
  markApplied(index: number): void {
    if (index > this.store.appliedIndex) this.store.commit(index);
  }

  /**
   * Puts a write of the state machine's neighbours (the outbox sessions) in the batch the next
   * commit (apply or markApplied) makes, with the data of the entry being applied.
   */
  stageBackendOp(op: BackendOp): void {
    this.store.stage(op);
  }

  /** Reads the backend's committed content (its small buckets; `key` only through the store). */
  get backendReader(): BackendReader {
    return this.store.backend;
  }

  /** The backend's applied index as last committed by this state machine. */
  get appliedIndex(): number {
    return this.store.appliedIndex;
  }

  /** The backend's size on disk, if it has one (etcd's db size). */
  backendSizeBytes(): number | null {
    return this.store.backend.sizeBytes?.() ?? null;
  }

  /** Whether the backend outlives the process (see Backend.persistent). */
  get backendPersistent(): boolean {
    return this.store.backend.persistent;
  }

  /** Why the backend refused a commit (it is then failed for good), or null. */
  get backendFailure(): Error | null {
    return this.store.backendFailure;
  }

  /** Resolves once everything applied so far is on stable storage; returns that applied index. */
  async durable(): Promise<number> {
    const index = this.store.appliedIndex;
    const durable = await this.store.backend.durable();
    if (durable < index) throw new Error(`mvcc: the backend is durable up to ${durable}, not ${index}`);
    return index;
  }

  private dispatch(request: ApplyRequest, ctx: ApplyContext): ApplyResponseByKind[keyof ApplyResponseByKind] {
    switch (request.kind) {
      case 'range':
        return this.range(request.request);
      case 'put':
        return this.put(request.request);
      case 'deleteRange':
        return this.deleteRange(request.request);
      case 'txn':
        return this.write((txn) => applyTxn(txn, this.store, this.lessor, request.request));
      case 'compaction':
        return this.compact(request.request.revision);
      case 'leaseGrant':
        return this.leaseGrant(request.request.ID ?? 0n, request.request.TTL, ctx.nowMs);
      case 'leaseRevoke':
        return this.leaseRevoke(request.request.ID);
      case 'leaseCheckpoint':
        this.lessor.checkpoint(request.request.checkpoints, ctx.nowMs);
        for (const { ID } of request.request.checkpoints) {
          const lease = this.lessor.lookup(ID);
          if (lease !== undefined) this.stageLease(lease);
        }
        return { header: { revision: this.store.currentRevision } };
      default:
        throw new Error(`apply: unknown request kind ${(request as { kind: string }).kind}`);
    }
  }

  /**
   * Reads every value applying `request` can read, changing nothing: the plan step over an
   * asynchronous backend (src/mvcc/plan.ts).
   */
  planApply(request: ApplyRequest): void {
    planRequest({ store: this.store, lessor: this.lessor, prevKvWatched: this.watchHub.prevKvWatched }, request);
  }

  /** The backend as PrefetchedBackend when the store sits on an asynchronous one (a tab's IndexedDB), else null. */
  get prefetched(): PrefetchedBackend | null {
    return this.store.backend instanceof PrefetchedBackend ? this.store.backend : null;
  }

  /** A read at the current (or a historical) revision. Throws MvccError. */
  range(request: RangeRequest): RangeResponse {
    return applyRange(this.store, request, this.store.currentRevision);
  }

  private put(request: PutRequest) {
    const lease = request.lease ?? 0n;
    if (lease !== 0n && this.lessor.lookup(lease) === undefined) throw Errors.leaseNotFound();
    return this.write((txn) => applyPut(txn, this.store, request));
  }

  private deleteRange(request: DeleteRangeRequest) {
    return this.write((txn) => applyDeleteRange(txn, this.store, request));
  }

  /**
   * Runs one write transaction and tells the watch hub about its changes. `body` may fail only
   * before its first write (all checks come first); failing later would break atomicity, so it
   * is an invariant violation, not an etcd error.
   */
  private write<T>(body: (txn: WriteTxn) => T): T {
    const txn = this.store.write();
    let response: T;
    try {
      response = body(txn);
    } catch (error) {
      txn.end();
      if (txn.changes.length > 0) {
        throw new Error(`apply: write txn at ${txn.main} failed after ${txn.changes.length} writes: ${String(error)}`);
      }
      throw error;
    }
    const changes = txn.end();
    if (changes.length > 0) this.watchHub.notify(txn.main, changes);
    return response;
  }

  private compact(revision: number): CompactionResponse {
    this.store.compact(revision);
    return { header: { revision: this.store.currentRevision } };
  }

  private leaseGrant(id: bigint, ttlSeconds: number, nowMs: number): LeaseGrantResponse {
    const lease = this.lessor.grant(id, ttlSeconds, nowMs);
    this.stageLease(lease);
    this.store.stage({ bucket: 'meta', key: nextLeaseIdKey, value: encodeInt64(this.lessor.state().nextId) });
    return { header: { revision: this.store.currentRevision }, ID: lease.id, TTL: lease.ttlSeconds, error: '' };
  }

  /** Deletes the lease's keys in one revision (none if it has no keys), then the lease. */
  private leaseRevoke(id: bigint): LeaseRevokeResponse {
    const keys = this.lessor.keysOf(id);
    this.write((txn) => {
      for (const key of keys) txn.deleteRange(key, null);
    });
    this.lessor.remove(id);
    this.store.stage({ bucket: 'lease', key: leaseKey(id), value: null });
    return { header: { revision: this.store.currentRevision } };
  }

  /** Puts a lease's replicated state in the next backend batch (etcd's lease bucket). */
  private stageLease(lease: LeaseState): void {
    this.store.stage({ bucket: 'lease', key: leaseKey(lease.id), value: encodeLease(lease) });
  }

  // ---- reads outside the log ----

  /** etcd's HashKV: revision 0 means the current one. Throws MvccError. */
  hashKV(revision = 0): HashKVResponse {
    const { hash, compactRevision, hashRevision } = this.store.hashKV(revision);
    return { header: { revision: this.store.currentRevision }, hash, compactRevision, hashRevision };
  }

  /** A CRC-32C over the whole replicated state: key-values, revisions and leases. */
  hash(): number {
    let state = crc32cUpdateUint53(CRC32C_INITIAL, this.store.hashKV(0).hash);
    state = crc32cUpdateUint53(state, this.store.currentRevision);
    state = crc32cUpdateUint53(state, this.store.compactRevision + 1);
    const { leases, nextId } = this.lessor.state();
    for (const lease of leases) {
      state = crc32cUpdateBinaryString(state, lease.id.toString());
      state = crc32cUpdateUint53(state, lease.ttlSeconds);
      state = crc32cUpdateUint53(state, lease.remainingTtlSeconds);
    }
    state = crc32cUpdateBinaryString(state, nextId.toString());
    return crc32cFinish(state);
  }

  leaseTimeToLive(id: bigint, keys: boolean, nowMs: number): LeaseTimeToLiveResponse {
    const header = { revision: this.store.currentRevision };
    const lease = this.lessor.lookup(id);
    if (lease === undefined) return { header, ID: id, TTL: -1, grantedTTL: 0, keys: [] };
    return {
      header,
      ID: id,
      TTL: this.lessor.remainingSeconds(id, nowMs),
      grantedTTL: lease.ttlSeconds,
      keys: keys ? this.lessor.keysOf(id).map(fromBinaryString) : [],
    };
  }

  leaseLeases(): LeaseLeasesResponse {
    return { header: { revision: this.store.currentRevision }, leases: this.lessor.ids().map((ID) => ({ ID })) };
  }

  /** Self-check of the store's invariants and of lease attachments, for tests. O(records). */
  checkValid(): void {
    this.store.checkValid();
    const attached = new Map<bigint, string[]>();
    for (const id of this.lessor.ids()) attached.set(id, []);
    const all = this.store.rangeRecords('\0', '', this.store.currentRevision, Infinity);
    for (const record of all.records) {
      if (record.lease === 0n) continue;
      const keys = attached.get(record.lease);
      if (keys === undefined) throw new Error(`checkValid: key attached to missing lease ${record.lease}`);
      keys.push(record.key);
    }
    for (const [id, keys] of attached) {
      const tracked = this.lessor.keysOf(id);
      if (tracked.join('\n') !== keys.sort().join('\n')) {
        throw new Error(`checkValid: lease ${id} tracks ${tracked.length} keys, ${keys.length} are attached`);
      }
    }
  }

  // ---- snapshots ----

  /** A read view of the backend's committed content and the applied index stored in it (what a snapshot stream sends). */
  backendView(): { view: BackendReadView; appliedIndex: number } {
    const view = this.store.backend.view();
    const stored = view.get('meta', metaKeys.consistentIndex);
    return { view, appliedIndex: stored === undefined ? 0 : decodeU64(stored) };
  }

  /** The backend's own producer of stream chunks, if it has one (Backend.chunkProducer), and the applied index it starts at or after. */
  backendChunkProducer(chunkBytesMax: number): { producer: ChunkProducer; appliedIndex: number } | null {
    const backend = this.store.backend;
    return backend.chunkProducer === undefined ? null : { producer: backend.chunkProducer(chunkBytesMax), appliedIndex: backend.appliedIndex };
  }

  /** A staging area for a whole new backend content (a streamed snapshot). */
  stage(): BackendStaging {
    const backend = this.store.backend;
    if (backend.stage === undefined) throw new Error('mvcc: this backend has no staging area, so it cannot take a streamed snapshot');
    return backend.stage();
  }

  /**
   * Makes a complete staging area the backend's content at `appliedIndex`, then rebuilds the
   * key index and leases from it, as a restart does. O(records). Nothing is applied meanwhile
   * (the member calls it between applies).
   */
  async adoptStaged(staging: BackendStaging, appliedIndex: number): Promise<void> {
    const backend = this.store.backend;
    await staging.adopt(appliedIndex);
    const previousRevision = this.store.currentRevision;
    if (backend instanceof PrefetchedBackend) {
      // Its adopt prepared the restart scan over the new content (values stay in IndexedDB).
      try {
        this.store = this.open(backend);
      } finally {
        backend.openingDone();
      }
    } else this.store = this.open(backend);
    this.watchHub.restored(previousRevision);
  }

  /** An O(1) copy-on-write view of the whole state (the lease table is copied, without keys). */
  snapshot(): SnapshotView {
    const { leases, nextId } = this.lessor.state();
    return new SnapshotView(this.store.view(), leases, nextId, this.store.appliedIndex);
  }

  /**
   * Replaces the whole state with an encoded snapshot. The new store is built (and the snapshot
   * fully checked) before anything changes, so a corrupt snapshot leaves the state as it was.
   * Leases restart as on a follower (no expiry until promoted); watchers catch up from the
   * restored history.
   */
  restore(bytes: Uint8Array, index = this.store.appliedIndex, extraOps: readonly BackendOp[] = []): void {
    const decoded = decodeSnapshot(bytes);
    let store: KvStore;
    try {
      store = KvStore.restore(decoded.records(), decoded.currentRevision, decoded.compactRevision, this.lessor, this.store.backend);
      // Every record decoded, but do they make a consistent history (versions, create
      // revisions, tombstones, compaction)? O(records), like the restore itself; the history
      // is not read back (see checkValid).
      store.checkValid(false);
    } catch (err) {
      if (err instanceof SnapshotDecodeError) throw err;
      throw new SnapshotDecodeError(`inconsistent key history: ${err instanceof Error ? err.message : String(err)}`);
    }
    const outside = store.findKeyOutsideLeases(new Set(decoded.leases.map((l) => l.id)));
    if (outside !== undefined) {
      throw new SnapshotDecodeError(`key ${JSON.stringify(outside.key)} is attached to lease ${outside.lease}, which the snapshot does not hold`);
    }
    const previousRevision = this.store.currentRevision;
    this.lessor.restore(decoded.leases, decoded.nextLeaseId);
    store.attachLeases();
    for (const lease of decoded.leases) store.stage({ bucket: 'lease', key: leaseKey(lease.id), value: encodeLease(lease) });
    store.stage({ bucket: 'meta', key: nextLeaseIdKey, value: encodeInt64(decoded.nextLeaseId) });
    for (const op of extraOps) store.stage(op);
    // Only now, with the image checked, does the backend's content get replaced. An image taken
    // after the snapshot point (a leader sends its current state) is at its own, later index.
    store.commit(Math.max(index, decoded.appliedIndex));
    this.store = store;
    this.watchHub.restored(previousRevision);
  }
}
