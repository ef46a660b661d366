// etcd's v3 gRPC services (KV, Watch, Lease, Cluster, Maintenance, Auth) over the shared EtcdApi,
// served by the lean gRPC transport on node:http2 (grpc-h2.ts). The server is not bound to a
// port here: listener.ts hands it connections.

import { EtcdApiError, Status, type EtcdApi } from './api.ts';
import { authorizeDecoded, userWithoutLookup, type DecodedRequests, type Rpc } from './auth-gate.ts';
import { loadProto } from './proto-load.ts';
import { forwardedMetadataKey } from './leader-client.ts';
import { DEFAULT_LIMITS } from '../../src/mvcc/validate.ts';
import { MvccError } from '../../src/mvcc/errors.ts';
import * as codec from './proto-codec.ts';
import { framedMessage, grpcPrefixBytes, GrpcH2Server, unmarshalError, type Call, type Method } from './grpc-h2.ts';
import type { Event, WatchResponse } from '../../src/mvcc/types.ts';

/**
 * etcd lets gRPC receive this much above the request limit, so its own error wins below it;
 * larger messages are refused with RESOURCE_EXHAUSTED, as etcd's gRPC server does.
 */
export const grpcOverheadBytes = 512 * 1024;

type Wire = Record<string, any>;

/** A method of proto-loader's definition: protobufjs reads and writes its messages. */
interface LoadedMethod {
  requestDeserialize(bytes: Buffer): Wire;
  responseSerialize(value: Wire): Buffer;
}

/** `service`.`method` of etcd's protos, loading them on the first call (proto-load.ts). */
async function loaded(service: string, method: string): Promise<LoadedMethod> {
  const { packageDefinition } = await loadProto();
  const def = (packageDefinition[`etcdserverpb.${service}`] as unknown as Record<string, LoadedMethod> | undefined)?.[method];
  if (def === undefined) throw new Error(`grpc-server: no method ${service}.${method} in the protos`);
  return def;
}

/** A request read by protobufjs; bytes that are not one fail the call as grpc-h2.ts's own decoders do. */
function deserialize(def: LoadedMethod, bytes: Buffer): Wire {
  try {
    return def.requestDeserialize(bytes);
  } catch (err) {
    throw unmarshalError(err);
  }
}

/** The simple token etcd's clients send: metadata "token" (or "authorization", as etcd also reads). */
function tokenOf(call: Call): string | undefined {
  return call.header('token') ?? call.header('authorization');
}

/** A call a follower forwarded to this member as the leader: it is answered here or fails. */
function isForwarded(call: Call): boolean {
  return call.header(forwardedMetadataKey) === '1';
}

/**
 * A request proto-codec.ts decoded but etcd refuses (a txn with an empty RequestOp): the
 * refusal is answered by the handler, after the token check, as etcd's status and message; a
 * decoder's own error would leave as INTERNAL.
 */
class Refused {
  constructor(readonly error: MvccError) {}
}

/** `decode` from proto-codec.ts, with etcd's refusals kept for the handler (see Refused). */
function refusing<T>(decode: (bytes: Buffer) => T): (bytes: Buffer) => T | Refused {
  return (bytes) => {
    try {
      return decode(bytes);
    } catch (err) {
      if (err instanceof MvccError) return new Refused(err);
      throw err;
    }
  };
}

const asBytes = (b: Buffer): Buffer => b;

/**
 * A unary RPC on protobufjs's wire objects: the auth gate first (auth-gate.ts), then the service.
 * The call's bytes reach the handler undecoded, so that protobufjs loads only when such a call comes.
 */
function unary(api: EtcdApi, service: string, rpc: Rpc, fn: (w: Wire, call: Call) => Promise<Wire>): Method {
  return {
    kind: 'unary',
    decode: asBytes,
    encode: asBytes,
    handle: async (bytes: Buffer, call) => {
      try {
        const def = await loaded(service, rpc);
        const w = deserialize(def, bytes);
        const user = await api.userOf(tokenOf(call));
        api.authorize(rpc, w, user);
        call.reply(def.responseSerialize(await fn(w, call)));
      } catch (err) {
        call.fail(err);
      }
    },
  };
}

/**
 * A unary KV RPC read with the hand-written codec; `run` answers, `encode` writes its answer
 * under a header at the answer's revision (proto-codec.ts): protobufjs and its snake_case
 * objects stay off the hot path. `run` is the member's own call, not an async function of its
 * own: one async frame less per waiting call.
 */
