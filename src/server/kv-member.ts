// A key-value member: the MVCC state machine replicated by a Member. Writes go through the
// Raft log; linearizable reads wait for a ReadIndex barrier, serializable reads are local.
// Lease expiry is decided by the leader alone and applied through the log, as etcd does.

import { decodeRequest, encodeRequest, RequestDecodeError } from '../codec/request.ts';
import { Errors, GrpcCode, MvccError } from '../mvcc/errors.ts';
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
import { StateRole } from '../raft/types.ts';
import { Member, MemberError, type MemberOptions, type SnapshotView, type StateMachine } from './member.ts';

/** Leases revoked per tick at most, so a mass expiry does not flood the log (etcd: leaseRevokeRate). */
export const leaseRevokesPerTickMax = 100;

export interface KvMemberOptions extends Omit<MemberOptions, 'stateMachine'> {
  mvcc?: StateMachineOptions;
}

/** Adapts the MVCC store to the Member's StateMachine contract. */
class MvccReplica implements StateMachine {
  constructor(
    readonly mvcc: MvccStateMachine,
    private readonly nowMs: () => number,
    private readonly warn: (msg: string) => void,
  ) {}

  apply(payload: Uint8Array, index: number): unknown {
    let req: ApplyRequest;
    try {
      req = decodeRequest(payload);
    } catch (err) {
      if (!(err instanceof RequestDecodeError)) throw err;
      // Every member decodes the same bytes the same way, so skipping keeps replicas equal.
      this.warn(`entry ${index} skipped: ${err.message}`);
      return { ok: false, error: new MvccError(GrpcCode.InvalidArgument, `etcdserver: ${err.message}`) };
    }
    return this.mvcc.apply(req, { nowMs: this.nowMs() });
  }

  /** An O(1) copy-on-write view; the member serializes it frame by frame between applies. */
  snapshot(): SnapshotView {
    return this.mvcc.snapshot();
  }

  restore(image: Uint8Array): void {
    if (image.length === 0) return; // the bootstrap snapshot: an empty store
    this.mvcc.restore(image);
  }
}

export class KvMember {
  readonly member: Member;
  readonly mvcc: MvccStateMachine;
  private readonly opts: KvMemberOptions;
  private wasLeader = false;
  private stopLeaseTicker: (() => void) | null = null;

  private constructor(member: Member, mvcc: MvccStateMachine, opts: KvMemberOptions) {
    this.member = member;
    this.mvcc = mvcc;
    this.opts = opts;
  }

  static async start(opts: KvMemberOptions): Promise<KvMember> {
    const mvcc = new MvccStateMachine(opts.mvcc);
    const replica = new MvccReplica(mvcc, () => opts.clock.now(), (m) => opts.log?.('warn', `member ${opts.id}: ${m}`));
    const member = await Member.start({ ...opts, stateMachine: replica });
    const kv = new KvMember(member, mvcc, opts);
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

  // ---- KV ----

  async range(req: RangeRequest): Promise<RangeResponse> {
    this.validate({ kind: 'range', request: req });
    if (!req.serializable) await this.member.readBarrier();
    return this.mvcc.range(req);
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

  // ---- leases ----

  leaseGrant(req: LeaseGrantRequest): Promise<LeaseGrantResponse> {
    return this.write({ kind: 'leaseGrant', request: req });
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

  // ---- maintenance ----

  hashKV(revision = 0): HashKVResponse {
    return this.mvcc.hashKV(revision);
  }

  private validate(req: ApplyRequest): void {
    const err = validateRequest(req);
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

  private onTick(): void {
    this.mvcc.watchHub.syncWatchers();
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
