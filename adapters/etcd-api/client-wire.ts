// The client side of the wire mapping: meshkv's request messages (src/mvcc/types.ts) to the
// objects proto-loader encodes, and decoded responses back. The inverse of api.ts's mapping.
//
// 64-bit integers travel as decimal strings (proto.ts loads with `longs: String`): lease ids
// become bigint exactly; revisions, counts and TTLs become numbers (exact up to 2^53, which
// they never reach).

import type { LeaseKeepAliveResponse, WatchRequest } from '../../src/client/connection.ts';
import type {
  Compare,
  CompactionRequest,
  CompactionResponse,
  DeleteRangeRequest,
  DeleteRangeResponse,
  Event,
  KeyValue,
  LeaseGrantRequest,
  LeaseGrantResponse,
  LeaseLeasesResponse,
  LeaseRevokeResponse,
  LeaseTimeToLiveResponse,
  PutRequest,
  PutResponse,
  RangeRequest,
  RangeResponse,
  RequestOp,
  ResponseHeader,
  ResponseOp,
  TxnRequest,
  TxnResponse,
  WatchResponse,
} from '../../src/mvcc/types.ts';

export type Wire = Record<string, any>;

const noBytes = new Uint8Array(0);

/**
 * A range end only when there is one: etcd (gogo protobuf) decodes an encoded empty range_end as
 * a non-nil empty slice, which its index reads as "every key >= key", not "this key only".
 */
function rangeEnd(end: Uint8Array | undefined): Wire {
  return end === undefined || end.length === 0 ? {} : { range_end: end };
}

function bytes(v: unknown): Uint8Array {
  // proto-loader hands out Buffers; callers see plain Uint8Arrays, as the in-process connection gives.
  return v instanceof Uint8Array ? new Uint8Array(v.buffer, v.byteOffset, v.byteLength) : noBytes;
}

/** An int64 holding a revision, count or TTL. */
function int(v: unknown): number {
  return v === undefined || v === null || v === '' ? 0 : Number(v);
}

/** An int64 holding a lease id: exact over all 64 bits. */
function id(v: unknown): bigint {
  return v === undefined || v === null || v === '' ? 0n : BigInt(v as string);
}

// ---- requests ----

export function rangeRequest(r: RangeRequest): Wire {
  return {
    key: r.key,
    ...rangeEnd(r.rangeEnd),
    limit: String(r.limit ?? 0),
    revision: String(r.revision ?? 0),
    sort_order: r.sortOrder ?? 0,
    sort_target: r.sortTarget ?? 0,
    serializable: r.serializable ?? false,
    keys_only: r.keysOnly ?? false,
    count_only: r.countOnly ?? false,
    min_mod_revision: String(r.minModRevision ?? 0),
    max_mod_revision: String(r.maxModRevision ?? 0),
    min_create_revision: String(r.minCreateRevision ?? 0),
    max_create_revision: String(r.maxCreateRevision ?? 0),
  };
}

export function putRequest(r: PutRequest): Wire {
  return {
    key: r.key,
    value: r.value ?? noBytes,
    lease: (r.lease ?? 0n).toString(),
    prev_kv: r.prevKv ?? false,
    ignore_value: r.ignoreValue ?? false,
    ignore_lease: r.ignoreLease ?? false,
  };
}

export function deleteRangeRequest(r: DeleteRangeRequest): Wire {
  return { key: r.key, ...rangeEnd(r.rangeEnd), prev_kv: r.prevKv ?? false };
}

/** Only the operand `target` names is set: it is a oneof on the wire. */
function compare(c: Compare): Wire {
  const w: Wire = { result: c.result, target: c.target, key: c.key, ...rangeEnd(c.rangeEnd) };
  switch (c.target) {
    case 0:
      w.version = String(c.version ?? 0);
      break;
    case 1:
      w.create_revision = String(c.createRevision ?? 0);
      break;
    case 2:
      w.mod_revision = String(c.modRevision ?? 0);
      break;
    case 3:
      w.value = c.value ?? noBytes;
      break;
    case 4:
      w.lease = (c.lease ?? 0n).toString();
      break;
  }
  return w;
}

function requestOp(op: RequestOp): Wire {
  if ('requestRange' in op) return { request_range: rangeRequest(op.requestRange) };
  if ('requestPut' in op) return { request_put: putRequest(op.requestPut) };
  if ('requestDeleteRange' in op) return { request_delete_range: deleteRangeRequest(op.requestDeleteRange) };
  return { request_txn: txnRequest(op.requestTxn) };
}

