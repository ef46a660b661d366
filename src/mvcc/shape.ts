// Structural checks on a request before any etcd rule runs: every field has the type and range
// the store relies on. Requests come from decoded wire messages and from Raft entries, so a
// malformed one must come back as an error value, never throw inside apply on every member.

import { MvccError, GrpcCode } from './errors.ts';
import { CompareResult, CompareTarget, SortOrder, SortTarget, type ApplyRequest, type Compare, type RequestOp } from './types.ts';

/** Nesting of txns inside txns; deeper requests are refused (etcd bounds it by the op budget). */
export const txnDepthMax = 64;

class ShapeError extends Error {}

const enumValues = (e: Record<string, number>) => new Set(Object.values(e));
const compareResults = enumValues(CompareResult);
const compareTargets = enumValues(CompareTarget);
const sortOrders = enumValues(SortOrder);
const sortTargets = enumValues(SortTarget);

function bytes(v: unknown, field: string, required: boolean): void {
  if (v === undefined && !required) return;
  if (!(v instanceof Uint8Array)) throw new ShapeError(`${field} must be bytes`);
}

/** An int64 field held as a number: etcd's own rules decide what negative values mean. */
function int(v: unknown, field: string): void {
  if (v === undefined) return;
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new ShapeError(`${field} must be an integer`);
}

function int64(v: unknown, field: string): void {
  if (v === undefined) return;
  if (typeof v !== 'bigint' || v < -(2n ** 63n) || v >= 2n ** 63n) throw new ShapeError(`${field} must be a 64-bit integer`);
}

function bool(v: unknown, field: string): void {
  if (v !== undefined && typeof v !== 'boolean') throw new ShapeError(`${field} must be a boolean`);
}

function oneOf(v: unknown, allowed: Set<number>, field: string): void {
  if (v === undefined) return;
  if (typeof v !== 'number' || !allowed.has(v)) throw new ShapeError(`${field} ${String(v)} is not a known value`);
}

function object(v: unknown, field: string): Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new ShapeError(`${field} must be an object`);
  return v as Record<string, unknown>;
}

function list(v: unknown, field: string): unknown[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw new ShapeError(`${field} must be a list`);
  return v;
}

function range(r: Record<string, unknown>, at: string): void {
  bytes(r.key, `${at}.key`, true);
  bytes(r.rangeEnd, `${at}.rangeEnd`, false);
  for (const f of ['limit', 'revision', 'minModRevision', 'maxModRevision', 'minCreateRevision', 'maxCreateRevision']) int(r[f], `${at}.${f}`);
  oneOf(r.sortOrder, sortOrders, `${at}.sortOrder`);
  oneOf(r.sortTarget, sortTargets, `${at}.sortTarget`);
  for (const f of ['serializable', 'keysOnly', 'countOnly']) bool(r[f], `${at}.${f}`);
}

function put(r: Record<string, unknown>, at: string): void {
  bytes(r.key, `${at}.key`, true);
  bytes(r.value, `${at}.value`, false);
  int64(r.lease, `${at}.lease`);
  for (const f of ['prevKv', 'ignoreValue', 'ignoreLease']) bool(r[f], `${at}.${f}`);
}

function deleteRange(r: Record<string, unknown>, at: string): void {
  bytes(r.key, `${at}.key`, true);
  bytes(r.rangeEnd, `${at}.rangeEnd`, false);
  bool(r.prevKv, `${at}.prevKv`);
}

function compare(c: Compare, at: string): void {
  const o = object(c, at);
  bytes(o.key, `${at}.key`, true);
  bytes(o.rangeEnd, `${at}.rangeEnd`, false);
  oneOf(o.result, compareResults, `${at}.result`);
  oneOf(o.target, compareTargets, `${at}.target`);
  if (o.result === undefined || o.target === undefined) throw new ShapeError(`${at} needs a result and a target`);
  int(o.version, `${at}.version`);
  int(o.createRevision, `${at}.createRevision`);
  int(o.modRevision, `${at}.modRevision`);
  bytes(o.value, `${at}.value`, false);
  int64(o.lease, `${at}.lease`);
}

function txn(r: Record<string, unknown>, at: string, depth: number): void {
  if (depth > txnDepthMax) throw new ShapeError(`${at}: txns nested deeper than ${txnDepthMax}`);
  list(r.compare, `${at}.compare`).forEach((c, i) => compare(c as Compare, `${at}.compare[${i}]`));
  for (const branch of ['success', 'failure']) {
    list(r[branch], `${at}.${branch}`).forEach((op, i) => requestOp(op as RequestOp, `${at}.${branch}[${i}]`, depth));
  }
}

function requestOp(op: RequestOp, at: string, depth: number): void {
  const o = object(op, at);
  const keys = Object.keys(o).filter((k) => o[k] !== undefined);
  if (keys.length !== 1) throw new ShapeError(`${at} must set exactly one operation`);
  const inner = object(o[keys[0]], `${at}.${keys[0]}`);
  switch (keys[0]) {
    case 'requestRange':
      return range(inner, `${at}.requestRange`);
    case 'requestPut':
      return put(inner, `${at}.requestPut`);
    case 'requestDeleteRange':
      return deleteRange(inner, `${at}.requestDeleteRange`);
    case 'requestTxn':
      return txn(inner, `${at}.requestTxn`, depth + 1);
    default:
      throw new ShapeError(`${at}: unknown operation ${keys[0]}`);
  }
}

/** Returns an InvalidArgument error naming the first malformed field, or null. */
export function checkShape(req: ApplyRequest): MvccError | null {
  try {
    const o = object(req, 'request');
    const r = object(o.request, 'request.request');
    switch (o.kind) {
      case 'range':
        range(r, 'range');
        break;
      case 'put':
        put(r, 'put');
        break;
      case 'deleteRange':
        deleteRange(r, 'deleteRange');
        break;
      case 'txn':
        txn(r, 'txn', 0);
        break;
      case 'compaction':
        int(r.revision, 'compaction.revision');
        if (r.revision === undefined) throw new ShapeError('compaction.revision is required');
        bool(r.physical, 'compaction.physical');
        break;
      case 'leaseGrant':
        int(r.TTL, 'leaseGrant.TTL');
        if (r.TTL === undefined) throw new ShapeError('leaseGrant.TTL is required');
        int64(r.ID, 'leaseGrant.ID');
        break;
      case 'leaseRevoke':
        int64(r.ID, 'leaseRevoke.ID');
        if (r.ID === undefined) throw new ShapeError('leaseRevoke.ID is required');
        break;
      case 'leaseCheckpoint':
        if (r.checkpoints === undefined) throw new ShapeError('leaseCheckpoint.checkpoints is required');
        list(r.checkpoints, 'leaseCheckpoint.checkpoints').forEach((c, i) => {
          const cp = object(c, `leaseCheckpoint.checkpoints[${i}]`);
          int64(cp.ID, `leaseCheckpoint.checkpoints[${i}].ID`);
          int(cp.remainingTTL, `leaseCheckpoint.checkpoints[${i}].remainingTTL`);
        });
        break;
      default:
        throw new ShapeError(`unknown request kind ${String(o.kind)}`);
    }
    return null;
  } catch (err) {
    if (err instanceof ShapeError) return new MvccError(GrpcCode.InvalidArgument, `etcdserver: malformed request: ${err.message}`);
    throw err;
  }
}
