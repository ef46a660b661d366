// etcd's v3 gRPC services (KV, Watch, Lease, Cluster, Maintenance, Auth) on @grpc/grpc-js, over the
// shared EtcdApi. The server is not bound to a port here: listener.ts hands it connections.

import * as grpc from '@grpc/grpc-js';
import { EtcdApiError, Status, toApiError, type EtcdApi } from './api.ts';
import { authorizeDecoded, type DecodedRequests, type Rpc } from './auth-gate.ts';
import { packageDefinition } from './proto.ts';
import { forwardedMetadataKey } from './leader-client.ts';
import { DEFAULT_LIMITS } from '../../src/mvcc/validate.ts';
import { MvccError } from '../../src/mvcc/errors.ts';
import * as codec from './proto-codec.ts';

/**
 * etcd lets gRPC receive this much above the request limit, so its own error wins below it;
 * larger messages are refused by grpc-js with RESOURCE_EXHAUSTED, as etcd's gRPC server does.
 */
export const grpcOverheadBytes = 512 * 1024;

type Wire = Record<string, any>;

const proto = grpc.loadPackageDefinition(packageDefinition) as unknown as {
  etcdserverpb: Record<'KV' | 'Watch' | 'Lease' | 'Cluster' | 'Maintenance' | 'Auth', { service: grpc.ServiceDefinition }>;
};

function toServiceError(err: unknown): Partial<grpc.StatusObject> {
  const e = toApiError(err);
  return { code: e.code as grpc.status, details: e.message };
}

/** Ends a streaming call with etcd's status for `err`. */
function failStream(call: { emit(event: 'error', err: Error): boolean }, err: unknown): void {
  call.emit('error', Object.assign(new Error(toApiError(err).message), toServiceError(err)));
}

/** The simple token etcd's clients send: metadata "token" (or "authorization", as etcd also reads). */
function tokenOf(call: { metadata: grpc.Metadata }): string | undefined {
  const v = call.metadata.get('token')[0] ?? call.metadata.get('authorization')[0];
  return v === undefined ? undefined : String(v);
}

/** A unary RPC: the auth gate first (auth-gate.ts), then the service. */
function unary(api: EtcdApi, rpc: Rpc, fn: (w: Wire, call: grpc.ServerUnaryCall<Wire, Wire>) => Promise<Wire>): grpc.handleUnaryCall<Wire, Wire> {
  return (call, callback) => {
    const pending = api.userOf(tokenOf(call)).then((user) => {
      api.authorize(rpc, call.request, user);
      return fn(call.request, call);
    });
    pending.then(
      (r) => callback(null, r),
      (err) => callback(toServiceError(err)),
    );
  };
}

/**
 * A request proto-codec.ts decoded but etcd refuses (a txn with an empty RequestOp): the
 * refusal is answered by the handler, after the token check, as etcd's status and message; a
 * deserializer's own error would leave as INTERNAL.
 */
class Refused {
  constructor(readonly error: MvccError) {}
}

/**
 * `service` with the methods in `decoders` reading their requests with the hand-written codec
 * and sending responses their handlers already encoded (proto-codec.ts): protobufjs and its
 * snake_case objects stay off the hot path. Malformed bytes still fail in the deserializer.
 */
function withCodec(service: grpc.ServiceDefinition, decoders: Record<string, (bytes: Buffer) => unknown>): grpc.ServiceDefinition {
  const out: Record<string, grpc.MethodDefinition<unknown, unknown>> = { ...service };
  for (const [name, decode] of Object.entries(decoders)) {
    const def = service[name];
    if (def === undefined) throw new Error(`grpc-server: no method ${name} to give the codec`);
    out[name] = {
      ...def,
      requestDeserialize: (bytes: Buffer) => {
        try {
          return decode(bytes);
        } catch (err) {
          if (err instanceof MvccError) return new Refused(err);
          throw err;
        }
      },
      responseSerialize: (bytes) => bytes as Buffer,
    };
  }
  return out;
}

