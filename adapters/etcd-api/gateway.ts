// etcd's JSON gateway (grpc-gateway, as etcd 3.4 serves it on the client port): POST a JSON
// request body to /v3/<service>/<method>, get the response as JSON with int64 as strings,
// bytes as base64 and zero values left out. /v3/watch streams one JSON object per line.
// Also GET /health and GET /metrics. CORS and the Host check happen before, in access.ts.

import { checkHealth } from './health.ts';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { etcdVersion, Status, toApiError, type EtcdApi } from './api.ts';
import type { Rpc } from './auth-gate.ts';
import { loadProto } from './proto-load.ts';
import { watchRequest } from './server-wire.ts';

/** Largest request body accepted; etcd's request limit plus room for base64 and JSON. */
export const gatewayBodyBytesMax = 4 * 1024 * 1024;

type Wire = Record<string, any>;

interface Route {
  /** The name the auth gate (auth-gate.ts) checks this call under. */
  rpc: Rpc;
  request: string;
  response: string;
  call: (api: EtcdApi, w: Wire) => Promise<Wire>;
}

const routes: Record<string, Route> = {
  '/v3/kv/range': {
    rpc: 'Range', request: 'etcdserverpb.RangeRequest', response: 'etcdserverpb.RangeResponse', call: (a, w) => a.kvService.range(w) },
  '/v3/kv/put': {
    rpc: 'Put', request: 'etcdserverpb.PutRequest', response: 'etcdserverpb.PutResponse', call: (a, w) => a.kvService.put(w) },
  '/v3/kv/deleterange': {
    rpc: 'DeleteRange',
    request: 'etcdserverpb.DeleteRangeRequest',
    response: 'etcdserverpb.DeleteRangeResponse',
    call: (a, w) => a.kvService.deleteRange(w),
  },
  '/v3/kv/txn': {
    rpc: 'Txn', request: 'etcdserverpb.TxnRequest', response: 'etcdserverpb.TxnResponse', call: (a, w) => a.kvService.txn(w) },
  '/v3/kv/compaction': {
    rpc: 'Compact',
    request: 'etcdserverpb.CompactionRequest',
    response: 'etcdserverpb.CompactionResponse',
    call: (a, w) => a.kvService.compact(w),
  },
  '/v3/lease/grant': {
    rpc: 'LeaseGrant',
    request: 'etcdserverpb.LeaseGrantRequest',
    response: 'etcdserverpb.LeaseGrantResponse',
    call: (a, w) => a.lease.leaseGrant(w),
  },
  '/v3/lease/revoke': {
    rpc: 'LeaseRevoke',
    request: 'etcdserverpb.LeaseRevokeRequest',
    response: 'etcdserverpb.LeaseRevokeResponse',
    call: (a, w) => a.lease.leaseRevoke(w),
  },
  '/v3/lease/timetolive': {
    rpc: 'LeaseTimeToLive',
    request: 'etcdserverpb.LeaseTimeToLiveRequest',
    response: 'etcdserverpb.LeaseTimeToLiveResponse',
    call: (a, w) => a.lease.leaseTimeToLive(w),
  },
  '/v3/lease/leases': {
    rpc: 'LeaseLeases',
    request: 'etcdserverpb.LeaseLeasesRequest',
    response: 'etcdserverpb.LeaseLeasesResponse',
    call: (a, w) => a.lease.leaseLeases(w),
  },
  '/v3/cluster/member/list': {
    rpc: 'MemberList',
    request: 'etcdserverpb.MemberListRequest',
    response: 'etcdserverpb.MemberListResponse',
    call: (a, w) => a.cluster.memberList(w),
  },
  '/v3/maintenance/status': {
    rpc: 'Status',
    request: 'etcdserverpb.StatusRequest',
    response: 'etcdserverpb.StatusResponse',
    call: (a, w) => a.maintenance.status(w),
  },
  '/v3/maintenance/hash': {
    rpc: 'Hash', request: 'etcdserverpb.HashRequest', response: 'etcdserverpb.HashResponse', call: (a, w) => a.maintenance.hash(w) },
  // etcd's Auth service at grpc-gateway's paths.
  '/v3/auth/authenticate': { rpc: 'Authenticate', request: 'etcdserverpb.AuthenticateRequest', response: 'etcdserverpb.AuthenticateResponse', call: (a, w) => a.auth.authenticate(w) },
  '/v3/auth/enable': { rpc: 'AuthEnable', request: 'etcdserverpb.AuthEnableRequest', response: 'etcdserverpb.AuthEnableResponse', call: (a, w) => a.auth.authEnable(w) },
  '/v3/auth/disable': { rpc: 'AuthDisable', request: 'etcdserverpb.AuthDisableRequest', response: 'etcdserverpb.AuthDisableResponse', call: (a, w) => a.auth.authDisable(w) },
  '/v3/auth/user/add': { rpc: 'UserAdd', request: 'etcdserverpb.AuthUserAddRequest', response: 'etcdserverpb.AuthUserAddResponse', call: (a, w) => a.auth.userAdd(w) },
  '/v3/auth/user/get': { rpc: 'UserGet', request: 'etcdserverpb.AuthUserGetRequest', response: 'etcdserverpb.AuthUserGetResponse', call: (a, w) => a.auth.userGet(w) },
  '/v3/auth/user/list': { rpc: 'UserList', request: 'etcdserverpb.AuthUserListRequest', response: 'etcdserverpb.AuthUserListResponse', call: (a, w) => a.auth.userList(w) },
  '/v3/auth/user/delete': { rpc: 'UserDelete', request: 'etcdserverpb.AuthUserDeleteRequest', response: 'etcdserverpb.AuthUserDeleteResponse', call: (a, w) => a.auth.userDelete(w) },
  '/v3/auth/user/changepw': { rpc: 'UserChangePassword', request: 'etcdserverpb.AuthUserChangePasswordRequest', response: 'etcdserverpb.AuthUserChangePasswordResponse', call: (a, w) => a.auth.userChangePassword(w) },
  '/v3/auth/user/grant': { rpc: 'UserGrantRole', request: 'etcdserverpb.AuthUserGrantRoleRequest', response: 'etcdserverpb.AuthUserGrantRoleResponse', call: (a, w) => a.auth.userGrantRole(w) },
  '/v3/auth/user/revoke': { rpc: 'UserRevokeRole', request: 'etcdserverpb.AuthUserRevokeRoleRequest', response: 'etcdserverpb.AuthUserRevokeRoleResponse', call: (a, w) => a.auth.userRevokeRole(w) },
  '/v3/auth/role/add': { rpc: 'RoleAdd', request: 'etcdserverpb.AuthRoleAddRequest', response: 'etcdserverpb.AuthRoleAddResponse', call: (a, w) => a.auth.roleAdd(w) },
  '/v3/auth/role/get': { rpc: 'RoleGet', request: 'etcdserverpb.AuthRoleGetRequest', response: 'etcdserverpb.AuthRoleGetResponse', call: (a, w) => a.auth.roleGet(w) },
  '/v3/auth/role/list': { rpc: 'RoleList', request: 'etcdserverpb.AuthRoleListRequest', response: 'etcdserverpb.AuthRoleListResponse', call: (a, w) => a.auth.roleList(w) },
  '/v3/auth/role/delete': { rpc: 'RoleDelete', request: 'etcdserverpb.AuthRoleDeleteRequest', response: 'etcdserverpb.AuthRoleDeleteResponse', call: (a, w) => a.auth.roleDelete(w) },
  '/v3/auth/role/grant': { rpc: 'RoleGrantPermission', request: 'etcdserverpb.AuthRoleGrantPermissionRequest', response: 'etcdserverpb.AuthRoleGrantPermissionResponse', call: (a, w) => a.auth.roleGrantPermission(w) },
  '/v3/auth/role/revoke': { rpc: 'RoleRevokePermission', request: 'etcdserverpb.AuthRoleRevokePermissionRequest', response: 'etcdserverpb.AuthRoleRevokePermissionResponse', call: (a, w) => a.auth.roleRevokePermission(w) },
};

