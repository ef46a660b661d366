// A Connection to etcd v3 members over gRPC (Node, @grpc/grpc-js, meshkv's own protos): any
// etcd-compatible server, meshkv's adapters/etcd-api included.
//
// Endpoints are used one at a time, like etcd's client balancer: requests go to the current
// endpoint; when it cannot be reached the next one is tried. Reads (Range, LeaseTimeToLive,
// LeaseLeases) are also retried on the next endpoint when a call fails with UNAVAILABLE; writes
// are retried only when they surely never left this process (no connection could be made),
// since a write cut off in flight may still commit.

import * as grpc from '@grpc/grpc-js';
import { systemClock } from '../clock/system.ts';
import { Client } from '../../src/client/client.ts';
import type {
  Connection,
  LeaseKeepAliveRequest,
  LeaseKeepAliveResponse,
  LeaseTimeToLiveRequest,
  WatchChannel,
  WatchRequest,
  WatchStreamHandlers,
} from '../../src/client/connection.ts';
import { EtcdError, EtcdUnavailableError, errorFromStatus, StatusCode } from '../../src/client/errors.ts';
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
} from '../../src/mvcc/types.ts';
import * as wire from './client-wire.ts';
import type { Wire } from './client-wire.ts';
import { packageDefinition } from './proto.ts';

/** Deadline of one unary call (etcd's clients leave it to the caller; a hung member must not hang us). */
export const CALL_TIMEOUT_MS_DEFAULT = 10_000;
/** How long to wait for an endpoint to connect before trying the next one. */
export const CONNECT_TIMEOUT_MS_DEFAULT = 2_000;
/** Keep-alives waiting for an answer on the stream; the server cuts a stream off at the same bound. */
export const KEEPALIVES_PENDING_MAX = 1024;
/** Watch requests queued while the watch stream is still connecting. */
export const WATCH_REQUESTS_QUEUED_MAX = 1024;

export interface GrpcConnectionOptions {
  callTimeoutMs?: number;
  connectTimeoutMs?: number;
  /** Extra grpc-js channel options (they override the defaults below). */
  channelOptions?: grpc.ChannelOptions;
  /**
   * etcd auth: the connection authenticates as this user before its first call and sends the
   * simple token with every call, authenticating again when the member says it expired.
   */
  user?: string;
  password?: string;
}

/** etcd's clients accept responses of any size; reconnect quickly after a member restarts. */
const channelOptionsDefault: grpc.ChannelOptions = {
  'grpc.max_receive_message_length': -1,
  'grpc.max_send_message_length': -1,
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 1000,
};

interface MethodDefinition {
  path: string;
  requestSerialize: (value: Wire) => Buffer;
  responseDeserialize: (bytes: Buffer) => Wire;
}

function method(service: 'KV' | 'Watch' | 'Lease' | 'Auth', name: string): MethodDefinition {
  const def = (packageDefinition[`etcdserverpb.${service}`] as unknown as Record<string, MethodDefinition> | undefined)?.[name];
  if (def === undefined) throw new Error(`grpc-connection: etcdserverpb.${service}/${name} is not in the protos`);
  return def;
}

const methods = {
  range: method('KV', 'Range'),
  put: method('KV', 'Put'),
  deleteRange: method('KV', 'DeleteRange'),
  txn: method('KV', 'Txn'),
  compact: method('KV', 'Compact'),
  watch: method('Watch', 'Watch'),
  leaseGrant: method('Lease', 'LeaseGrant'),
  leaseRevoke: method('Lease', 'LeaseRevoke'),
  leaseKeepAlive: method('Lease', 'LeaseKeepAlive'),
  leaseTimeToLive: method('Lease', 'LeaseTimeToLive'),
  leaseLeases: method('Lease', 'LeaseLeases'),
  authenticate: method('Auth', 'Authenticate'),
};

/**
 * etcd's ErrGRPCInvalidAuthToken (the token expired or this member never saw it) and
 * ErrGRPCAuthOldRevision (a JWT issued before the last auth change): authenticate again.
 */
const staleTokenMessages = new Set(['etcdserver: invalid auth token', 'etcdserver: revision of auth store is old']);

