// A Connection to KvMembers in the same JavaScript realm. It talks to one member at a time and
// moves to the next one when that member is stopped; lease keep-alives go to the leader, whose
// clock alone decides expiry.

import { MvccError } from '../mvcc/errors.ts';
import type { WatchStream } from '../mvcc/watch-hub.ts';
import type {
  CompactionRequest,
  CompactionResponse,
  DeleteRangeRequest,
  DeleteRangeResponse,
  LeaseGrantRequest,
  LeaseGrantResponse,
  LeaseLeasesResponse,
  LeaseRevokeRequest,
  LeaseRevokeResponse,
  LeaseTimeToLiveResponse,
  PutRequest,
  PutResponse,
  RangeRequest,
  RangeResponse,
  TxnRequest,
  TxnResponse,
  WatchCreateRequest,
  WatchResponse,
} from '../mvcc/types.ts';
import type { Clock } from '../seams.ts';
import type { KvMember } from '../server/kv-member.ts';
import { MemberError } from '../server/member.ts';
import { AuthError, AuthErrors } from '../server/auth-errors.ts';
import { checkDeleteRange, checkLeaseKeys, checkPut, checkRangeRequest, checkRead, checkTxn, type AuthCheckContext } from '../server/auth-check.ts';
import type {
  Connection,
  LeaseKeepAliveRequest,
  LeaseKeepAliveResponse,
  LeaseTimeToLiveRequest,
  WatchChannel,
  WatchRequest,
  WatchStreamHandlers,
} from './connection.ts';
import {
  EtcdError,
  EtcdLeaseNotFoundError,
  EtcdNoLeaderError,
  EtcdServerStoppedError,
  EtcdUnavailableError,
  errorFromStatus,
  StatusCode,
} from './errors.ts';

/** Watch responses queued for a slow handler before the hub is told to hold events back. */
export const WATCH_RESPONSES_QUEUED_MAX = 1024;
/** How often a watch stream checks that its member still runs (the in-process "keepalive ping"). */
export const WATCH_HEALTH_CHECK_MS_DEFAULT = 50;
/** Leader lookups per keep-alive: a new leader may not have taken over its lessor yet. */
const KEEPALIVE_ATTEMPTS_MAX = 3;

export interface InProcessConnectionOptions {
  /** Drives the watch streams' member health checks. */
  clock: Clock;
  /** Index into `members` of the member to use first. */
  preferred?: number;
  watchHealthCheckMs?: number;
  /**
   * etcd auth: with auth enabled, calls are made as this user (authenticated on first use, again
   * when the token goes stale) and checked as the etcd API checks them. Without, the connection
   * acts as the member itself, which holds every key anyway.
   */
  user?: string;
  password?: string;
}

/** A token the member no longer takes: authenticate again. */
function isStaleToken(err: unknown): boolean {
  return err instanceof AuthError && (err.message === AuthErrors.invalidAuthToken().message || err.message === AuthErrors.authOldRevision().message);
}

/** A status error from a member, as a typed EtcdError; anything else is a bug and passes through. */
export function toEtcdError(err: unknown): Error {
  if (err instanceof EtcdError) return err;
  if (err instanceof MvccError || err instanceof AuthError) return errorFromStatus(err.code, err.message);
  if (err instanceof MemberError) {
    switch (err.code) {
      case 'timeout':
      case 'stopped':
      case 'no-leader':
        return errorFromStatus(StatusCode.Unavailable, err.message);
      case 'proposal-dropped':
        return new EtcdError(StatusCode.Unavailable, err.message);
    }
  }
  return err as Error;
}

/** A leader-only lessor call reached a member that is not (or not yet) the leader. */
function isNotLeader(err: unknown): boolean {
  return err instanceof MvccError && (err.message === 'etcdserver: not leader' || err.message === 'not a primary lessor');
}

export class InProcessConnection implements Connection {
  private current: number;
  private readonly channels = new Set<InProcessWatchChannel>();
  private closed = false;
  /** The token of `user` (with user and password), once authenticated. */
  private token: string | null = null;
  private authenticating: Promise<string> | null = null;

  constructor(
    private readonly members: readonly KvMember[],
    private readonly opts: InProcessConnectionOptions,
  ) {
    if (members.length === 0) throw new Error('InProcessConnection: no members given');
    if ((opts.user === undefined) !== (opts.password === undefined)) throw new TypeError('InProcessConnection: give both user and password, or neither');
    this.current = opts.preferred ?? 0;
    if (!(this.current >= 0 && this.current < members.length)) {
      throw new Error(`InProcessConnection: preferred ${this.current} is not in [0, ${members.length})`);
    }
  }

  /** The member requests go to now (the first running one from the preferred member on). */
  get member(): KvMember {
    return this.pick();
  }

  range(request: RangeRequest): Promise<RangeResponse> {
    return this.call(async (m) => (await this.authorize(m, (c) => checkRangeRequest(c, request)), m.range(request)), true);
  }

