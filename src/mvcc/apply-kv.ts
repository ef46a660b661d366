// The key-value requests applied against the store with etcd 3.4's semantics: Range (with
// sorting, filters and limits), Put, DeleteRange and Txn (compare → then/else, nested).

import {
  EMPTY_BYTES,
  compareKeyStrings,
  fromBinaryString,
  inRange,
  toBinaryString,
  toRangeEnd,
  type KeyString,
  type RangeEnd,
} from './bytes.ts';
import { Errors } from './errors.ts';
import type { Record } from './key-index.ts';
import type { StoredRecord } from './history.ts';
import type { KvStore, WriteTxn } from './kv-store.ts';
import type { Lessor } from './lessor.ts';
import {
  CompareResult,
  CompareTarget,
  SortOrder,
  SortTarget,
  type Compare,
  type DeleteRangeRequest,
  type DeleteRangeResponse,
  type KeyValue,
  type PutRequest,
  type PutResponse,
  type RangeRequest,
  type RangeResponse,
  type RequestOp,
  type ResponseOp,
  type TxnRequest,
  type TxnResponse,
} from './types.ts';

/** The API's KeyValue for a record read from history (its value at hand). */
export function storedKeyValue(record: StoredRecord): KeyValue {
  return {
    key: fromBinaryString(record.key),
    createRevision: record.createRevision,
    modRevision: record.main,
    version: record.version,
    value: record.value.length === 0 ? EMPTY_BYTES : record.value,
    lease: record.lease,
  };
}

/**
 * Range at `currentRev` (the store's revision, or a write txn's read revision). etcd's rules:
 * `count` counts the keys before min/max filters; `more` is decided after them; sorting by a
 * target other than KEY defaults to ASCEND. Ties in a sort keep key order.
 */
export function applyRange(store: KvStore, request: RangeRequest, currentRev: number): RangeResponse {
  const atRev = store.resolveReadRevision(request.revision ?? 0, currentRev);
  const limit = request.limit ?? 0;
  const minMod = request.minModRevision ?? 0;
  const maxMod = request.maxModRevision ?? 0;
  const minCreate = request.minCreateRevision ?? 0;
  const maxCreate = request.maxCreateRevision ?? 0;
  const target = request.sortTarget ?? SortTarget.KEY;
  let order = request.sortOrder ?? SortOrder.NONE;
  const fetchAll = order !== SortOrder.NONE || minMod !== 0 || maxMod !== 0 || minCreate !== 0 || maxCreate !== 0;
  const collectMax = request.countOnly ? 0 : fetchAll || limit <= 0 ? Infinity : limit + 1;
  const { records, count } = store.rangeRecords(toBinaryString(request.key), toRangeEnd(request.rangeEnd), atRev, collectMax);

  let selected = records;
  if (maxMod !== 0) selected = selected.filter((r) => r.main <= maxMod);
  if (minMod !== 0) selected = selected.filter((r) => r.main >= minMod);
  if (maxCreate !== 0) selected = selected.filter((r) => r.createRevision <= maxCreate);
  if (minCreate !== 0) selected = selected.filter((r) => r.createRevision >= minCreate);

  if (target !== SortTarget.KEY && order === SortOrder.NONE) order = SortOrder.ASCEND;
  if (order !== SortOrder.NONE) selected = sortRecords(store, selected, target, order);

  let more = false;
  if (limit > 0 && selected.length > limit) {
    selected = selected.slice(0, limit);
    more = true;
  }
  const keysOnly = request.keysOnly ?? false;
  return { header: { revision: currentRev }, kvs: selected.map((r) => store.keyValue(r, keysOnly)), more, count };
}

