// Server-side wire mapping (the mirror of client-wire.ts): etcd's request messages as grpc-js
// and the JSON gateway decode them (snake_case fields, int64 as strings, absent zero values)
// into the core's request types, and the core's responses back into wire objects.

import { Errors } from '../../src/mvcc/errors.ts';
import type {
  Compare,
  DeleteRangeResponse,
  KeyValue,
  PutResponse,
  RangeRequest,
  RangeResponse,
  RequestOp,
  ResponseOp,
  TxnRequest,
  TxnResponse,
} from '../../src/mvcc/types.ts';
import { EtcdApiError, Status } from './errors.ts';
import type { WatchRequest } from './proto-codec.ts';

export type Wire = Record<string, any>;

// ---- wire → core ----

const noBytes = new Uint8Array(0);

export function bytes(v: unknown): Uint8Array {
  return v instanceof Uint8Array ? v : noBytes;
}

/** int64 fields that hold revisions, counts and TTLs: exact up to 2^53, which revisions never reach. */
export function int(v: unknown): number {
  return v === undefined || v === null || v === '' ? 0 : Number(v);
}

/** int64 fields that hold lease ids: any 64-bit value. */
export function int64(v: unknown): bigint {
  return v === undefined || v === null || v === '' ? 0n : BigInt(v as string);
}

export function rangeRequest(w: Wire): RangeRequest {
  return {
    key: bytes(w.key),
    rangeEnd: bytes(w.range_end),
    limit: int(w.limit),
    revision: int(w.revision),
    sortOrder: (w.sort_order ?? 0) as RangeRequest['sortOrder'],
    sortTarget: (w.sort_target ?? 0) as RangeRequest['sortTarget'],
    serializable: w.serializable === true,
    keysOnly: w.keys_only === true,
    countOnly: w.count_only === true,
    minModRevision: int(w.min_mod_revision),
    maxModRevision: int(w.max_mod_revision),
    minCreateRevision: int(w.min_create_revision),
    maxCreateRevision: int(w.max_create_revision),
  };
}

export function putRequest(w: Wire) {
  return {
    key: bytes(w.key),
    value: bytes(w.value),
    lease: int64(w.lease),
    prevKv: w.prev_kv === true,
    ignoreValue: w.ignore_value === true,
    ignoreLease: w.ignore_lease === true,
  };
}

export function deleteRangeRequest(w: Wire) {
  return { key: bytes(w.key), rangeEnd: bytes(w.range_end), prevKv: w.prev_kv === true };
}

export function compare(w: Wire): Compare {
  return {
    result: (w.result ?? 0) as Compare['result'],
    target: (w.target ?? 0) as Compare['target'],
    key: bytes(w.key),
    version: int(w.version),
    createRevision: int(w.create_revision),
    modRevision: int(w.mod_revision),
    value: bytes(w.value),
    lease: int64(w.lease),
    rangeEnd: bytes(w.range_end),
  };
}

export function requestOp(w: Wire): RequestOp {
  if (w.request_range) return { requestRange: rangeRequest(w.request_range) };
  if (w.request_put) return { requestPut: putRequest(w.request_put) };
  if (w.request_delete_range) return { requestDeleteRange: deleteRangeRequest(w.request_delete_range) };
  if (w.request_txn) return { requestTxn: txnRequest(w.request_txn) };
  // An empty RequestOp: etcd's checkRequestOp answers "key not found".
  throw Errors.keyNotFound();
}

export function txnRequest(w: Wire): TxnRequest {
  return {
    compare: (w.compare ?? []).map(compare),
    success: (w.success ?? []).map(requestOp),
    failure: (w.failure ?? []).map(requestOp),
  };
}

/** A WatchRequest as the JSON gateway parsed it, in the form proto-codec.ts decodes gRPC's into. */
export function watchRequest(w: Wire): WatchRequest {
  if (w.create_request) {
    const c = w.create_request;
    return {
      create: {
        key: bytes(c.key),
        rangeEnd: bytes(c.range_end),
        startRevision: int(c.start_revision),
        progressNotify: c.progress_notify === true,
        filters: c.filters ?? [],
        prevKv: c.prev_kv === true,
        watchId: int(c.watch_id),
      },
    };
  }
  if (w.cancel_request) return { cancel: int(w.cancel_request.watch_id) };
  if (w.progress_request) return { progress: true };
  return {};
}

/** Peer URLs of MemberAdd/MemberUpdate, normalized as the member table keeps them (etcd: ErrGRPCMemberBadURLs). */
export function memberUrls(v: unknown): string[] {
  const bad = () => new EtcdApiError(Status.InvalidArgument, 'etcdserver: given member URLs are invalid');
  if (!Array.isArray(v) || v.length === 0) throw bad();
  return v.map((u) => {
    let url: URL;
    try {
      url = new URL(String(u));
    } catch {
      throw bad();
    }
    if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.port === '') throw bad();
    return url.origin;
  });
}

// ---- core → wire ----

export function keyValue(kv: KeyValue): Wire {
  return {
    key: kv.key,
    create_revision: kv.createRevision,
    mod_revision: kv.modRevision,
    version: kv.version,
    value: kv.value,
    lease: kv.lease.toString(),
  };
}

export function rangeBody(r: RangeResponse): Wire {
  return { kvs: r.kvs.map(keyValue), more: r.more, count: r.count };
}
export function putBody(r: PutResponse): Wire {
  return { prev_kv: r.prevKv ? keyValue(r.prevKv) : null };
}
export function deleteBody(r: DeleteRangeResponse): Wire {
  return { deleted: r.deleted, prev_kvs: r.prevKvs.map(keyValue) };
}
export function txnBody(r: TxnResponse): Wire {
  return { succeeded: r.succeeded, responses: r.responses.map(responseOp) };
}

/** Responses inside a txn carry only the revision in their header, as etcd's do. */
export function responseOp(op: ResponseOp): Wire {
  const inner = (r: { header: { revision: number } }, body: Wire) => ({ header: { revision: r.header.revision }, ...body });
  if ('responseRange' in op) return { response_range: inner(op.responseRange, rangeBody(op.responseRange)) };
  if ('responsePut' in op) return { response_put: inner(op.responsePut, putBody(op.responsePut)) };
  if ('responseDeleteRange' in op) return { response_delete_range: inner(op.responseDeleteRange, deleteBody(op.responseDeleteRange)) };
  return { response_txn: inner(op.responseTxn, txnBody(op.responseTxn)) };
}