  put(request: PutRequest): Promise<PutResponse> {
    return this.call(async (m) => (await this.authorize(m, (c) => checkPut(c, request)), m.put(request)), false);
  }

  deleteRange(request: DeleteRangeRequest): Promise<DeleteRangeResponse> {
    return this.call(async (m) => (await this.authorize(m, (c) => checkDeleteRange(c, request)), m.deleteRange(request)), false);
  }

  txn(request: TxnRequest): Promise<TxnResponse> {
    return this.call(async (m) => (await this.authorize(m, (c) => checkTxn(c, request)), m.txn(request)), false);
  }

  compact(request: CompactionRequest): Promise<CompactionResponse> {
    return this.call((m) => m.compact(request), false);
  }

  leaseGrant(request: LeaseGrantRequest): Promise<LeaseGrantResponse> {
    return this.call((m) => m.leaseGrant(request), false);
  }

  leaseRevoke(request: LeaseRevokeRequest): Promise<LeaseRevokeResponse> {
    return this.call(async (m) => (await this.authorize(m, (c) => checkLeaseKeys(c, request.ID)), m.leaseRevoke(request.ID)), false);
  }

  leaseTimeToLive(request: LeaseTimeToLiveRequest): Promise<LeaseTimeToLiveResponse> {
    return this.call((m) => m.leaseTimeToLive(request.ID, request.keys ?? false), true);
  }

  leaseLeases(): Promise<LeaseLeasesResponse> {
    return this.call((m) => m.leaseLeases(), true);
  }

  async leaseKeepAlive(request: LeaseKeepAliveRequest): Promise<LeaseKeepAliveResponse> {
    this.assertOpen();
    for (let attempt = 1; ; attempt++) {
      const leader = this.leader();
      if (leader === undefined) throw new EtcdNoLeaderError();
      try {
        const res = await leader.leaseKeepAlive(request.ID);
        return { header: { revision: leader.currentRevision }, ID: res.ID, TTL: res.TTL };
      } catch (err) {
        // etcd answers a keep-alive for an unknown or expired lease with TTL 0, not an error.
        if (toEtcdError(err) instanceof EtcdLeaseNotFoundError) {
          return { header: { revision: leader.currentRevision }, ID: request.ID, TTL: 0 };
        }
        if (isNotLeader(err) && attempt < KEEPALIVE_ATTEMPTS_MAX) continue;
        throw toEtcdError(err);
      }
    }
  }

  watch(handlers: WatchStreamHandlers): WatchChannel {
    const channel = new InProcessWatchChannel(handlers, this.opts.clock, this.opts.watchHealthCheckMs ?? WATCH_HEALTH_CHECK_MS_DEFAULT, () =>
      this.channels.delete(channel),
    );
    this.channels.add(channel);
    try {
      this.assertOpen();
      const member = this.pick();
      if (this.opts.user === undefined) channel.open(member, null);
      else {
        // Each create request is checked for the user, resolved once for the stream (as etcd does).
        this.userIfAuthEnabled(member).then(
          (user) => channel.open(member, user === null ? null : (create) => checkRead(this.checkContext(member, user), create.key, create.rangeEnd)),
          (err: unknown) => channel.fail(toEtcdError(err) as EtcdError),
        );
      }
    } catch (err) {
      channel.fail(toEtcdError(err) as EtcdError);
    }
    return channel;
  }

  /** Runs `check` (etcd's, src/server/auth-check.ts) for this connection's user on `member`, when auth is enabled. */
  private async authorize(member: KvMember, check: (c: AuthCheckContext) => void): Promise<void> {
    if (this.opts.user === undefined) return;
    const user = await this.userIfAuthEnabled(member);
    if (user !== null) check(this.checkContext(member, user));
  }

  /**
   * This connection's user on `member`, or null while the cluster has auth disabled. A member
   * that has not applied `auth enable` yet (a tab catching up) would let calls through
   * unchecked, so it first catches up with the leader (ReadIndex) when it sees auth disabled.
   */
  private async userIfAuthEnabled(member: KvMember): Promise<string | null> {
    if (!member.auth.enabled) await member.readBarrier();
    return member.auth.enabled ? this.userOn(member) : null;
  }

  private checkContext(member: KvMember, user: string): AuthCheckContext {
    return { auth: member.auth, user, leaseKeys: (id) => member.leaseKeys(id) };
  }

  /** The user `member` reads in this connection's token, authenticating first (or again, once, when the token went stale). */
  private async userOn(member: KvMember): Promise<string> {
    for (let attempt = 1; ; attempt++) {
      this.authenticating ??= this.token !== null ? Promise.resolve(this.token) : member.authenticate(this.opts.user!, this.opts.password!);
      const pending = this.authenticating;
      let token: string;
      try {
        token = await pending;
      } finally {
        if (this.authenticating === pending) this.authenticating = null;
      }
      this.token = token;
      try {
        return await member.userOfToken(token);
      } catch (err) {
        if (attempt > 1 || !isStaleToken(err)) throw err;
        if (this.token === token) this.token = null;
      }
    }
  }