function decodedUnary<R extends keyof DecodedRequests, Res extends { header: { revision: number } }>(
  api: EtcdApi,
  rpc: R,
  decode: (bytes: Buffer) => DecodedRequests[R],
  run: (req: DecodedRequests[R]) => Promise<Res>,
  encode: (header: codec.HeaderWire, res: Res) => Buffer,
): Method {
  return {
    kind: 'unary',
    decode: refusing(decode),
    encode: asBytes,
    handle: (req: DecodedRequests[R] | Refused, call) => {
      const token = tokenOf(call);
      // No token to look up (auth disabled, or none sent): straight to the member, and what
      // waits for its answer is one reaction, not an async frame.
      const user = userWithoutLookup(api.kv, token);
      if (user !== undefined) return answer(user);
      return api.userOf(token).then(answer, (err: unknown) => call.fail(err));
      function answer(user: string): void {
        try {
          if (req instanceof Refused) throw req.error;
          authorizeDecoded(api.kv, rpc, req, user);
          run(req).then(
            (res) => call.reply(encode(api.header(res.header.revision), res)),
            (err: unknown) => call.fail(err),
          );
        } catch (err) {
          call.fail(err);
        }
      }
    },
  };
}

/** A streaming RPC's handler, run once the call's token is resolved to its user (the auth gate's first step). */
function withUser(api: EtcdApi, handler: (call: Call, user: string) => void): (call: Call) => void {
  return (call) =>
    void api.userOf(tokenOf(call)).then(
      // A call the client gave up on meanwhile has nothing left to serve.
      (user) => (call.gone ? undefined : handler(call, user)),
      (err: unknown) => call.fail(err),
    );
}

/**
 * etcd's clients mark streams with the "hasleader" metadata when they would rather fail than
 * wait on a member without a leader: such a stream is refused, or ended once the leader is lost,
 * with "etcdserver: no leader" (etcd's stream interceptor and leader monitor).
 */
function requireLeader(api: EtcdApi, handler: (call: Call) => void): (call: Call) => void {
  return (call) => {
    if (call.header('hasleader') !== 'true') return handler(call);
    const noLeader = () => call.fail(new EtcdApiError(Status.Unavailable, 'etcdserver: no leader'));
    if (api.kv.status().lead === 0) return noLeader();
    const unsubscribe = api.kv.onChange((e) => {
      if (e.leader !== 0) return;
      unsubscribe();
      noLeader();
    });
    call.onClose(unsubscribe);
    handler(call);
  };
}

/**
 * Event responses in gRPC framing, each encoded once for every watcher that gets the same one:
 * the watch hub hands all watchers of a revision the same one-event list, and clients number
 * each stream's watchers from 0, so 100 streams watching a prefix cost one encoding per event,
 * not 100. Entries live as long as their event list (a WeakMap).
 */
class SharedWatchMessages {
  private readonly byEvents = new WeakMap<readonly Event[], { header: codec.HeaderWire; byWatchId: Map<number, Buffer> }>();

  framed(header: codec.HeaderWire, r: WatchResponse): Buffer {
    let entry = this.byEvents.get(r.events);
    if (entry === undefined || !sameHeader(entry.header, header)) {
      entry = { header, byWatchId: new Map() };
      this.byEvents.set(r.events, entry);
    }
    let framed = entry.byWatchId.get(r.watchId);
    if (framed === undefined) {
      framed = framedMessage(codec.encodeWatchResponse(header, r, grpcPrefixBytes));
      entry.byWatchId.set(r.watchId, framed);
    }
    return framed;
  }
}

function sameHeader(a: codec.HeaderWire, b: codec.HeaderWire): boolean {
  return a.revision === b.revision && a.raft_term === b.raft_term && a.member_id === b.member_id && a.cluster_id === b.cluster_id;
}

/** An event response: its bytes depend only on the header, the watch id and the events. */
function isEventResponse(r: WatchResponse): boolean {
  return r.events.length > 0 && !r.created && !r.canceled && r.compactRevision === 0 && r.cancelReason === '';
}