/** A unary KV RPC on a request the codec decoded; `run` answers with the encoded response. */
function decodedUnary<R extends keyof DecodedRequests>(api: EtcdApi, rpc: R, run: (req: DecodedRequests[R]) => Promise<Buffer>): grpc.handleUnaryCall<DecodedRequests[R] | Refused, Buffer> {
  return (call, callback) => {
    const req = call.request;
    api.userOf(tokenOf(call))
      .then((user) => {
        if (req instanceof Refused) throw req.error;
        authorizeDecoded(api.kv, rpc, req, user);
        return run(req);
      })
      .then(
        (r) => callback(null, r),
        (err) => callback(toServiceError(err)),
      );
  };
}

/** A streaming RPC's handler, run once the call's token is resolved to its user (the auth gate's first step). */
function withUser<C extends { metadata: grpc.Metadata; cancelled: boolean; emit(event: 'error', err: Error): boolean }>(api: EtcdApi, handler: (call: C, user: string) => void): (call: C) => void {
  return (call) =>
    void api.userOf(tokenOf(call)).then(
      // A call the client gave up on meanwhile would never see its 'cancelled' event again.
      (user) => (call.cancelled ? undefined : handler(call, user)),
      (err: unknown) => failStream(call, err),
    );
}

/**
 * etcd's clients mark streams with the "hasleader" metadata when they would rather fail than
 * wait on a member without a leader: such a stream is refused, or ended once the leader is lost,
 * with "etcdserver: no leader" (etcd's stream interceptor and leader monitor).
 */
function requireLeader<Req, Res>(api: EtcdApi, handler: grpc.handleBidiStreamingCall<Req, Res>): grpc.handleBidiStreamingCall<Req, Res> {
  return (call) => {
    if (call.metadata.get('hasleader')[0] !== 'true') return handler(call);
    const noLeader = () => failStream(call, new EtcdApiError(Status.Unavailable, 'etcdserver: no leader'));
    if (api.kv.status().lead === 0) return noLeader();
    const unsubscribe = api.kv.onChange((e) => {
      if (e.leader !== 0) return;
      unsubscribe();
      noLeader();
    });
    call.on('close', unsubscribe);
    call.on('error', unsubscribe);
    handler(call);
  };
}

function watch(api: EtcdApi): grpc.handleBidiStreamingCall<codec.WatchRequest, Buffer> {
  return withUser(api, (call: grpc.ServerDuplexStream<codec.WatchRequest, Buffer>, user) => {
    let caller;
    try {
      caller = api.authorize('Watch', {}, user);
    } catch (err) {
      return failStream(call, err);
    }
    const session = api.openWatch((r) => {
      if (call.destroyed || call.writableEnded) return false;
      // Flow control: event responses wait (and are re-read from history) while the client's
      // buffer is full; control responses always go out.
      if (r.events.length > 0 && call.writableNeedDrain) return false;
      call.write(codec.encodeWatchResponse(api.header(r.header.revision), r));
      return true;
    }, caller);
    call.on('data', (req: codec.WatchRequest) => {
      try {
        session.handle(req);
      } catch (err) {
        session.close();
        failStream(call, err);
      }
    });
    const end = () => session.close();
    call.on('end', () => {
      end();
      call.end();
    });
    call.on('cancelled', end);
    call.on('error', end);
    call.on('close', end);
  });
}

/** A call a follower forwarded to this member as the leader: it is answered here or fails. */
function isForwarded(call: { metadata: grpc.Metadata }): boolean {
  return call.metadata.get(forwardedMetadataKey)[0] === '1';
}

/** Keep-alives a stream may have in flight; a client that floods past it is cut off. */
export const keepAlivesPendingMax = 1024;