  close(): void {
    this.closed = true;
    for (const channel of [...this.channels]) channel.close();
  }

  /**
   * Runs `rpc` on the current member. A member found stopped before the call is skipped; one
   * that stops during the call is skipped and the call retried only when `idempotent` (a write
   * interrupted by a stop may still commit, so retrying it could apply it twice).
   */
  private async call<T>(rpc: (member: KvMember) => Promise<T>, idempotent: boolean): Promise<T> {
    this.assertOpen();
    for (let attempt = 1; ; attempt++) {
      const member = this.pick();
      try {
        return await rpc(member);
      } catch (err) {
        const stopped = err instanceof MemberError && err.code === 'stopped';
        if (stopped && idempotent && attempt < this.members.length) continue;
        throw toEtcdError(err);
      }
    }
  }

  private pick(): KvMember {
    for (let i = 0; i < this.members.length; i++) {
      const index = (this.current + i) % this.members.length;
      if (!this.members[index].isStopped()) {
        this.current = index;
        return this.members[index];
      }
    }
    throw new EtcdUnavailableError('client: no member is running');
  }

  /** The running member that is leader in the highest term (a deposed leader may not know yet). */
  private leader(): KvMember | undefined {
    let best: KvMember | undefined;
    for (const m of this.members) {
      if (m.isStopped() || !m.isLeader()) continue;
      if (best === undefined || m.status().term > best.status().term) best = m;
    }
    return best;
  }

  private assertOpen(): void {
    if (this.closed) throw new EtcdUnavailableError('client: connection closed');
  }
}

/**
 * One watch stream on one member's watch hub. Responses are queued and handed over in a later
 * microtask, so a handler may send requests without re-entering the hub.
 */
class InProcessWatchChannel implements WatchChannel {
  private stream: WatchStream | null = null;
  private member: KvMember | null = null;
  /** Requests sent before the stream opened (while the connection's user is resolved), in order. */
  private readonly early: WatchRequest[] = [];
  /** Throws when the connection's user may not watch this range; null when nothing is checked. */
  private checkCreate: ((create: WatchCreateRequest) => void) | null = null;
  private readonly queue: WatchResponse[] = [];
  private flushScheduled = false;
  private stopHealthCheck: (() => void) | null = null;
  private done = false;
  /** Closed by the client: nothing more reaches the handlers. */
  private silenced = false;

  constructor(
    private readonly handlers: WatchStreamHandlers,
    private readonly clock: Clock,
    private readonly healthCheckMs: number,
    private readonly onDone: () => void,
  ) {}

  open(member: KvMember, checkCreate: ((create: WatchCreateRequest) => void) | null): void {
    if (this.done) return;
    this.member = member;
    this.checkCreate = checkCreate;
    this.stream = member.openWatchStream({
      send: (response) => {
        if (this.done) return true;
        // A full queue refuses events; the hub keeps the watcher's position and resends them.
        if (response.events.length > 0 && this.queue.length >= WATCH_RESPONSES_QUEUED_MAX) return false;
        this.queue.push(response);
        this.scheduleFlush();
        return true;
      },
    });
    this.stopHealthCheck = this.clock.every(this.healthCheckMs, () => {
      if (member.isStopped()) this.fail(new EtcdServerStoppedError());
    });
    for (const request of this.early.splice(0)) this.send(request);
  }

  send(request: WatchRequest): void {
    if (this.done) return;
    if (this.stream === null) {
      this.early.push(request);
      return;
    }
    if (this.member?.isStopped()) {
      this.fail(new EtcdServerStoppedError());
      return;
    }
    if ('createRequest' in request && !this.mayCreate(request.createRequest)) return;
    if ('createRequest' in request) this.stream.watch(request.createRequest);
    else if ('cancelRequest' in request) this.stream.cancel(request.cancelRequest.watchId);
    else this.stream.requestProgress();
  }

  close(): void {
    this.silenced = true;
    if (this.done) return;
    this.teardown();
  }

  /** Checks a create request; a refused one is answered created-and-canceled, as etcd answers it. */
  private mayCreate(create: WatchCreateRequest): boolean {
    try {
      this.checkCreate?.(create);
      return true;
    } catch (err) {
      this.queue.push({
        header: { revision: this.member!.currentRevision },
        watchId: create.watchId ?? 0,
        created: true,
        canceled: true,
        compactRevision: 0,
        cancelReason: (err as Error).message,
        events: [],
      });
      this.scheduleFlush();
      return false;
    }
  }

  /** Ends the stream and reports `error` once the queued responses are delivered. */
  fail(error: EtcdError): void {
    if (this.done) return;
    this.teardown();
    queueMicrotask(() => {
      this.flush();
      if (!this.silenced) this.handlers.onClosed(error);
    });
  }

  private teardown(): void {
    this.done = true;
    this.stopHealthCheck?.();
    this.stream?.close();
    this.onDone();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    queueMicrotask(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    while (this.queue.length > 0) {
      if (this.silenced) return;
      this.handlers.onResponse(this.queue.shift()!);
    }
  }
}