function sortRecords(store: KvStore, records: Record[], target: SortTarget, order: SortOrder): Record[] {
  const sign = order === SortOrder.DESCEND ? -1 : 1;
  if (target === SortTarget.KEY) return sign === 1 ? records : records.slice().reverse();
  // Values are read once each, not once per comparison.
  const values = target === SortTarget.VALUE ? new Map(records.map((r) => [r, store.value(r)])) : null;
  const compare = (a: Record, b: Record): number => {
    switch (target) {
      case SortTarget.VERSION:
        return a.version - b.version;
      case SortTarget.CREATE:
        return a.createRevision - b.createRevision;
      case SortTarget.MOD:
        return a.main - b.main;
      default:
        return compareKeyStrings(values!.get(a)!, values!.get(b)!);
    }
  };
  return records.slice().sort((a, b) => sign * compare(a, b));
}

export function applyPut(txn: WriteTxn, store: KvStore, request: PutRequest): PutResponse {
  const key = toBinaryString(request.key);
  const needsPrev = request.ignoreValue || request.ignoreLease || request.prevKv;
  const prev = needsPrev ? store.live(key) : undefined;
  if ((request.ignoreValue || request.ignoreLease) && prev === undefined) throw Errors.keyNotFound();
  // No copy here: the store copies the value into the record's backend op and keeps only that.
  const value = request.ignoreValue ? store.valueBytes(prev!) : (request.value ?? EMPTY_BYTES);
  const lease = request.ignoreLease ? prev!.lease : (request.lease ?? 0n);
  txn.put(key, value, lease);
  const response: PutResponse = { header: { revision: txn.main } };
  if (request.prevKv && prev !== undefined) response.prevKv = store.keyValue(prev);
  return response;
}

export function applyDeleteRange(txn: WriteTxn, store: KvStore, request: DeleteRangeRequest): DeleteRangeResponse {
  const deleted = txn.deleteRange(toBinaryString(request.key), toRangeEnd(request.rangeEnd));
  return {
    header: { revision: txn.readRevision },
    deleted: deleted.length,
    prevKvs: request.prevKv ? deleted.map((r) => store.keyValue(r)) : [],
  };
}

/** Which branch each txn takes: decided from the state before the txn writes anything. */
interface TxnPath {
  succeeded: boolean;
  /** Paths of the nested txns in the taken branch, in op order. */
  nested: TxnPath[];
}

function branchOf(request: TxnRequest, succeeded: boolean): RequestOp[] {
  return (succeeded ? request.success : request.failure) ?? [];
}

function evaluatePath(store: KvStore, request: TxnRequest): TxnPath {
  const succeeded = (request.compare ?? []).every((c) => evaluateCompare(store, c));
  const nested: TxnPath[] = [];
  for (const op of branchOf(request, succeeded)) {
    if ('requestTxn' in op) nested.push(evaluatePath(store, op.requestTxn));
  }
  return { succeeded, nested };
}

const ZERO_RECORD: Record = { key: '', main: 0, sub: 0, createRevision: 0, version: 0, lease: 0n };

function evaluateCompare(store: KvStore, compare: Compare): boolean {
  const { records } = store.rangeRecords(
    toBinaryString(compare.key),
    toRangeEnd(compare.rangeEnd),
    store.currentRevision,
    Infinity,
  );
  if (records.length === 0) {
    // A missing key has no value to compare: etcd always fails VALUE compares on it.
    if (compare.target === CompareTarget.VALUE) return false;
    return compareRecord(store, compare, ZERO_RECORD);
  }
  return records.every((record) => compareRecord(store, compare, record));
}

function compareRecord(store: KvStore, compare: Compare, record: Record): boolean {
  let result: number;
  switch (compare.target) {
    case CompareTarget.VERSION:
      result = Math.sign(record.version - (compare.version ?? 0));
      break;
    case CompareTarget.CREATE:
      result = Math.sign(record.createRevision - (compare.createRevision ?? 0));
      break;
    case CompareTarget.MOD:
      result = Math.sign(record.main - (compare.modRevision ?? 0));
      break;
    case CompareTarget.VALUE:
      result = compareKeyStrings(store.value(record), toBinaryString(compare.value ?? EMPTY_BYTES));
      break;
    case CompareTarget.LEASE: {
      const lease = compare.lease ?? 0n;
      result = record.lease < lease ? -1 : record.lease > lease ? 1 : 0;
      break;
    }
    default:
      throw new Error(`compare: unknown target ${String(compare.target)}`);
  }
  switch (compare.result) {
    case CompareResult.EQUAL:
      return result === 0;
    case CompareResult.NOT_EQUAL:
      return result !== 0;
    case CompareResult.GREATER:
      return result > 0;
    case CompareResult.LESS:
      return result < 0;
    default:
      throw new Error(`compare: unknown result ${String(compare.result)}`);
  }
}