function leaseKeepAlive(api: EtcdApi): grpc.handleBidiStreamingCall<bigint, Buffer> {
  return withUser(api, (call: grpc.ServerDuplexStream<bigint, Buffer>, user) => {
    try {
      api.authorize('LeaseKeepAlive', {}, user);
    } catch (err) {
      return failStream(call, err);
    }
    const forwarded = isForwarded(call);
    // Answers go out in request order.
    let chain = Promise.resolve();
    let pending = 0;
    let failed = false;
    const fail = (err: unknown) => {
      failed = true;
      failStream(call, err);
    };
    call.on('data', (id: bigint) => {
      if (failed) return;
      if (++pending > keepAlivesPendingMax) {
        fail(new EtcdApiError(Status.ResourceExhausted, `meshkv: more than ${keepAlivesPendingMax} keep-alives in flight on one stream`));
        return;
      }
      chain = chain.then(async () => {
        pending--;
        if (failed || call.destroyed) return;
        try {
          const TTL = await api.lease.keepAlive(id, forwarded);
          call.write(codec.encodeLeaseKeepAliveResponse(api.header(), { ID: id, TTL }));
        } catch (err) {
          fail(err);
        }
      });
    });
    call.on('end', () => void chain.then(() => call.end()));
    call.on('error', () => {});
  });
}

function snapshot(api: EtcdApi): grpc.handleServerStreamingCall<Wire, Wire> {
  return withUser(api, async (call: grpc.ServerWritableStream<Wire, Wire>, user) => {
    try {
      api.authorize('Snapshot', call.request, user);
    } catch (err) {
      return failStream(call, err);
    }
    let gone = false;
    const onGone = () => (gone = true);
    call.once('cancelled', onGone);
    call.once('close', onGone);
    try {
      for await (const chunk of api.maintenance.snapshot()) {
        if (gone || call.destroyed) return;
        // Waits for the client to read (or to go away) before making the next chunk.
        if (!call.write(chunk)) await new Promise((r) => (call.once('drain', r), call.once('cancelled', r), call.once('close', r)));
      }
      call.end();
    } catch (err) {
      failStream(call, err);
    }
  });
}

/**
 * A grpc-js server with etcd's services over `api`, not yet bound to any port. It receives
 * messages up to `requestBytesMax` (etcd's --max-request-bytes) plus grpcOverheadBytes.
 */