/** "http://host:port" or "host:port" → grpc-js's "host:port". TLS is not supported yet. */
function target(endpoint: string): string {
  if (/^https:\/\//.test(endpoint)) throw new TypeError(`grpc-connection: ${endpoint}: TLS endpoints are not supported yet`);
  const t = endpoint.replace(/^http:\/\//, '').replace(/\/+$/, '');
  if (!/^[^/\s]+:\d+$/.test(t)) throw new TypeError(`grpc-connection: endpoint ${JSON.stringify(endpoint)} is not host:port`);
  return t;
}

/** One endpoint's channel. */
class Endpoint {
  readonly client: grpc.Client;

  constructor(
    readonly address: string,
    options: grpc.ChannelOptions,
    /** The call metadata: the auth token, when there is one. */
    private readonly metadata: () => grpc.Metadata,
    /** Told when the member refused the token, so that the next call authenticates again. */
    private readonly onInvalidToken: () => void,
  ) {
    this.client = new grpc.Client(address, grpc.credentials.createInsecure(), options);
  }

  /**
   * Resolves true once the channel is ready, false at `timeoutMs`. With `failFast`, also false
   * as soon as the channel is in backoff after a failed attempt, or an attempt fails.
   */
  connect(timeoutMs: number, failFast: boolean): Promise<boolean> {
    const channel = this.client.getChannel();
    const deadline = Date.now() + timeoutMs;
    return new Promise((resolve) => {
      const check = () => {
        const state = channel.getConnectivityState(true);
        if (state === grpc.connectivityState.READY) return resolve(true);
        if (state === grpc.connectivityState.SHUTDOWN) return resolve(false);
        if (failFast && state === grpc.connectivityState.TRANSIENT_FAILURE) return resolve(false);
        channel.watchConnectivityState(state, deadline, (err) => (err ? resolve(false) : check()));
      };
      check();
    });
  }

  /** A status from this endpoint as the typed error the client expects. */
  toError(err: unknown): Error {
    const e = err as Partial<grpc.ServiceError>;
    if (typeof e?.code !== 'number') return err as Error;
    const details = e.details ?? e.message ?? '';
    // A transport failure, not a member's answer: say where it happened.
    if (e.code === StatusCode.Unavailable && !details.startsWith('etcdserver:')) {
      return new EtcdUnavailableError(`client: ${this.address}: ${details}`);
    }
    if (staleTokenMessages.has(details)) this.onInvalidToken();
    return errorFromStatus(e.code, details);
  }

  unary(m: MethodDefinition, request: Wire, timeoutMs: number): Promise<Wire> {
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(
        m.path,
        m.requestSerialize,
        m.responseDeserialize,
        request,
        this.metadata(),
        { deadline: Date.now() + timeoutMs },
        (err, res) => (err ? reject(err) : resolve(res!)),
      );
    });
  }

  stream(m: MethodDefinition): grpc.ClientDuplexStream<Wire, Wire> {
    return this.client.makeBidiStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, this.metadata());
  }
}

export class GrpcConnection implements Connection {
  private readonly endpoints: Endpoint[];
  /** Index into `endpoints` of the endpoint requests go to. */
  private current = 0;
  private readonly callTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  private readonly channels = new Set<GrpcWatchChannel>();
  private keepAlives: Promise<KeepAliveStream> | null = null;
  private closed = false;
  private readonly credentials: { name: string; password: string } | null;
  /** The simple token calls carry; null before Authenticate and after the member refused it. */
  private token: string | null = null;
  private authenticating: Promise<void> | null = null;

  constructor(endpoints: readonly string[], opts: GrpcConnectionOptions = {}) {
    if (endpoints.length === 0) throw new Error('GrpcConnection: no endpoints given');
    if ((opts.user === undefined) !== (opts.password === undefined)) throw new TypeError('GrpcConnection: give both user and password, or neither');
    this.credentials = opts.user === undefined ? null : { name: opts.user, password: opts.password ?? '' };
    const options = { ...channelOptionsDefault, ...opts.channelOptions };
    const metadata = () => {
      const md = new grpc.Metadata();
      if (this.token !== null) md.set('token', this.token);
      return md;
    };
    this.endpoints = endpoints.map((e) => new Endpoint(target(e), options, metadata, () => (this.token = null)));
    this.callTimeoutMs = opts.callTimeoutMs ?? CALL_TIMEOUT_MS_DEFAULT;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? CONNECT_TIMEOUT_MS_DEFAULT;
  }