function watch(api: EtcdApi): (call: Call) => void {
  const shared = new SharedWatchMessages();
  return withUser(api, (call, user) => {
    let caller;
    try {
      caller = api.authorize('Watch', {}, user);
    } catch (err) {
      return call.fail(err);
    }
    const session = api.openWatch((r) => {
      if (call.gone) return false;
      // Flow control: event responses wait (and are re-read from history) while the client's
      // buffer is full; control responses always go out.
      if (r.events.length > 0 && call.needsDrain) return false;
      const header = api.header(r.header.revision);
      if (isEventResponse(r)) call.writeFramed(shared.framed(header, r));
      else call.write(codec.encodeWatchResponse(header, r));
      return true;
    }, caller);
    call.onClose(() => session.close());
    call.read(
      (req: codec.WatchRequest) => {
        try {
          session.handle(req);
        } catch (err) {
          session.close();
          call.fail(err);
        }
      },
      () => {
        session.close();
        call.end();
      },
    );
  });
}

/** Keep-alives a stream may have in flight; a client that floods past it is cut off. */
export const keepAlivesPendingMax = 1024;

function leaseKeepAlive(api: EtcdApi): (call: Call) => void {
  return withUser(api, (call, user) => {
    try {
      api.authorize('LeaseKeepAlive', {}, user);
    } catch (err) {
      return call.fail(err);
    }
    const forwarded = isForwarded(call);
    // Answers go out in request order.
    let chain = Promise.resolve();
    let pending = 0;
    call.read(
      (id: bigint) => {
        if (++pending > keepAlivesPendingMax) {
          call.fail(new EtcdApiError(Status.ResourceExhausted, `meshkv: more than ${keepAlivesPendingMax} keep-alives in flight on one stream`));
          return;
        }
        chain = chain.then(async () => {
          pending--;
          if (call.gone) return;
          try {
            const TTL = await api.lease.keepAlive(id, forwarded);
            call.write(codec.encodeLeaseKeepAliveResponse(api.header(), { ID: id, TTL }));
          } catch (err) {
            call.fail(err);
          }
        });
      },
      () => void chain.then(() => call.end()),
    );
  });
}

function snapshot(api: EtcdApi): (bytes: Buffer, call: Call) => void {
  return (bytes, call) =>
    void loaded('Maintenance', 'Snapshot').then(
      (def) => {
        const req = deserialize(def, bytes);
        withUser(api, async (call, user) => {
          try {
            api.authorize('Snapshot', req, user);
            for await (const chunk of api.maintenance.snapshot()) {
              if (call.gone) return;
              // Waits for the client to read (or to go away) before making the next chunk.
              if (!call.write(def.responseSerialize(chunk))) await call.drained();
            }
            call.end();
          } catch (err) {
            call.fail(err);
          }
        })(call);
      },
    ).catch((err: unknown) => call.fail(err));
}

/**
 * A gRPC server with etcd's services over `api`, not yet given any connection. It receives
 * messages up to `requestBytesMax` (etcd's --max-request-bytes) plus grpcOverheadBytes.
 */