/** grpc-gateway's HTTP status for each gRPC code. */
function httpStatusOf(code: number): number {
  switch (code) {
    case Status.InvalidArgument:
    case Status.FailedPrecondition:
    case Status.OutOfRange:
      return 400;
    case Status.NotFound:
      return 404;
    case Status.PermissionDenied:
      return 403;
    case Status.Unauthenticated:
      return 401;
    case Status.ResourceExhausted:
      return 429;
    case Status.Unimplemented:
      return 501;
    case Status.Unavailable:
      return 503;
    case Status.DeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(body));
}

function sendError(res: ServerResponse, code: number, message: string, httpStatus = httpStatusOf(code)): void {
  sendJson(res, httpStatus, { error: message, message, code });
}

function sendText(res: ServerResponse, status: number, text: string, contentType = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'Content-Type': contentType });
  res.end(text);
}

/** Reads and parses the JSON body; on failure answers 400 itself and returns undefined. */
async function readJson(req: IncomingMessage, res: ServerResponse): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > gatewayBodyBytesMax) {
      sendError(res, Status.ResourceExhausted, `request body larger than ${gatewayBodyBytesMax} bytes`, 413);
      req.destroy();
      return undefined;
    }
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return {};
  try {
    return JSON.parse(text);
  } catch (err) {
    sendError(res, Status.InvalidArgument, `malformed JSON body: ${(err as Error).message}`, 400);
    return undefined;
  }
}