  /** The endpoint (host:port) requests go to now. */
  get endpoint(): string {
    return this.endpoints[this.current].address;
  }

  range(request: RangeRequest): Promise<RangeResponse> {
    return this.call(methods.range, wire.rangeRequest(request), wire.rangeResponse, true);
  }

  put(request: PutRequest): Promise<PutResponse> {
    return this.call(methods.put, wire.putRequest(request), wire.putResponse, false);
  }

  deleteRange(request: DeleteRangeRequest): Promise<DeleteRangeResponse> {
    return this.call(methods.deleteRange, wire.deleteRangeRequest(request), wire.deleteRangeResponse, false);
  }

  txn(request: TxnRequest): Promise<TxnResponse> {
    return this.call(methods.txn, wire.txnRequest(request), wire.txnResponse, false);
  }

  compact(request: CompactionRequest): Promise<CompactionResponse> {
    return this.call(methods.compact, wire.compactionRequest(request), wire.compactionResponse, false);
  }

  leaseGrant(request: LeaseGrantRequest): Promise<LeaseGrantResponse> {
    return this.call(methods.leaseGrant, wire.leaseGrantRequest(request), wire.leaseGrantResponse, false);
  }

  leaseRevoke(request: LeaseRevokeRequest): Promise<LeaseRevokeResponse> {
    return this.call(methods.leaseRevoke, { ID: request.ID.toString() }, wire.leaseRevokeResponse, false);
  }

  leaseTimeToLive(request: LeaseTimeToLiveRequest): Promise<LeaseTimeToLiveResponse> {
    return this.call(methods.leaseTimeToLive, { ID: request.ID.toString(), keys: request.keys ?? false }, wire.leaseTimeToLiveResponse, true);
  }

  leaseLeases(): Promise<LeaseLeasesResponse> {
    return this.call(methods.leaseLeases, {}, wire.leaseLeasesResponse, true);
  }

  async leaseKeepAlive(request: LeaseKeepAliveRequest): Promise<LeaseKeepAliveResponse> {
    this.assertOpen();
    return (await this.keepAliveStream()).keepAlive(request.ID);
  }