export function createGrpcServer(api: EtcdApi, requestBytesMax = DEFAULT_LIMITS.requestBytesMax): grpc.Server {
  const server = new grpc.Server({
    'grpc.max_receive_message_length': requestBytesMax + grpcOverheadBytes,
    'grpc.max_send_message_length': 2 ** 31 - 1,
  });
  const services = proto.etcdserverpb;
  const u = (rpc: Rpc, fn: (w: Wire, call: grpc.ServerUnaryCall<Wire, Wire>) => Promise<Wire>) => unary(api, rpc, fn);
  const kv = api.kv;
  const kvService = withCodec(services.KV.service, {
    Range: codec.decodeRangeRequest,
    Put: codec.decodePutRequest,
    DeleteRange: codec.decodeDeleteRangeRequest,
    Txn: codec.decodeTxnRequest,
  });
  server.addService(kvService, {
    Range: decodedUnary(api, 'Range', async (req) => {
      const r = await kv.range(req);
      return codec.encodeRangeResponse(api.header(r.header.revision), r);
    }),
    Put: decodedUnary(api, 'Put', async (req) => {
      const r = await kv.put(req);
      return codec.encodePutResponse(api.header(r.header.revision), r);
    }),
    DeleteRange: decodedUnary(api, 'DeleteRange', async (req) => {
      const r = await kv.deleteRange(req);
      return codec.encodeDeleteRangeResponse(api.header(r.header.revision), r);
    }),
    Txn: decodedUnary(api, 'Txn', async (req) => {
      const r = await kv.txn(req);
      return codec.encodeTxnResponse(api.header(r.header.revision), r);
    }),
    Compact: u('Compact', (w) => api.kvService.compact(w)),
  });
  server.addService(withCodec(services.Watch.service, { Watch: codec.decodeWatchRequest }), { Watch: requireLeader(api, watch(api)) });
  const leaseService = withCodec(services.Lease.service, {
    LeaseGrant: codec.decodeLeaseGrantRequest,
    LeaseKeepAlive: codec.decodeLeaseKeepAliveRequest,
  });
  server.addService(leaseService, {
    LeaseGrant: (call: grpc.ServerUnaryCall<{ TTL: number; ID: bigint }, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      api.userOf(tokenOf(call))
        .then(async (user) => {
          api.authorize('LeaseGrant', {}, user);
          const r = await kv.leaseGrant(call.request);
          return codec.encodeLeaseGrantResponse(api.header(r.header.revision), r);
        })
        .then(
          (r) => callback(null, r),
          (err) => callback(toServiceError(err)),
        );
    },
    LeaseRevoke: u('LeaseRevoke', (w) => api.lease.leaseRevoke(w)),
    LeaseKeepAlive: requireLeader(api, leaseKeepAlive(api)),
    LeaseTimeToLive: u('LeaseTimeToLive', (w) => api.lease.leaseTimeToLive(w)),
    LeaseLeases: u('LeaseLeases', (w) => api.lease.leaseLeases(w)),
  });
  server.addService(services.Cluster.service, {
    MemberAdd: u('MemberAdd', (w) => api.cluster.memberAdd(w)),
    MemberRemove: u('MemberRemove', (w) => api.cluster.memberRemove(w)),
    MemberUpdate: u('MemberUpdate', (w) => api.cluster.memberUpdate(w)),
    MemberList: u('MemberList', (w) => api.cluster.memberList(w)),
    MemberPromote: u('MemberPromote', (w, call) => api.cluster.memberPromote(w, isForwarded(call), tokenOf(call))),
  });
  server.addService(services.Maintenance.service, {
    Alarm: u('Alarm', (w) => api.maintenance.alarm(w)),
    Status: u('Status', (w) => api.maintenance.status(w)),
    Defragment: u('Defragment', (w) => api.maintenance.defragment(w)),
    Hash: u('Hash', (w) => api.maintenance.hash(w)),
    HashKV: u('HashKV', (w) => api.maintenance.hashKV(w)),
    Snapshot: snapshot(api),
    MoveLeader: u('MoveLeader', (w) => api.maintenance.moveLeader(w)),
  });
  const auth = api.auth;
  server.addService(services.Auth.service, {
    AuthEnable: u('AuthEnable', (w) => auth.authEnable(w)),
    AuthDisable: u('AuthDisable', (w) => auth.authDisable(w)),
    Authenticate: u('Authenticate', (w) => auth.authenticate(w)),
    UserAdd: u('UserAdd', (w) => auth.userAdd(w)),
    UserGet: u('UserGet', (w) => auth.userGet(w)),
    UserList: u('UserList', (w) => auth.userList(w)),
    UserDelete: u('UserDelete', (w) => auth.userDelete(w)),
    UserChangePassword: u('UserChangePassword', (w) => auth.userChangePassword(w)),
    UserGrantRole: u('UserGrantRole', (w) => auth.userGrantRole(w)),
    UserRevokeRole: u('UserRevokeRole', (w) => auth.userRevokeRole(w)),
    RoleAdd: u('RoleAdd', (w) => auth.roleAdd(w)),
    RoleGet: u('RoleGet', (w) => auth.roleGet(w)),
    RoleList: u('RoleList', (w) => auth.roleList(w)),
    RoleDelete: u('RoleDelete', (w) => auth.roleDelete(w)),
    RoleGrantPermission: u('RoleGrantPermission', (w) => auth.roleGrantPermission(w)),
    RoleRevokePermission: u('RoleRevokePermission', (w) => auth.roleRevokePermission(w)),
  });
  return server;
}