type Proto = Awaited<ReturnType<typeof loadProto>>;

function parseRequest(proto: Proto, res: ServerResponse, typeName: string, json: unknown): Wire | undefined {
  try {
    return proto.messageFromJson(typeName, json, 'request');
  } catch (err) {
    if (!(err instanceof proto.JsonMappingError)) throw err;
    sendError(res, Status.InvalidArgument, err.message, 400);
    return undefined;
  }
}

/**
 * Splits a byte stream of concatenated JSON objects (newline-separated or not) into one text per
 * object, tracking nesting outside strings. Bounded: an object may not exceed gatewayBodyBytesMax.
 */
export class JsonObjectSplitter {
  private buffer = '';
  private depth = 0;
  private inString = false;
  private escaped = false;
  private start = -1;
  private scanned = 0;

  /** Feeds text; returns the objects it completed. Throws on text outside an object. */
  push(text: string): string[] {
    this.buffer += text;
    const out: string[] = [];
    for (let i = this.scanned; i < this.buffer.length; i++) {
      const c = this.buffer[i];
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (c === '\\') this.escaped = true;
        else if (c === '"') this.inString = false;
      } else if (c === '"') {
        this.inString = true;
      } else if (c === '{') {
        if (this.depth++ === 0) this.start = i;
      } else if (c === '}') {
        if (--this.depth < 0) throw new SyntaxError(`unexpected "}" at byte ${i}`);
        if (this.depth === 0) out.push(this.buffer.slice(this.start, i + 1));
      } else if (this.depth === 0 && !/\s/.test(c)) {
        throw new SyntaxError(`unexpected ${JSON.stringify(c)} between JSON objects`);
      }
    }
    if (this.depth === 0) {
      this.buffer = '';
      this.scanned = 0;
    } else {
      this.buffer = this.buffer.slice(this.start);
      this.start = 0;
      this.scanned = this.buffer.length;
      if (this.buffer.length > gatewayBodyBytesMax) throw new SyntaxError(`a JSON object larger than ${gatewayBodyBytesMax} bytes`);
    }
    return out;
  }

  /** True when the stream ended in the middle of an object. */
  get incomplete(): boolean {
    return this.depth > 0;
  }
}

/**
 * Streams watch responses, one JSON object per line, until the client disconnects. The request
 * body is a stream of WatchRequest objects (create, cancel, progress), read as they arrive.
 */