  watch(handlers: WatchStreamHandlers): WatchChannel {
    const channel = new GrpcWatchChannel(handlers, () => this.channels.delete(channel));
    this.channels.add(channel);
    if (this.closed) channel.fail(new EtcdUnavailableError('client: connection closed'));
    else this.connected().then((endpoint) => this.authenticated(endpoint).then(() => channel.open(endpoint)), (err: EtcdError) => channel.fail(err)).catch((err: EtcdError) => channel.fail(err));
    return channel;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const channel of [...this.channels]) channel.close();
    void this.keepAlives?.then(
      (s) => s.fail(new EtcdUnavailableError('client: connection closed')),
      () => {},
    );
    for (const e of this.endpoints) e.client.close();
  }

  /**
   * One unary call on the current endpoint. A call that fails UNAVAILABLE is retried on the next
   * endpoint only when `idempotent`; an endpoint that cannot be reached is skipped for any call.
   */
  private async call<T>(m: MethodDefinition, request: Wire, decode: (w: Wire) => T, idempotent: boolean): Promise<T> {
    let reauthenticated = false;
    for (let attempt = 1; ; attempt++) {
      const endpoint = await this.connected();
      await this.authenticated(endpoint);
      try {
        return decode(await endpoint.unary(m, request, this.callTimeoutMs));
      } catch (err) {
        const e = endpoint.toError(err);
        this.assertOpen();
        // The token expired (or the member restarted and forgot it): once more with a fresh one.
        // Safe for writes too: a call refused for its token was never proposed.
        if (this.credentials !== null && staleTokenMessages.has(e.message) && !reauthenticated) {
          reauthenticated = true;
          attempt--;
          continue;
        }
        const unavailable = e instanceof EtcdError && e.code === StatusCode.Unavailable;
        if (unavailable && idempotent && attempt < this.endpoints.length) {
          this.moveOn(endpoint);
          continue;
        }
        throw e;
      }
    }
  }

  /**
   * The first endpoint, from the current one on, that is connected or connects at once; failing
   * that, the first to connect within the connect timeout (endpoints in backoff included: a
   * restarted member is found as soon as grpc-js reconnects).
   */
  private async connected(): Promise<Endpoint> {
    this.assertOpen();
    const n = this.endpoints.length;
    for (let i = 0; i < n; i++) {
      const index = (this.current + i) % n;
      if (await this.endpoints[index].connect(this.connectTimeoutMs, true)) return this.use(index);
    }
    const first = await new Promise<number>((resolve) => {
      let failed = 0;
      this.endpoints.forEach((e, index) =>
        e.connect(this.connectTimeoutMs, false).then((ok) => (ok ? resolve(index) : ++failed === n && resolve(-1))),
      );
    });
    if (first >= 0) return this.use(first);
    this.assertOpen();
    throw new EtcdUnavailableError(`client: no endpoint is reachable (${this.endpoints.map((e) => e.address).join(', ')})`);
  }

  /** Authenticates (once for every call waiting) when the connection has credentials and no token. */
  private authenticated(endpoint: Endpoint): Promise<void> {
    if (this.credentials === null || this.token !== null) return Promise.resolve();
    this.authenticating ??= endpoint
      .unary(methods.authenticate, this.credentials, this.callTimeoutMs)
      .then(
        (r) => {
          this.token = String(r.token);
        },
        (err: unknown) => {
          throw endpoint.toError(err);
        },
      )
      .finally(() => (this.authenticating = null));
    return this.authenticating;
  }

  private use(index: number): Endpoint {
    this.assertOpen();
    this.current = index;
    return this.endpoints[index];
  }

  /** The open keep-alive stream, or a new one on the current endpoint. */
  private keepAliveStream(): Promise<KeepAliveStream> {
    if (this.keepAlives !== null) return this.keepAlives;
    const forget = () => {
      if (this.keepAlives === opening) this.keepAlives = null;
    };
    const opening = this.connected().then(async (endpoint) => {
      await this.authenticated(endpoint);
      return new KeepAliveStream(endpoint, this.callTimeoutMs, forget);
    });
    opening.catch(forget);
    this.keepAlives = opening;
    return opening;
  }

  private moveOn(from: Endpoint): void {
    if (this.endpoints[this.current] === from) this.current = (this.current + 1) % this.endpoints.length;
  }

  private assertOpen(): void {
    if (this.closed) throw new EtcdUnavailableError('client: connection closed');
  }
}

interface KeepAliveWaiter {
  resolve(res: LeaseKeepAliveResponse): void;
  reject(err: Error): void;
}

/**
 * etcd's LeaseKeepAlive stream, shared by every lease of a connection. The server answers in
 * request order, so each answer goes to the oldest waiter for its lease id. Any failure (an
 * error, the server ending the stream, an answer overdue) ends the stream and fails every
 * waiter; the next keep-alive opens a new one.
 */
class KeepAliveStream {
  private readonly call: grpc.ClientDuplexStream<Wire, Wire>;
  /** Waiters by lease id (decimal), oldest first. Invariant: no empty arrays. */
  private readonly waiters = new Map<string, KeepAliveWaiter[]>();
  private pending = 0;
  private done = false;

  constructor(
    private readonly endpoint: Endpoint,
    private readonly timeoutMs: number,
    private readonly onDone: () => void,
  ) {
    this.call = endpoint.stream(methods.leaseKeepAlive);
    this.call.on('data', (w: Wire) => this.answer(wire.leaseKeepAliveResponse(w)));
    this.call.on('error', (err) => this.fail(endpoint.toError(err)));
    this.call.on('end', () => this.fail(new EtcdUnavailableError(`client: ${endpoint.address}: lease keep-alive stream ended`)));
  }

