// Checks etcd makes before a request reaches the log (v3rpc's check*Request and the server's
// size check). They depend only on the request, so apply repeats them deterministically.

import { toBinaryString, type KeyString } from './bytes.ts';
import { Errors, type MvccError } from './errors.ts';
import { checkShape } from './shape.ts';
import type {
  ApplyRequest,
  Compare,
  DeleteRangeRequest,
  PutRequest,
  RangeRequest,
  RequestOp,
  TxnRequest,
} from './types.ts';
import { varintBytes } from '../backend/layout.ts';

export interface Limits {
  /** etcd's --max-request-bytes default: 1.5 MiB. */
  requestBytesMax: number;
  /** etcd's --max-txn-ops default. */
  txnOpsMax: number;
}

export const DEFAULT_LIMITS: Limits = { requestBytesMax: 1.5 * 1024 * 1024, txnOpsMax: 128 };

/** Returns the error etcd would answer before proposing `request`, or null. */
export function validateRequest(request: ApplyRequest, limits: Limits = DEFAULT_LIMITS): MvccError | null {
  const malformed = checkShape(request);
  if (malformed !== null) return malformed;
  try {
    switch (request.kind) {
      case 'range':
        checkRange(request.request);
        break;
      case 'put':
        checkPut(request.request);
        break;
      case 'deleteRange':
        checkDeleteRange(request.request);
        break;
      case 'txn':
        checkTxn(request.request, limits.txnOpsMax);
        checkIntervals(request.request.success ?? []);
        checkIntervals(request.request.failure ?? []);
        break;
      default:
        break;
    }
    if (requestSizeBytes(request) > limits.requestBytesMax) return Errors.requestTooLarge();
    return null;
  } catch (error) {
    return error as MvccError;
  }
}

function checkRange(request: RangeRequest): void {
  if (request.key.length === 0) throw Errors.emptyKey();
}

function checkPut(request: PutRequest): void {
  if (request.key.length === 0) throw Errors.emptyKey();
  if (request.ignoreValue && (request.value?.length ?? 0) !== 0) throw Errors.valueProvided();
  if (request.ignoreLease && (request.lease ?? 0n) !== 0n) throw Errors.leaseProvided();
}

function checkDeleteRange(request: DeleteRangeRequest): void {
  if (request.key.length === 0) throw Errors.emptyKey();
}

/** etcd's checkTxnRequest: a nested txn's budget shrinks by its parent's widest list. */
function checkTxn(request: TxnRequest, opsMax: number): void {
  const compare = request.compare ?? [];
  const success = request.success ?? [];
  const failure = request.failure ?? [];
  const width = Math.max(compare.length, success.length, failure.length);
  if (width > opsMax) throw Errors.tooManyOps();
  for (const c of compare) if (c.key.length === 0) throw Errors.emptyKey();
  for (const op of success) checkOp(op, opsMax - width);
  for (const op of failure) checkOp(op, opsMax - width);
}

function checkOp(op: RequestOp, opsMax: number): void {
  if ('requestRange' in op) checkRange(op.requestRange);
  else if ('requestPut' in op) checkPut(op.requestPut);
  else if ('requestDeleteRange' in op) checkDeleteRange(op.requestDeleteRange);
  else checkTxn(op.requestTxn, opsMax);
}

/**
 * A delete's key interval as etcd's checkIntervals builds it: [key, rangeEnd) compared with
 * "affine" strings (an empty end is +infinity), or the point [key, key+"\0").
 * Note etcd takes a range_end of "\0" literally here, so such a delete overlaps no put.
 */
interface DeleteInterval {
  start: KeyString;
  /** null: a single key. */
  end: KeyString | null;
}

function intervalHoldsKey(interval: DeleteInterval, key: KeyString): boolean {
  if (interval.end === null) return key === interval.start;
  return interval.start <= key && (interval.end === '' || key < interval.end);
}

function intersectsAny(deletes: readonly DeleteInterval[], key: KeyString): boolean {
  for (const interval of deletes) if (intervalHoldsKey(interval, key)) return true;
  return false;
}

/**
 * etcd's rule for writes in one txn: no key is put twice and no put falls inside a delete, at
 * this level or in nested txns; a key put in both branches of one nested txn is fine (only one
 * branch runs). Deletes may overlap each other.
 */