async function serveWatch(api: EtcdApi, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const proto = await loadProto();
  let session: ReturnType<EtcdApi['openWatch']> | null = null;
  const splitter = new JsonObjectSplitter();
  const decoder = new TextDecoder();
  let failed = false;
  /** A failure before the stream started is a 400; after, an error line ends the stream. */
  const fail = (code: number, message: string) => {
    failed = true;
    if (session === null) return sendError(res, code, message, 400);
    res.end(JSON.stringify({ error: { grpc_code: code, http_code: httpStatusOf(code), message } }) + '\n');
    session.close();
  };
  // The token comes with the headers; the body waits, unread, while a JWT's signature is checked.
  let user: string;
  try {
    user = await api.userOf(tokenOf(req));
  } catch (err) {
    const e = toApiError(err);
    return fail(e.code, e.message);
  }
  /** Handles one chunk of the body; on bad input, answers and sets `failed`. */
  const onChunk = (chunk: Buffer): void => {
    let texts: string[];
    try {
      texts = splitter.push(decoder.decode(chunk, { stream: true }));
    } catch (err) {
      return fail(Status.InvalidArgument, `malformed JSON body: ${(err as Error).message}`);
    }
    for (const text of texts) {
      let wire: Wire;
      try {
        wire = proto.messageFromJson('etcdserverpb.WatchRequest', JSON.parse(text), 'request');
      } catch (err) {
        const message = err instanceof proto.JsonMappingError ? err.message : `malformed JSON body: ${(err as Error).message}`;
        return fail(Status.InvalidArgument, message);
      }
      if (session === null) {
        let caller;
        try {
          caller = api.authorize('Watch', wire, user);
        } catch (err) {
          const e = toApiError(err);
          return fail(e.code, e.message);
        }
        res.writeHead(200, { 'Content-Type': 'application/json' });
        // Sent now: a request that asks for nothing yet (`{}`) would otherwise leave the client
        // without even a status until the first event.
        res.flushHeaders();
        session = api.openWatch((r) => {
          if (res.destroyed || res.writableEnded) return false;
          if (r.events.length > 0 && res.writableNeedDrain) return false;
          res.write(JSON.stringify({ result: proto.messageToJson('etcdserverpb.WatchResponse', api.watchResponse(r)) }) + '\n');
          return true;
        }, caller);
        const opened = session;
        res.on('close', () => opened.close());
      }
      try {
        session.handle(watchRequest(wire));
      } catch (err) {
        const e = toApiError(err);
        return fail(e.code, e.message);
      }
    }
  };
  let discardedBytes = 0;
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      if (!failed) {
        onChunk(chunk);
        continue;
      }
      // The answer is out, but the client may still be sending: read on (up to a bound) so that
      // it gets the answer rather than a connection reset.
      discardedBytes += chunk.length;
      if (discardedBytes > gatewayBodyBytesMax) return void req.destroy();
    }
  } catch {
    // The client went away while sending: the response's close handler cleans up.
    return;
  }
  if (failed) return;
  if (splitter.incomplete) return fail(Status.InvalidArgument, 'malformed JSON body: unexpected end of input');
  if (session === null) return fail(Status.InvalidArgument, 'malformed JSON body: no watch request');
  // The body is complete; the stream stays open until the client disconnects (as etcd's does).
}

/**
 * GET /version, as etcd answers it: the etcd release whose API meshkv serves (Status.version
 * says the same) and the cluster version, which etcd gives as major.minor.0.
 */
const versions = { etcdserver: etcdVersion, etcdcluster: etcdVersion.replace(/\.\d+$/, '.0') };

/** The simple token in the Authorization header, as etcd's gateway takes it (bare, or after "Bearer "). */
function tokenOf(req: IncomingMessage): string | undefined {
  const v = req.headers.authorization;
  return v === undefined ? undefined : v.replace(/^Bearer\s+/i, '');
}

/** The gateway's request handler for a node:http server. */
export function createGatewayHandler(api: EtcdApi): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    handle(api, req, res).catch((err: unknown) => {
      if (res.headersSent) res.destroy();
      else sendError(res, Status.Internal, `internal error: ${(err as Error).message}`, 500);
    });
  };
}

async function handle(api: EtcdApi, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  if (path === '/health') {
    if (req.method !== 'GET') return sendText(res, 405, 'Method Not Allowed\n');
    const serializable = new URLSearchParams((req.url ?? '').split('?')[1] ?? '').get('serializable') === 'true';
    const h = await checkHealth(api.kv, serializable);
    return sendText(res, h.health === 'true' ? 200 : 503, JSON.stringify(h));
  }
  if (path === '/version') {
    if (req.method !== 'GET') return sendText(res, 405, 'Method Not Allowed\n');
    return sendText(res, 200, JSON.stringify(versions), 'application/json');
  }
  if (path === '/metrics') {
    if (req.method !== 'GET') return sendText(res, 405, 'Method Not Allowed\n');
    return sendText(res, 200, api.metrics(), 'text/plain; version=0.0.4; charset=utf-8');
  }
  if (path === '/v3/watch') {
    if (req.method !== 'POST') return sendText(res, 405, 'Method Not Allowed\n');
    return serveWatch(api, req, res);
  }
  const route = routes[path];
  if (route === undefined) return sendText(res, 404, 'Not Found\n');
  if (req.method !== 'POST') return sendText(res, 405, 'Method Not Allowed\n');
  const json = await readJson(req, res);
  if (json === undefined) return;
  const proto = await loadProto();
  const wire = parseRequest(proto, res, route.request, json);
  if (wire === undefined) return;
  let answer: Wire;
  try {
    api.authorize(route.rpc, wire, await api.userOf(tokenOf(req)));
    answer = await route.call(api, wire);
  } catch (err) {
    const e = toApiError(err);
    return sendError(res, e.code, e.message);
  }
  sendJson(res, 200, proto.messageToJson(route.response, answer));
}
