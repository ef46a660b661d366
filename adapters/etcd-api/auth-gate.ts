// The one place where etcd's auth checks happen. Every RPC the gRPC server and the JSON gateway
// serve goes through authorize() by name before its service runs, and `checks` is a record
// over every RPC name, so a new RPC does not compile until it says who may call it.
//
// The checks are etcd 3.4's (its authApplierV3 and the maintenance/cluster servers): with auth
// disabled nothing is checked; with it enabled a call without a token acts as the empty user
// ("etcdserver: user name is empty"), a token not issued or expired is refused
// ("etcdserver: invalid auth token"), and ranges must be covered by the user's permissions.

import { checkAdmin, checkDeleteRange, checkLeaseKeys, checkPut, checkRangeRequest, checkRead, checkTxn, type AuthCheckContext } from '../../src/server/auth-check.ts';
import type { KvMember } from '../../src/server/kv-member.ts';
import type { DeleteRangeRequest, PutRequest, RangeRequest, TxnRequest } from '../../src/mvcc/types.ts';
import { deleteRangeRequest, int64, putRequest, rangeRequest, txnRequest, type Wire } from './server-wire.ts';

export type Rpc =
  | 'Range' | 'Put' | 'DeleteRange' | 'Txn' | 'Compact'
  | 'Watch'
  | 'LeaseGrant' | 'LeaseRevoke' | 'LeaseKeepAlive' | 'LeaseTimeToLive' | 'LeaseLeases'
  | 'MemberAdd' | 'MemberRemove' | 'MemberUpdate' | 'MemberList' | 'MemberPromote'
  | 'Alarm' | 'Status' | 'Defragment' | 'Hash' | 'HashKV' | 'Snapshot' | 'MoveLeader'
  | 'AuthEnable' | 'AuthDisable' | 'Authenticate'
  | 'UserAdd' | 'UserGet' | 'UserList' | 'UserDelete' | 'UserChangePassword' | 'UserGrantRole' | 'UserRevokeRole'
  | 'RoleAdd' | 'RoleGet' | 'RoleList' | 'RoleDelete' | 'RoleGrantPermission' | 'RoleRevokePermission';

/** Who made a call: the user its token names, or '' when auth is enabled and it carried none. */
export interface Caller {
  user: string;
}

/** Throws etcd's error when the caller may not make this call with this request. */
type Check = (c: AuthCheckContext, w: Wire) => void;

const anyone: Check = () => {};

const admin: Check = (c) => checkAdmin(c);

// The KV, Txn and lease checks are the core's (src/server/auth-check.ts), on the decoded request,
// so that the in-process connection judges a request as this gate does.
const range: Check = (c, w) => checkRangeRequest(c, rangeRequest(w));
const put: Check = (c, w) => checkPut(c, putRequest(w));
const deleteRange: Check = (c, w) => checkDeleteRange(c, deleteRangeRequest(w));
const txn: Check = (c, w) => checkTxn(c, txnRequest(w));

const checks: Record<Rpc, Check> = {
  Range: range,
  Put: put,
  DeleteRange: deleteRange,
  Txn: txn,
  // etcd 3.4 does not check compaction.
  Compact: anyone,
  // Each create request is checked when it arrives (checkWatchCreate); opening the stream is not.
  Watch: anyone,
  LeaseGrant: anyone,
  LeaseRevoke: (c, w) => checkLeaseKeys(c, int64(w.ID)),
  LeaseKeepAlive: anyone,
  LeaseTimeToLive: anyone,
  LeaseLeases: anyone,
  MemberAdd: admin,
  MemberRemove: admin,
  MemberUpdate: admin,
  MemberList: anyone,
  MemberPromote: admin,
  Alarm: anyone,
  Status: anyone,
  Defragment: admin,
  Hash: admin,
  HashKV: admin,
  Snapshot: admin,
  MoveLeader: admin,
  AuthEnable: admin,
  AuthDisable: admin,
  Authenticate: anyone,
  UserAdd: admin,
  // A user may read their own record and the roles they hold.
  UserGet: (c, w) => {
    if (c.user === '' || w.name !== c.user) admin(c, w);
  },
  UserList: admin,
  UserDelete: admin,
  UserChangePassword: admin,
  UserGrantRole: admin,
  UserRevokeRole: admin,
  RoleAdd: admin,
  RoleGet: (c, w) => {
    if (c.user === '' || !(c.auth.getUser(c.user)?.roles.includes(String(w.role)) ?? false)) admin(c, w);
  },
  RoleList: admin,
  RoleDelete: admin,
  RoleGrantPermission: admin,
  RoleRevokePermission: admin,
};

/**
 * The user a call's token names ('' for none), or etcd's error for a token not issued, expired
 * or (a JWT) older than the last auth change. With auth disabled the token is ignored, as etcd
 * does. Asynchronous because a JWT's signature is checked through WebCrypto.
 */
export async function userOfCall(kv: KvMember, token: string | undefined): Promise<string> {
  return userWithoutLookup(kv, token) ?? kv.userOfToken(token!);
}

/** The call's user when no token needs looking up ('': auth disabled, or no token sent); else undefined. */
export function userWithoutLookup(kv: KvMember, token: string | undefined): string | undefined {
  return !kv.auth.enabled || token === undefined || token === '' ? '' : undefined;
}

/**
 * Checks `rpc` with request `w` for `user` (from userOfCall); throws etcd's error when refused.
 * With auth disabled, every call is allowed.
 */
export function authorize(kv: KvMember, rpc: Rpc, w: Wire, user: string): Caller {
  const auth = kv.auth;
  if (!auth.enabled) return { user: '' };
  checks[rpc](checkContext(kv, user), w);
  return { user };
}

/** The KV requests the gRPC server decodes with proto-codec.ts, by RPC. */
export interface DecodedRequests {
  Range: RangeRequest;
  Put: PutRequest;
  DeleteRange: DeleteRangeRequest;
  Txn: TxnRequest;
}

const decodedChecks: { [R in keyof DecodedRequests]: (c: AuthCheckContext, req: DecodedRequests[R]) => void } = {
  Range: checkRangeRequest,
  Put: checkPut,
  DeleteRange: checkDeleteRange,
  Txn: checkTxn,
};

/** authorize() for a KV request already decoded into the core's type: the same checks. */
export function authorizeDecoded<R extends keyof DecodedRequests>(kv: KvMember, rpc: R, req: DecodedRequests[R], user: string): Caller {
  if (!kv.auth.enabled) return { user: '' };
  decodedChecks[rpc](checkContext(kv, user), req);
  return { user };
}

/** The check of one watch create request, for a caller resolved when the stream opened. */
export function authorizeWatchCreate(kv: KvMember, caller: Caller, key: Uint8Array, rangeEnd: Uint8Array): void {
  if (!kv.auth.enabled) return;
  checkRead(checkContext(kv, caller.user), key, rangeEnd);
}

function checkContext(kv: KvMember, user: string): AuthCheckContext {
  return { auth: kv.auth, user, leaseKeys: (id) => kv.leaseKeys(id) };
}