export function txnRequest(r: TxnRequest): Wire {
  return {
    compare: (r.compare ?? []).map(compare),
    success: (r.success ?? []).map(requestOp),
    failure: (r.failure ?? []).map(requestOp),
  };
}

export function compactionRequest(r: CompactionRequest): Wire {
  return { revision: String(r.revision), physical: r.physical ?? false };
}

export function leaseGrantRequest(r: LeaseGrantRequest): Wire {
  return { TTL: String(r.TTL), ID: (r.ID ?? 0n).toString() };
}

export function watchRequest(r: WatchRequest): Wire {
  if ('createRequest' in r) {
    const c = r.createRequest;
    return {
      create_request: {
        key: c.key,
        ...rangeEnd(c.rangeEnd),
        start_revision: String(c.startRevision ?? 0),
        progress_notify: c.progressNotify ?? false,
        filters: c.filters ?? [],
        prev_kv: c.prevKv ?? false,
        watch_id: String(c.watchId ?? 0),
      },
    };
  }
  if ('cancelRequest' in r) return { cancel_request: { watch_id: String(r.cancelRequest.watchId) } };
  return { progress_request: {} };
}

// ---- responses ----

function header(w: Wire | null | undefined): ResponseHeader {
  return { revision: int(w?.revision) };
}

function keyValue(w: Wire): KeyValue {
  return {
    key: bytes(w.key),
    createRevision: int(w.create_revision),
    modRevision: int(w.mod_revision),
    version: int(w.version),
    value: bytes(w.value),
    lease: id(w.lease),
  };
}

export function rangeResponse(w: Wire): RangeResponse {
  return { header: header(w.header), kvs: (w.kvs ?? []).map(keyValue), more: w.more === true, count: int(w.count) };
}

export function putResponse(w: Wire): PutResponse {
  const r: PutResponse = { header: header(w.header) };
  if (w.prev_kv) r.prevKv = keyValue(w.prev_kv);
  return r;
}

export function deleteRangeResponse(w: Wire): DeleteRangeResponse {
  return { header: header(w.header), deleted: int(w.deleted), prevKvs: (w.prev_kvs ?? []).map(keyValue) };
}

function responseOp(w: Wire): ResponseOp {
  if (w.response_range) return { responseRange: rangeResponse(w.response_range) };
  if (w.response_put) return { responsePut: putResponse(w.response_put) };
  if (w.response_delete_range) return { responseDeleteRange: deleteRangeResponse(w.response_delete_range) };
  if (w.response_txn) return { responseTxn: txnResponse(w.response_txn) };
  throw new Error(`grpc-connection: a ResponseOp with no response set: ${JSON.stringify(Object.keys(w))}`);
}

export function txnResponse(w: Wire): TxnResponse {
  return { header: header(w.header), succeeded: w.succeeded === true, responses: (w.responses ?? []).map(responseOp) };
}

export function compactionResponse(w: Wire): CompactionResponse {
  return { header: header(w.header) };
}

export function leaseGrantResponse(w: Wire): LeaseGrantResponse {
  return { header: header(w.header), ID: id(w.ID), TTL: int(w.TTL), error: w.error ?? '' };
}

export function leaseRevokeResponse(w: Wire): LeaseRevokeResponse {
  return { header: header(w.header) };
}

export function leaseKeepAliveResponse(w: Wire): LeaseKeepAliveResponse {
  return { header: header(w.header), ID: id(w.ID), TTL: int(w.TTL) };
}

export function leaseTimeToLiveResponse(w: Wire): LeaseTimeToLiveResponse {
  return { header: header(w.header), ID: id(w.ID), TTL: int(w.TTL), grantedTTL: int(w.grantedTTL), keys: (w.keys ?? []).map(bytes) };
}

export function leaseLeasesResponse(w: Wire): LeaseLeasesResponse {
  return { header: header(w.header), leases: (w.leases ?? []).map((l: Wire) => ({ ID: id(l.ID) })) };
}

function event(w: Wire): Event {
  const e: Event = { type: w.type ?? 0, kv: keyValue(w.kv ?? {}) };
  if (w.prev_kv) e.prevKv = keyValue(w.prev_kv);
  return e;
}

export function watchResponse(w: Wire): WatchResponse {
  return {
    header: header(w.header),
    watchId: int(w.watch_id),
    created: w.created === true,
    canceled: w.canceled === true,
    compactRevision: int(w.compact_revision),
    cancelReason: w.cancel_reason ?? '',
    events: (w.events ?? []).map(event),
  };
}