function checkIntervals(ops: readonly RequestOp[]): { puts: Set<KeyString>; deletes: DeleteInterval[] } {
  const deletes: DeleteInterval[] = [];
  for (const op of ops) {
    if (!('requestDeleteRange' in op)) continue;
    const { key, rangeEnd } = op.requestDeleteRange;
    deletes.push({
      start: toBinaryString(key),
      end: rangeEnd === undefined || rangeEnd.length === 0 ? null : toBinaryString(rangeEnd),
    });
  }
  const puts = new Set<KeyString>();
  for (const op of ops) {
    if (!('requestTxn' in op)) continue;
    const thenBranch = checkIntervals(op.requestTxn.success ?? []);
    const elseBranch = checkIntervals(op.requestTxn.failure ?? []);
    for (const key of thenBranch.puts) {
      if (puts.has(key) || intersectsAny(deletes, key)) throw Errors.duplicateKey();
      puts.add(key);
    }
    for (const key of elseBranch.puts) {
      if (puts.has(key) && !thenBranch.puts.has(key)) throw Errors.duplicateKey();
      if (intersectsAny(deletes, key)) throw Errors.duplicateKey();
      puts.add(key);
    }
    deletes.push(...thenBranch.deletes, ...elseBranch.deletes);
  }
  for (const op of ops) {
    if (!('requestPut' in op)) continue;
    const key = toBinaryString(op.requestPut.key);
    if (puts.has(key) || intersectsAny(deletes, key)) throw Errors.duplicateKey();
    puts.add(key);
  }
  return { puts, deletes };
}

// ---- request size, as protobuf would encode it inside an InternalRaftRequest ----

function bytesField(bytes: Uint8Array | undefined): number {
  const n = bytes?.length ?? 0;
  return n === 0 ? 0 : 1 + varintBytes(n) + n;
}

function intField(value: number | undefined): number {
  return value ? 1 + varintBytes(value) : 0;
}

function bigintField(value: bigint | undefined): number {
  return value ? 1 + (value < 0n ? 10 : varintBytes(Number(value))) : 0;
}

function boolField(value: boolean | undefined): number {
  return value ? 2 : 0;
}

function messageField(size: number): number {
  return 1 + varintBytes(size) + size;
}

function rangeSize(r: RangeRequest): number {
  return (
    bytesField(r.key) + bytesField(r.rangeEnd) + intField(r.limit) + intField(r.revision) +
    intField(r.sortOrder) + intField(r.sortTarget) + boolField(r.serializable) + boolField(r.keysOnly) +
    boolField(r.countOnly) + intField(r.minModRevision) + intField(r.maxModRevision) +
    intField(r.minCreateRevision) + intField(r.maxCreateRevision)
  );
}

function putSize(r: PutRequest): number {
  return (
    bytesField(r.key) + bytesField(r.value) + bigintField(r.lease) + boolField(r.prevKv) +
    boolField(r.ignoreValue) + boolField(r.ignoreLease)
  );
}

function deleteSize(r: DeleteRangeRequest): number {
  return bytesField(r.key) + bytesField(r.rangeEnd) + boolField(r.prevKv);
}

function compareSize(c: Compare): number {
  return (
    intField(c.result) + intField(c.target) + bytesField(c.key) + intField(c.version) +
    intField(c.createRevision) + intField(c.modRevision) + bytesField(c.value) + bigintField(c.lease) +
    bytesField(c.rangeEnd)
  );
}

function opSize(op: RequestOp): number {
  if ('requestRange' in op) return messageField(rangeSize(op.requestRange));
  if ('requestPut' in op) return messageField(putSize(op.requestPut));
  if ('requestDeleteRange' in op) return messageField(deleteSize(op.requestDeleteRange));
  return messageField(txnSize(op.requestTxn));
}

function txnSize(r: TxnRequest): number {
  let size = 0;
  for (const c of r.compare ?? []) size += messageField(compareSize(c));
  for (const op of r.success ?? []) size += messageField(opSize(op));
  for (const op of r.failure ?? []) size += messageField(opSize(op));
  return size;
}

/**
 * Bytes of the RequestHeader etcd wraps a request in: field 100's 2-byte tag, a length byte, and
 * the request id (tag + a 9-byte varint for etcd's generated ids). With it, a put is refused at
 * exactly the value size etcd 3.4.23 refuses it at (1,572,841 bytes for a 1-byte key).
 */
const INTERNAL_HEADER_BYTES = 13;

/** The encoded size etcd compares with --max-request-bytes (close estimate of protobuf). */
export function requestSizeBytes(request: ApplyRequest): number {
  let body: number;
  switch (request.kind) {
    case 'range':
      body = rangeSize(request.request);
      break;
    case 'put':
      body = putSize(request.request);
      break;
    case 'deleteRange':
      body = deleteSize(request.request);
      break;
    case 'txn':
      body = txnSize(request.request);
      break;
    case 'leaseCheckpoint':
      body = request.request.checkpoints.length * 24;
      break;
    default:
      body = 24;
  }
  return INTERNAL_HEADER_BYTES + messageField(body);
}
