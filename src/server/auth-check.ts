// etcd's permission checks for KV, Txn, lease and watch requests (etcd 3.4's checkRange, checkPut,
// checkDeleteRange, checkTxnAuth, checkLeasePuts, checkWatchCreate), over the core's request
// types. Both doors through which a client reaches a member call these: the etcd API's auth
// gate (adapters/etcd-api/auth-gate.ts) after decoding the wire request, and the in-process
// connection (src/client/local-connection.ts) given a user and password. So a request is
// judged alike whichever way it arrives.

import { AuthErrors } from './auth-errors.ts';
import type { AuthStore } from './auth-store.ts';
import type { DeleteRangeRequest, PutRequest, RangeRequest, TxnRequest } from '../mvcc/types.ts';

export interface AuthCheckContext {
  auth: AuthStore;
  /** The caller; '' when it gave no token (etcd's "user name is empty"). */
  user: string;
  /** The keys attached to a lease (a local read); throws when there is no such lease. */
  leaseKeys(id: bigint): Uint8Array[];
}

const noBytes = new Uint8Array(0);

export function requireUser(user: string): void {
  if (user === '') throw AuthErrors.userEmpty();
}

/** etcd's IsAdminPermitted: the empty user is told so, others need the root role. */
export function checkAdmin(c: AuthCheckContext): void {
  requireUser(c.user);
  c.auth.checkAdmin(c.user);
}

export function checkRead(c: AuthCheckContext, key: Uint8Array, rangeEnd: Uint8Array | undefined): void {
  requireUser(c.user);
  c.auth.checkRange(c.user, key, rangeEnd ?? noBytes, 'read');
}

export function checkWrite(c: AuthCheckContext, key: Uint8Array, rangeEnd: Uint8Array | undefined): void {
  requireUser(c.user);
  c.auth.checkRange(c.user, key, rangeEnd ?? noBytes, 'write');
}

/** etcd's checkLeasePuts: revoking a lease, or putting with it, deletes or ties keys the caller must be able to write. */
export function checkLeaseKeys(c: AuthCheckContext, id: bigint): void {
  if (id === 0n) return;
  requireUser(c.user);
  if (c.auth.isAdmin(c.user)) return;
  let keys: Uint8Array[];
  try {
    keys = c.leaseKeys(id);
  } catch {
    // A lease that does not exist ties no keys; the call itself answers "lease not found".
    return;
  }
  for (const key of keys) checkWrite(c, key, undefined);
}

export function checkRangeRequest(c: AuthCheckContext, r: RangeRequest): void {
  checkRead(c, r.key, r.rangeEnd);
}

export function checkPut(c: AuthCheckContext, r: PutRequest): void {
  checkWrite(c, r.key, undefined);
  checkLeaseKeys(c, r.lease ?? 0n);
  if (r.prevKv === true) checkRead(c, r.key, undefined);
}

export function checkDeleteRange(c: AuthCheckContext, r: DeleteRangeRequest): void {
  checkWrite(c, r.key, r.rangeEnd);
  if (r.prevKv === true) checkRead(c, r.key, r.rangeEnd);
}

/** etcd's checkTxnAuth: every compare is a read, and both branches are checked, whichever runs. */
export function checkTxn(c: AuthCheckContext, r: TxnRequest): void {
  for (const cmp of r.compare ?? []) checkRead(c, cmp.key, cmp.rangeEnd);
  for (const op of [...(r.success ?? []), ...(r.failure ?? [])]) {
    if ('requestRange' in op) checkRangeRequest(c, op.requestRange);
    else if ('requestPut' in op) checkPut(c, op.requestPut);
    else if ('requestDeleteRange' in op) checkDeleteRange(c, op.requestDeleteRange);
    else checkTxn(c, op.requestTxn);
  }
}