  keepAlive(id: bigint): Promise<LeaseKeepAliveResponse> {
    if (this.done) return Promise.reject(new EtcdUnavailableError(`client: ${this.endpoint.address}: lease keep-alive stream ended`));
    if (this.pending >= KEEPALIVES_PENDING_MAX) {
      return Promise.reject(new EtcdError(StatusCode.ResourceExhausted, `client: more than ${KEEPALIVES_PENDING_MAX} keep-alives in flight`));
    }
    return new Promise((resolve, reject) => {
      const key = id.toString();
      const timer = setTimeout(() => {
        this.fail(new EtcdError(StatusCode.DeadlineExceeded, `client: ${this.endpoint.address}: no keep-alive answer within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      const settle = () => {
        clearTimeout(timer);
        this.pending--;
      };
      const queue = this.waiters.get(key) ?? [];
      queue.push({
        resolve: (r) => (settle(), resolve(r)),
        reject: (e) => (settle(), reject(e)),
      });
      this.waiters.set(key, queue);
      this.pending++;
      this.call.write({ ID: key });
    });
  }

  fail(error: Error): void {
    if (this.done) return;
    this.done = true;
    this.onDone();
    this.call.cancel();
    const all = [...this.waiters.values()].flat();
    this.waiters.clear();
    for (const w of all) w.reject(error);
  }

  private answer(res: LeaseKeepAliveResponse): void {
    const key = res.ID.toString();
    const queue = this.waiters.get(key);
    if (queue === undefined) return; // its waiter timed out with an earlier stream
    const waiter = queue.shift()!;
    if (queue.length === 0) this.waiters.delete(key);
    waiter.resolve(res);
  }
}

/** One Watch stream. Requests sent while it connects are queued and sent once it is open. */
class GrpcWatchChannel implements WatchChannel {
  private call: grpc.ClientDuplexStream<Wire, Wire> | null = null;
  private queued: Wire[] = [];
  private done = false;
  /** Closed by the client: nothing more reaches the handlers. */
  private silenced = false;

  constructor(
    private readonly handlers: WatchStreamHandlers,
    private readonly onDone: () => void,
  ) {}

  open(endpoint: Endpoint): void {
    if (this.done) return;
    const call = endpoint.stream(methods.watch);
    this.call = call;
    call.on('data', (w: Wire) => {
      if (!this.done) this.handlers.onResponse(wire.watchResponse(w));
    });
    call.on('error', (err) => this.fail(endpoint.toError(err) as EtcdError));
    call.on('end', () => this.fail(new EtcdUnavailableError(`client: ${endpoint.address}: watch stream ended`)));
    for (const w of this.queued) call.write(w);
    this.queued = [];
  }

  send(request: WatchRequest): void {
    if (this.done) return;
    const w = wire.watchRequest(request);
    if (this.call !== null) {
      this.call.write(w);
      return;
    }
    if (this.queued.length >= WATCH_REQUESTS_QUEUED_MAX) {
      this.fail(new EtcdError(StatusCode.ResourceExhausted, `client: more than ${WATCH_REQUESTS_QUEUED_MAX} watch requests queued while connecting`));
      return;
    }
    this.queued.push(w);
  }

  close(): void {
    this.silenced = true;
    this.teardown();
  }

  /** Ends the stream and reports `error` (asynchronously, so callers have one failure path). */
  fail(error: EtcdError): void {
    if (this.done) return;
    this.teardown();
    queueMicrotask(() => {
      if (!this.silenced) this.handlers.onClosed(error);
    });
  }

  private teardown(): void {
    if (this.done) return;
    this.done = true;
    this.call?.cancel();
    this.queued = [];
    this.onDone();
  }
}

export interface ConnectGrpcOptions extends GrpcConnectionOptions {
  /** Wait between attempts to re-open a broken watch stream (the Client's option). */
  watchRetryMs?: number;
}

/** A Client on etcd v3 endpoints over gRPC, timed by the system clock. */
export function connectGrpc(endpoints: string[], opts: ConnectGrpcOptions = {}): Client {
  const { watchRetryMs, ...connectionOptions } = opts;
  return new Client({ connection: new GrpcConnection(endpoints, connectionOptions), clock: systemClock, watchRetryMs });
}