export function createGrpcServer(api: EtcdApi, requestBytesMax = DEFAULT_LIMITS.requestBytesMax, ownHttp2 = false): GrpcH2Server {
  const server = new GrpcH2Server({ receiveBytesMax: requestBytesMax + grpcOverheadBytes, ownHttp2 });
  const kv = api.kv;
  const add = (service: string, methods: Record<string, Method>) => {
    for (const [name, m] of Object.entries(methods)) server.add(`/etcdserverpb.${service}/${name}`, m);
  };
  const u = (service: string) => (rpc: Rpc, fn: (w: Wire, call: Call) => Promise<Wire>) => unary(api, service, rpc, fn);

  add('KV', {
    Range: decodedUnary(api, 'Range', codec.decodeRangeRequest, (req) => kv.range(req), codec.encodeRangeResponse),
    Put: decodedUnary(api, 'Put', codec.decodePutRequest, (req) => kv.put(req), codec.encodePutResponse),
    DeleteRange: decodedUnary(api, 'DeleteRange', codec.decodeDeleteRangeRequest, (req) => kv.deleteRange(req), codec.encodeDeleteRangeResponse),
    Txn: decodedUnary(api, 'Txn', codec.decodeTxnRequest, (req) => kv.txn(req), codec.encodeTxnResponse),
    Compact: u('KV')('Compact', (w) => api.kvService.compact(w)),
  });
  add('Watch', { Watch: { kind: 'bidi', decode: codec.decodeWatchRequest, encode: asBytes, handle: requireLeader(api, watch(api)) } });
  const lease = u('Lease');
  add('Lease', {
    LeaseGrant: {
      kind: 'unary',
      decode: codec.decodeLeaseGrantRequest,
      encode: asBytes,
      handle: async (req: { TTL: number; ID: bigint }, call: Call) => {
        try {
          const user = await api.userOf(tokenOf(call));
          api.authorize('LeaseGrant', {}, user);
          const r = await kv.leaseGrant(req);
          call.reply(codec.encodeLeaseGrantResponse(api.header(r.header.revision), r));
        } catch (err) {
          call.fail(err);
        }
      },
    },
    LeaseRevoke: lease('LeaseRevoke', (w) => api.lease.leaseRevoke(w)),
    LeaseKeepAlive: { kind: 'bidi', decode: codec.decodeLeaseKeepAliveRequest, encode: asBytes, handle: requireLeader(api, leaseKeepAlive(api)) },
    LeaseTimeToLive: lease('LeaseTimeToLive', (w) => api.lease.leaseTimeToLive(w)),
    LeaseLeases: lease('LeaseLeases', (w) => api.lease.leaseLeases(w)),
  });
  const cluster = u('Cluster');
  add('Cluster', {
    MemberAdd: cluster('MemberAdd', (w) => api.cluster.memberAdd(w)),
    MemberRemove: cluster('MemberRemove', (w) => api.cluster.memberRemove(w)),
    MemberUpdate: cluster('MemberUpdate', (w) => api.cluster.memberUpdate(w)),
    MemberList: cluster('MemberList', (w) => api.cluster.memberList(w)),
    MemberPromote: cluster('MemberPromote', (w, call) => api.cluster.memberPromote(w, isForwarded(call), tokenOf(call))),
  });
  const maintenance = u('Maintenance');
  add('Maintenance', {
    Alarm: maintenance('Alarm', (w) => api.maintenance.alarm(w)),
    Status: {
      kind: 'unary',
      decode: codec.decodeStatusRequest,
      encode: asBytes,
      handle: async (req: Record<string, never>, call: Call) => {
        try {
          api.authorize('Status', req, await api.userOf(tokenOf(call)));
          call.reply(codec.encodeStatusResponse(api.header(), api.maintenance.statusBody()));
        } catch (err) {
          call.fail(err);
        }
      },
    },
    Defragment: maintenance('Defragment', (w) => api.maintenance.defragment(w)),
    Hash: maintenance('Hash', (w) => api.maintenance.hash(w)),
    HashKV: maintenance('HashKV', (w) => api.maintenance.hashKV(w)),
    Snapshot: { kind: 'serverStream', decode: asBytes, encode: asBytes, handle: snapshot(api) },
    MoveLeader: maintenance('MoveLeader', (w) => api.maintenance.moveLeader(w)),
  });
  const auth = api.auth;
  const a = u('Auth');
  add('Auth', {
    AuthEnable: a('AuthEnable', (w) => auth.authEnable(w)),
    AuthDisable: a('AuthDisable', (w) => auth.authDisable(w)),
    Authenticate: a('Authenticate', (w) => auth.authenticate(w)),
    UserAdd: a('UserAdd', (w) => auth.userAdd(w)),
    UserGet: a('UserGet', (w) => auth.userGet(w)),
    UserList: a('UserList', (w) => auth.userList(w)),
    UserDelete: a('UserDelete', (w) => auth.userDelete(w)),
    UserChangePassword: a('UserChangePassword', (w) => auth.userChangePassword(w)),
    UserGrantRole: a('UserGrantRole', (w) => auth.userGrantRole(w)),
    UserRevokeRole: a('UserRevokeRole', (w) => auth.userRevokeRole(w)),
    RoleAdd: a('RoleAdd', (w) => auth.roleAdd(w)),
    RoleGet: a('RoleGet', (w) => auth.roleGet(w)),
    RoleList: a('RoleList', (w) => auth.roleList(w)),
    RoleDelete: a('RoleDelete', (w) => auth.roleDelete(w)),
    RoleGrantPermission: a('RoleGrantPermission', (w) => auth.roleGrantPermission(w)),
    RoleRevokePermission: a('RoleRevokePermission', (w) => auth.roleRevokePermission(w)),
  });
  return server;
}