/**
 * etcd's checkRequests on the taken path, before any write, in etcd's order: first every put
 * (an ignore_value/ignore_lease put finds its key; its lease exists), then every range (its
 * revision is available). Then one addition: an ignore_* put whose key an earlier delete of the
 * same txn removes is refused with "key not found" (etcd accepts it only when the delete's
 * range_end is "\0", then panics while applying).
 */
function checkPath(store: KvStore, lessor: Lessor, request: TxnRequest, path: TxnPath): void {
  const ops: RequestOp[] = [];
  const flatten = (txn: TxnRequest, at: TxnPath): void => {
    let nested = 0;
    for (const op of branchOf(txn, at.succeeded)) {
      if ('requestTxn' in op) flatten(op.requestTxn, at.nested[nested++]);
      else ops.push(op);
    }
  };
  flatten(request, path);
  for (const op of ops) {
    if (!('requestPut' in op)) continue;
    const put = op.requestPut;
    if ((put.ignoreValue || put.ignoreLease) && store.live(toBinaryString(put.key)) === undefined) {
      throw Errors.keyNotFound();
    }
    const lease = put.lease ?? 0n;
    if (lease !== 0n && lessor.lookup(lease) === undefined) throw Errors.leaseNotFound();
  }
  for (const op of ops) {
    if (!('requestRange' in op)) continue;
    const revision = op.requestRange.revision ?? 0;
    if (revision > store.currentRevision) throw Errors.futureRevision();
    if (revision !== 0 && revision < store.compactRevision) throw Errors.compacted();
  }
  const deletes: { key: KeyString; end: RangeEnd }[] = [];
  for (const op of ops) {
    if ('requestDeleteRange' in op) {
      deletes.push({ key: toBinaryString(op.requestDeleteRange.key), end: toRangeEnd(op.requestDeleteRange.rangeEnd) });
    } else if ('requestPut' in op && (op.requestPut.ignoreValue || op.requestPut.ignoreLease)) {
      const key = toBinaryString(op.requestPut.key);
      if (deletes.some((d) => inRange(key, d.key, d.end))) throw Errors.keyNotFound();
    }
  }
}

/**
 * Applies a whole txn in `txn` (opened, nothing written yet) as one main revision. Compares and
 * checks see the state before the txn; nothing is written if any check fails.
 */
export function applyTxn(txn: WriteTxn, store: KvStore, lessor: Lessor, request: TxnRequest): TxnResponse {
  if (txn.changes.length !== 0) throw new Error(`applyTxn: write txn at ${txn.main} already wrote`);
  const path = evaluatePath(store, request);
  checkPath(store, lessor, request, path);
  const response = applyTxnOps(txn, store, request, path);
  response.header.revision = txn.readRevision;
  return response;
}

function applyTxnOps(txn: WriteTxn, store: KvStore, request: TxnRequest, path: TxnPath): TxnResponse {
  const responses: ResponseOp[] = [];
  let nested = 0;
  for (const op of branchOf(request, path.succeeded)) {
    if ('requestRange' in op) {
      responses.push({ responseRange: applyRange(store, op.requestRange, txn.readRevision) });
    } else if ('requestPut' in op) {
      responses.push({ responsePut: applyPut(txn, store, op.requestPut) });
    } else if ('requestDeleteRange' in op) {
      responses.push({ responseDeleteRange: applyDeleteRange(txn, store, op.requestDeleteRange) });
    } else {
      responses.push({ responseTxn: applyTxnOps(txn, store, op.requestTxn, path.nested[nested++]) });
    }
  }
  return { header: { revision: 0 }, succeeded: path.succeeded, responses };
}
