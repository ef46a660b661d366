// A hand-written protobuf codec for etcd's hot gRPC messages: requests decode straight into the
// core's request types (src/mvcc/types.ts) and responses encode straight from the core's
// responses, with no snake_case objects and no int64 strings in between (protobufjs via
// proto.ts, loaded on first use by proto-load.ts, still serves every other message, and the
// JSON gateway).
//
// Field numbers are etcd's (proto/rpc.proto, proto/kv.proto). Decoding follows proto3: fields
// in any order, a repeated scalar packed or not, the last of repeated singular fields wins,
// unknown fields skipped; a known field with another wire type is refused, as etcd's
// gogo-protobuf decoders refuse it. A decoded KV request holds only the fields on the wire
// (besides its key, and a compare's result and target): the core reads a missing field as its
// zero value, and the request a member replicates in its Raft entry (src/codec/request.ts,
// msgpack with field names) carries no zero-valued fields — a compare-and-swap txn's entry
// (16-byte key, 256-byte value) is 454 bytes instead of 724, bench/request-entry-ab.mjs.
// Malformed bytes throw ProtoDecodeError, which the gRPC transport (grpc-h2.ts) answers as
// etcd's grpc-go does: INTERNAL, "grpc: error unmarshalling request: …". Encoding leaves proto3
// zero values out.
//
// int64 fields that hold revisions, counts and versions are numbers (exact up to 2^53, as the
// core keeps them; larger values round as Number("…") would); lease ids are bigint.

import { Errors } from '../../src/mvcc/errors.ts';
import type {
  Compare,
  DeleteRangeRequest,
  DeleteRangeResponse,
  Event,
  KeyValue,
  PutRequest,
  PutResponse,
  RangeRequest,
  RangeResponse,
  RequestOp,
  ResponseOp,
  TxnRequest,
  TxnResponse,
  WatchCreateRequest,
  WatchResponse,
} from '../../src/mvcc/types.ts';
import type { StatusBody } from './maintenance-service.ts';

export class ProtoDecodeError extends Error {
  override readonly name = 'ProtoDecodeError';
}

/**
 * Nested messages deeper than this are refused (a txn inside a txn inside …): decoding recurses
 * once per level. The same bound as the JSON gateway's (proto.ts jsonMessageDepthMax).
 */
export const messageDepthMax = 100;

const twoTo32 = 4294967296;
const noBytes: Uint8Array = new Uint8Array(0);

// Wire types.
const VARINT = 0;
const FIXED64 = 1;
const LEN = 2;
const GROUP_START = 3;
const GROUP_END = 4;
const FIXED32 = 5;

// ---- decoding ----

class Reader {
  pos = 0;
  /** The last varint read, as two unsigned 32-bit halves. */
  lo = 0;
  hi = 0;
  constructor(
    readonly buf: Uint8Array,
    readonly message: string,
  ) {}

  fail(what: string): never {
    throw new ProtoDecodeError(`${this.message}: ${what} at byte ${this.pos}`);
  }

  varint(end: number): void {
    const buf = this.buf;
    let lo = 0;
    let hi = 0;
    let b: number;
    for (let shift = 0; shift < 28; shift += 7) {
      if (this.pos >= end) this.fail('truncated varint');
      b = buf[this.pos++]!;
      lo |= (b & 0x7f) << shift;
      if (b < 0x80) {
        this.lo = lo >>> 0;
        this.hi = 0;
        return;
      }
    }
    if (this.pos >= end) this.fail('truncated varint');
    b = buf[this.pos++]!;
    lo |= (b & 0x0f) << 28;
    hi = (b & 0x7f) >>> 4;
    if (b >= 0x80) {
      for (let shift = 3; ; shift += 7) {
        if (shift > 31) this.fail('varint longer than 10 bytes');
        if (this.pos >= end) this.fail('truncated varint');
        b = buf[this.pos++]!;
        hi |= (b & 0x7f) << shift;
        if (b < 0x80) break;
      }
    }
    this.lo = lo >>> 0;
    this.hi = hi >>> 0;
  }

  /** A signed int64 as a number. */
  int64(end: number): number {
    this.varint(end);
    return (this.hi | 0) * twoTo32 + this.lo;
  }

  /** A signed int64 as a bigint (lease ids). */
  bigint64(end: number): bigint {
    this.varint(end);
    if (this.hi === 0) return BigInt(this.lo);
    return BigInt.asIntN(64, (BigInt(this.hi) << 32n) | BigInt(this.lo));
  }

  /** int32 and enums: the low 32 bits, signed. */
  int32(end: number): number {
    this.varint(end);
    return this.lo | 0;
  }

  bool(end: number): boolean {
    this.varint(end);
    return (this.lo | this.hi) !== 0;
  }

  /** The end of a length-delimited field that starts here. */
  lengthEnd(end: number): number {
    this.varint(end);
    if (this.hi !== 0 || this.lo > end - this.pos) this.fail(`length ${(this.hi * twoTo32 + this.lo).toString()} runs past the end of the message`);
    return this.pos + this.lo;
  }

  /** A bytes field: a view into the received message, as protobufjs hands out. */
  bytes(end: number): Uint8Array {
    const to = this.lengthEnd(end);
    const v = this.buf.subarray(this.pos, to);
    this.pos = to;
    return v;
  }

  tag(end: number): number {
    this.varint(end);
    if (this.hi !== 0 || this.lo >>> 3 === 0) this.fail('invalid field number');
    return this.lo;
  }

  /**
   * Skips an unknown field, as proto3 requires; a field the message does know but with another
   * wire type is refused, as etcd's gogo-protobuf decoders refuse it ("wrong wireType").
   */
  skipOther(tag: number, end: number, known: readonly number[]): void {
    if (known.includes(tag >>> 3)) this.fail(`wrong wire type ${tag & 7} for field ${tag >>> 3}`);
    this.skip(tag, end, 0);
  }

  /** Skips the value of a field this codec does not read. */
  skip(tag: number, end: number, depth: number): void {
    switch (tag & 7) {
      case VARINT:
        this.varint(end);
        return;
      case FIXED64:
        if (end - this.pos < 8) this.fail('truncated fixed64');
        this.pos += 8;
        return;
      case LEN:
        this.pos = this.lengthEnd(end);
        return;
      case FIXED32:
        if (end - this.pos < 4) this.fail('truncated fixed32');
        this.pos += 4;
        return;
      case GROUP_START: {
        if (depth >= messageDepthMax) this.fail(`groups nested deeper than ${messageDepthMax}`);
        for (;;) {
          if (this.pos >= end) this.fail('unterminated group');
          const inner = this.tag(end);
          if ((inner & 7) === GROUP_END) {
            if (inner >>> 3 !== tag >>> 3) this.fail('mismatched end of group');
            return;
          }
          this.skip(inner, end, depth + 1);
        }
      }
      default:
        this.fail(`invalid wire type ${tag & 7}`);
    }
  }
}

// Each message's field numbers (proto/rpc.proto), for skipOther.
const rangeRequestFields = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13];
const putRequestFields = [1, 2, 3, 4, 5, 6];
const deleteRangeRequestFields = [1, 2, 3];
const compareFields = [1, 2, 3, 4, 5, 6, 7, 8, 64];
const requestOpFields = [1, 2, 3, 4];
const txnRequestFields = [1, 2, 3];
const watchCreateFields = [1, 2, 3, 4, 5, 6, 7, 8];
const watchRequestFields = [1, 2, 3];
const leaseGrantFields = [1, 2];
/** WatchCancelRequest and LeaseKeepAliveRequest: one int64 field. */
const idOnlyFields = [1];

function checkDepth(r: Reader, depth: number): void {
  if (depth >= messageDepthMax) r.fail(`messages nested deeper than ${messageDepthMax}`);
}

function rangeRequestAt(r: Reader, end: number): RangeRequest {
  const m: RangeRequest = { key: noBytes };
  while (r.pos < end) {
    const tag = r.tag(end);
    switch (tag) {
      case (1 << 3) | LEN: m.key = r.bytes(end); break;
      case (2 << 3) | LEN: m.rangeEnd = r.bytes(end); break;
      case (3 << 3) | VARINT: m.limit = r.int64(end); break;
      case (4 << 3) | VARINT: m.revision = r.int64(end); break;
      case (5 << 3) | VARINT: m.sortOrder = r.int32(end) as RangeRequest['sortOrder']; break;
      case (6 << 3) | VARINT: m.sortTarget = r.int32(end) as RangeRequest['sortTarget']; break;
      case (7 << 3) | VARINT: m.serializable = r.bool(end); break;
      case (8 << 3) | VARINT: m.keysOnly = r.bool(end); break;
      case (9 << 3) | VARINT: m.countOnly = r.bool(end); break;
      case (10 << 3) | VARINT: m.minModRevision = r.int64(end); break;
      case (11 << 3) | VARINT: m.maxModRevision = r.int64(end); break;
      case (12 << 3) | VARINT: m.minCreateRevision = r.int64(end); break;
      case (13 << 3) | VARINT: m.maxCreateRevision = r.int64(end); break;
      default: r.skipOther(tag, end, rangeRequestFields);
    }
  }
  return m;
}

function putRequestAt(r: Reader, end: number): PutRequest {
  const m: PutRequest = { key: noBytes };
  while (r.pos < end) {
    const tag = r.tag(end);
    switch (tag) {
      case (1 << 3) | LEN: m.key = r.bytes(end); break;
      case (2 << 3) | LEN: m.value = r.bytes(end); break;
      case (3 << 3) | VARINT: m.lease = r.bigint64(end); break;
      case (4 << 3) | VARINT: m.prevKv = r.bool(end); break;
      case (5 << 3) | VARINT: m.ignoreValue = r.bool(end); break;
      case (6 << 3) | VARINT: m.ignoreLease = r.bool(end); break;
      default: r.skipOther(tag, end, putRequestFields);
    }
  }
  return m;
}

function deleteRangeRequestAt(r: Reader, end: number): DeleteRangeRequest {
  const m: DeleteRangeRequest = { key: noBytes };
  while (r.pos < end) {
    const tag = r.tag(end);
    switch (tag) {
      case (1 << 3) | LEN: m.key = r.bytes(end); break;
      case (2 << 3) | LEN: m.rangeEnd = r.bytes(end); break;
      case (3 << 3) | VARINT: m.prevKv = r.bool(end); break;
      default: r.skipOther(tag, end, deleteRangeRequestFields);
    }
  }
  return m;
}

function compareAt(r: Reader, end: number): Compare {
  const m: Compare = { result: 0 as Compare['result'], target: 0 as Compare['target'], key: noBytes };
  while (r.pos < end) {
    const tag = r.tag(end);
    switch (tag) {
      case (1 << 3) | VARINT: m.result = r.int32(end) as Compare['result']; break;
      case (2 << 3) | VARINT: m.target = r.int32(end) as Compare['target']; break;
      case (3 << 3) | LEN: m.key = r.bytes(end); break;
      case (4 << 3) | VARINT: m.version = r.int64(end); break;
      case (5 << 3) | VARINT: m.createRevision = r.int64(end); break;
      case (6 << 3) | VARINT: m.modRevision = r.int64(end); break;
      case (7 << 3) | LEN: m.value = r.bytes(end); break;
      case (8 << 3) | VARINT: m.lease = r.bigint64(end); break;
      case (64 << 3) | LEN: m.rangeEnd = r.bytes(end); break;
      default: r.skipOther(tag, end, compareFields);
    }
  }
  return m;
}

/** null for a RequestOp with no member set: etcd refuses it with "key not found" (see decodeTxnRequest). */
function requestOpAt(r: Reader, end: number, depth: number): RequestOp | null {
  checkDepth(r, depth);
  let op: RequestOp | null = null;
  while (r.pos < end) {
    const tag = r.tag(end);
    switch (tag) {
      case (1 << 3) | LEN: { const to = r.lengthEnd(end); op = { requestRange: rangeRequestAt(r, to) }; break; }
      case (2 << 3) | LEN: { const to = r.lengthEnd(end); op = { requestPut: putRequestAt(r, to) }; break; }
      case (3 << 3) | LEN: { const to = r.lengthEnd(end); op = { requestDeleteRange: deleteRangeRequestAt(r, to) }; break; }
      case (4 << 3) | LEN: { const to = r.lengthEnd(end); op = { requestTxn: txnRequestAt(r, to, depth + 1) }; break; }
      default: r.skipOther(tag, end, requestOpFields);
    }
  }
  return op;
}

/** Set while decoding when a RequestOp had no member; checked once the whole message is read. */
let emptyRequestOp = false;

function txnRequestAt(r: Reader, end: number, depth: number): Required<TxnRequest> {
  checkDepth(r, depth);
  const m = { compare: [] as Compare[], success: [] as RequestOp[], failure: [] as RequestOp[] };
  while (r.pos < end) {
    const tag = r.tag(end);
    switch (tag) {
      case (1 << 3) | LEN: { const to = r.lengthEnd(end); m.compare.push(compareAt(r, to)); break; }
      case (2 << 3) | LEN:
      case (3 << 3) | LEN: {
        const to = r.lengthEnd(end);
        const op = requestOpAt(r, to, depth + 1);
        if (op === null) emptyRequestOp = true;
        else (tag >>> 3 === 2 ? m.success : m.failure).push(op);
        break;
      }
      default: r.skipOther(tag, end, txnRequestFields);
    }
  }
  return m;
}

export function decodeRangeRequest(buf: Uint8Array): RangeRequest {
  return rangeRequestAt(new Reader(buf, 'RangeRequest'), buf.length);
}

export function decodePutRequest(buf: Uint8Array): PutRequest {
  return putRequestAt(new Reader(buf, 'PutRequest'), buf.length);
}

export function decodeDeleteRangeRequest(buf: Uint8Array): DeleteRangeRequest {
  return deleteRangeRequestAt(new Reader(buf, 'DeleteRangeRequest'), buf.length);
}

/**
 * A TxnRequest. A RequestOp with no member set is well-formed protobuf but etcd refuses the
 * request with "etcdserver: key not found" (its checkRequestOp): that MvccError is thrown after
 * the message decoded, so callers can tell it from a ProtoDecodeError.
 */
export function decodeTxnRequest(buf: Uint8Array): TxnRequest {
  emptyRequestOp = false;
  const m = txnRequestAt(new Reader(buf, 'TxnRequest'), buf.length, 0);
  if (emptyRequestOp) throw Errors.keyNotFound();
  return m;
}

/** etcdserverpb.WatchRequest: exactly one of its members, or none (etcd ignores an empty request). */
export type WatchRequest =
  | { create: Required<WatchCreateRequest> }
  | { cancel: number }
  | { progress: true }
  | Record<string, never>;

function watchCreateAt(r: Reader, end: number): Required<WatchCreateRequest> {
  const m = { key: noBytes, rangeEnd: noBytes, startRevision: 0, progressNotify: false, filters: [] as WatchCreateRequest['filters'] & unknown[], prevKv: false, watchId: 0 };
  while (r.pos < end) {
    const tag = r.tag(end);
    switch (tag) {
      case (1 << 3) | LEN: m.key = r.bytes(end); break;
      case (2 << 3) | LEN: m.rangeEnd = r.bytes(end); break;
      case (3 << 3) | VARINT: m.startRevision = r.int64(end); break;
      case (4 << 3) | VARINT: m.progressNotify = r.bool(end); break;
      case (5 << 3) | VARINT: m.filters.push(r.int32(end) as (typeof m.filters)[number]); break;
      case (5 << 3) | LEN: {
        const to = r.lengthEnd(end);
        while (r.pos < to) m.filters.push(r.int32(to) as (typeof m.filters)[number]);
        break;
      }
      case (6 << 3) | VARINT: m.prevKv = r.bool(end); break;
      case (7 << 3) | VARINT: m.watchId = r.int64(end); break;
      // fragment: large responses are never split here (the core has no fragmenting); read and ignored.
      case (8 << 3) | VARINT: r.varint(end); break;
      default: r.skipOther(tag, end, watchCreateFields);
    }
  }
  return m;
}

export function decodeWatchRequest(buf: Uint8Array): WatchRequest {
  const r = new Reader(buf, 'WatchRequest');
  const end = buf.length;
  let m: WatchRequest = {};
  while (r.pos < end) {
    const tag = r.tag(end);
    switch (tag) {
      case (1 << 3) | LEN: { const to = r.lengthEnd(end); m = { create: watchCreateAt(r, to) }; break; }
      case (2 << 3) | LEN: {
        const to = r.lengthEnd(end);
        let watchId = 0;
        while (r.pos < to) {
          const t = r.tag(to);
          if (t === ((1 << 3) | VARINT)) watchId = r.int64(to);
          else r.skipOther(t, to, idOnlyFields);
        }
        m = { cancel: watchId };
        break;
      }
      case (3 << 3) | LEN: {
        // WatchProgressRequest has no fields, but what it holds must still be well-formed.
        const to = r.lengthEnd(end);
        while (r.pos < to) r.skip(r.tag(to), to, 0);
        m = { progress: true };
        break;
      }
      default: r.skipOther(tag, end, watchRequestFields);
    }
  }
  return m;
}

// ---- encoding ----

/** Bytes of a varint holding the int64 `n` (negative: ten, as two's complement). */
function varintSize(n: number): number {
  if (n < 0) return 10;
  if (n < 0x80) return 1;
  if (n < 0x4000) return 2;
  if (n < 0x200000) return 3;
  if (n < 0x10000000) return 4;
  let size = 4;
  for (let v = Math.floor(n / 0x10000000); v > 0; v = Math.floor(v / 128)) size++;
  return size;
}

function varint64Size(lo: number, hi: number): number {
  let size = 1;
  while (hi !== 0 || lo > 0x7f) {
    lo = ((lo >>> 7) | (hi << 25)) >>> 0;
    hi >>>= 7;
    size++;
  }
  return size;
}

function writeVarint64(buf: Uint8Array, pos: number, lo: number, hi: number): number {
  while (hi !== 0 || lo > 0x7f) {
    buf[pos++] = (lo & 0x7f) | 0x80;
    lo = ((lo >>> 7) | (hi << 25)) >>> 0;
    hi >>>= 7;
  }
  buf[pos++] = lo;
  return pos;
}

function writeVarint(buf: Uint8Array, pos: number, n: number): number {
  if (n >= 0 && n < 0x80000000) {
    while (n > 0x7f) {
      buf[pos++] = (n & 0x7f) | 0x80;
      n >>>= 7;
    }
    buf[pos++] = n;
    return pos;
  }
  return writeVarint64(buf, pos, n >>> 0, Math.floor(n / twoTo32) >>> 0);
}

function bigintHalves(v: bigint): [number, number] {
  return [Number(BigInt.asUintN(32, v)), Number(BigInt.asUintN(32, v >> 32n))];
}

function bigintSize(v: bigint): number {
  const [lo, hi] = bigintHalves(v);
  return varint64Size(lo, hi);
}

/** A tag (all tags here are one byte: fields below 16) and a number field, or nothing for zero. */
function numberFieldSize(n: number): number {
  return n === 0 ? 0 : 1 + varintSize(n);
}

function writeNumberField(buf: Uint8Array, pos: number, tag: number, n: number): number {
  if (n === 0) return pos;
  buf[pos++] = tag;
  return writeVarint(buf, pos, n);
}

function bytesFieldSize(b: Uint8Array): number {
  return b.length === 0 ? 0 : 1 + varintSize(b.length) + b.length;
}

function writeBytesField(buf: Uint8Array, pos: number, tag: number, b: Uint8Array): number {
  if (b.length === 0) return pos;
  buf[pos++] = tag;
  pos = writeVarint(buf, pos, b.length);
  buf.set(b, pos);
  return pos + b.length;
}

function writeBoolField(buf: Uint8Array, pos: number, tag: number, v: boolean): number {
  if (!v) return pos;
  buf[pos++] = tag;
  buf[pos++] = 1;
  return pos;
}

/** An embedded message's field: tag, length, then the body written by `write`. */
function messageFieldSize(bodySize: number): number {
  return 1 + varintSize(bodySize) + bodySize;
}

/** etcd's ResponseHeader as the API builds it (api.ts header()): ids as decimal strings. */
export interface HeaderWire {
  cluster_id: string;
  member_id: string;
  revision: number;
  raft_term: number;
}

/**
 * Encodes ResponseHeaders. The cluster and member ids rarely change: their encoded fields are
 * kept and rebuilt only when the strings differ.
 */
class HeaderCodec {
  private clusterId = '';
  private memberId = '';
  private idFields = noBytes;

  private ids(h: HeaderWire): Uint8Array {
    if (h.cluster_id !== this.clusterId || h.member_id !== this.memberId) {
      const fields: number[] = [];
      const put = (tag: number, text: string) => {
        const v = BigInt.asUintN(64, BigInt(text));
        if (v === 0n) return;
        const [lo, hi] = bigintHalves(v);
        const bytes = new Uint8Array(varint64Size(lo, hi));
        writeVarint64(bytes, 0, lo, hi);
        fields.push(tag, ...bytes);
      };
      put((1 << 3) | VARINT, h.cluster_id);
      put((2 << 3) | VARINT, h.member_id);
      this.idFields = Uint8Array.from(fields);
      this.clusterId = h.cluster_id;
      this.memberId = h.member_id;
    }
    return this.idFields;
  }

  size(h: HeaderWire): number {
    return this.ids(h).length + numberFieldSize(h.revision) + numberFieldSize(h.raft_term);
  }

  /** Writes the body (size() bytes, called just before). */
  write(buf: Uint8Array, pos: number, h: HeaderWire): number {
    buf.set(this.idFields, pos);
    pos += this.idFields.length;
    pos = writeNumberField(buf, pos, (3 << 3) | VARINT, h.revision);
    return writeNumberField(buf, pos, (4 << 3) | VARINT, h.raft_term);
  }
}

const headers = new HeaderCodec();

function headerField(buf: Uint8Array, pos: number, h: HeaderWire, size: number): number {
  buf[pos++] = (1 << 3) | LEN;
  pos = writeVarint(buf, pos, size);
  return headers.write(buf, pos, h);
}

/** Headers of responses inside a txn: only the revision, as etcd's. */
function innerHeaderSize(revision: number): number {
  return numberFieldSize(revision);
}

function keyValueSize(kv: KeyValue): number {
  return (
    bytesFieldSize(kv.key) +
    numberFieldSize(kv.createRevision) +
    numberFieldSize(kv.modRevision) +
    numberFieldSize(kv.version) +
    bytesFieldSize(kv.value) +
    (kv.lease === 0n ? 0 : 1 + bigintSize(kv.lease))
  );
}

function writeKeyValue(buf: Uint8Array, pos: number, kv: KeyValue): number {
  pos = writeBytesField(buf, pos, (1 << 3) | LEN, kv.key);
  pos = writeNumberField(buf, pos, (2 << 3) | VARINT, kv.createRevision);
  pos = writeNumberField(buf, pos, (3 << 3) | VARINT, kv.modRevision);
  pos = writeNumberField(buf, pos, (4 << 3) | VARINT, kv.version);
  pos = writeBytesField(buf, pos, (5 << 3) | LEN, kv.value);
  if (kv.lease !== 0n) {
    buf[pos++] = (6 << 3) | VARINT;
    const [lo, hi] = bigintHalves(kv.lease);
    pos = writeVarint64(buf, pos, lo, hi);
  }
  return pos;
}

function writeKeyValueField(buf: Uint8Array, pos: number, tag: number, kv: KeyValue): number {
  buf[pos++] = tag;
  pos = writeVarint(buf, pos, keyValueSize(kv));
  return writeKeyValue(buf, pos, kv);
}

function keyValuesSize(kvs: readonly KeyValue[]): number {
  let s = 0;
  for (const kv of kvs) s += messageFieldSize(keyValueSize(kv));
  return s;
}

// Each response body: the fields after the header. The top-level header and the inner
// (revision-only) header differ, so bodies are sized and written apart from their header.

function rangeBodySize(r: RangeResponse): number {
  return keyValuesSize(r.kvs) + (r.more ? 2 : 0) + numberFieldSize(r.count);
}

function writeRangeBody(buf: Uint8Array, pos: number, r: RangeResponse): number {
  for (const kv of r.kvs) pos = writeKeyValueField(buf, pos, (2 << 3) | LEN, kv);
  pos = writeBoolField(buf, pos, (3 << 3) | VARINT, r.more);
  return writeNumberField(buf, pos, (4 << 3) | VARINT, r.count);
}

function putBodySize(r: PutResponse): number {
  return r.prevKv ? messageFieldSize(keyValueSize(r.prevKv)) : 0;
}

function writePutBody(buf: Uint8Array, pos: number, r: PutResponse): number {
  return r.prevKv ? writeKeyValueField(buf, pos, (2 << 3) | LEN, r.prevKv) : pos;
}

function deleteBodySize(r: DeleteRangeResponse): number {
  return numberFieldSize(r.deleted) + keyValuesSize(r.prevKvs);
}

function writeDeleteBody(buf: Uint8Array, pos: number, r: DeleteRangeResponse): number {
  pos = writeNumberField(buf, pos, (2 << 3) | VARINT, r.deleted);
  for (const kv of r.prevKvs) pos = writeKeyValueField(buf, pos, (3 << 3) | LEN, kv);
  return pos;
}

function txnBodySize(r: TxnResponse): number {
  let s = r.succeeded ? 2 : 0;
  for (const op of r.responses) s += messageFieldSize(responseOpSize(op));
  return s;
}

function writeTxnBody(buf: Uint8Array, pos: number, r: TxnResponse): number {
  pos = writeBoolField(buf, pos, (2 << 3) | VARINT, r.succeeded);
  for (const op of r.responses) {
    buf[pos++] = (3 << 3) | LEN;
    pos = writeVarint(buf, pos, responseOpSize(op));
    pos = writeResponseOp(buf, pos, op);
  }
  return pos;
}

/** A response inside a txn: its header (revision only, always present) and its body. */
function innerResponseSize(revision: number, bodySize: number): number {
  return messageFieldSize(innerHeaderSize(revision)) + bodySize;
}

function responseOpBody(op: ResponseOp): { field: number; revision: number; bodySize: number } {
  if ('responseRange' in op) return { field: 1, revision: op.responseRange.header.revision, bodySize: rangeBodySize(op.responseRange) };
  if ('responsePut' in op) return { field: 2, revision: op.responsePut.header.revision, bodySize: putBodySize(op.responsePut) };
  if ('responseDeleteRange' in op) return { field: 3, revision: op.responseDeleteRange.header.revision, bodySize: deleteBodySize(op.responseDeleteRange) };
  return { field: 4, revision: op.responseTxn.header.revision, bodySize: txnBodySize(op.responseTxn) };
}

function responseOpSize(op: ResponseOp): number {
  const { revision, bodySize } = responseOpBody(op);
  return messageFieldSize(innerResponseSize(revision, bodySize));
}

function writeResponseOp(buf: Uint8Array, pos: number, op: ResponseOp): number {
  const { field, revision, bodySize } = responseOpBody(op);
  buf[pos++] = (field << 3) | LEN;
  pos = writeVarint(buf, pos, innerResponseSize(revision, bodySize));
  buf[pos++] = (1 << 3) | LEN;
  pos = writeVarint(buf, pos, innerHeaderSize(revision));
  pos = writeNumberField(buf, pos, (3 << 3) | VARINT, revision);
  if ('responseRange' in op) return writeRangeBody(buf, pos, op.responseRange);
  if ('responsePut' in op) return writePutBody(buf, pos, op.responsePut);
  if ('responseDeleteRange' in op) return writeDeleteBody(buf, pos, op.responseDeleteRange);
  return writeTxnBody(buf, pos, op.responseTxn);
}

/** A top-level response: the full header, then the body. */
function encodeResponse<R>(header: HeaderWire, r: R, bodySize: (r: R) => number, writeBody: (buf: Uint8Array, pos: number, r: R) => number): Buffer {
  const hSize = headers.size(header);
  const size = messageFieldSize(hSize) + bodySize(r);
  const buf = Buffer.allocUnsafe(size);
  const pos = writeBody(buf, headerField(buf, 0, header, hSize), r);
  if (pos !== size) throw new Error(`proto-codec: wrote ${pos} bytes of a ${size}-byte response`);
  return buf;
}

export function encodeRangeResponse(header: HeaderWire, r: RangeResponse): Buffer {
  return encodeResponse(header, r, rangeBodySize, writeRangeBody);
}

export function encodePutResponse(header: HeaderWire, r: PutResponse): Buffer {
  return encodeResponse(header, r, putBodySize, writePutBody);
}

export function encodeDeleteRangeResponse(header: HeaderWire, r: DeleteRangeResponse): Buffer {
  return encodeResponse(header, r, deleteBodySize, writeDeleteBody);
}

export function encodeTxnResponse(header: HeaderWire, r: TxnResponse): Buffer {
  return encodeResponse(header, r, txnBodySize, writeTxnBody);
}

// ---- watch ----

/**
 * Each event's bytes as a WatchResponse field (tag 11, length, mvccpb.Event), kept while the
 * event is: the watch hub hands one Event object to every synced watcher of a revision batch
 * (its SharedEvents), so an event is encoded once however many watchers and streams match it.
 */
const encodedEvents = new WeakMap<Event, Uint8Array>();

function eventField(e: Event): Uint8Array {
  let bytes = encodedEvents.get(e);
  if (bytes !== undefined) return bytes;
  const kvSize = keyValueSize(e.kv);
  const bodySize = numberFieldSize(e.type) + messageFieldSize(kvSize) + (e.prevKv ? messageFieldSize(keyValueSize(e.prevKv)) : 0);
  bytes = new Uint8Array(messageFieldSize(bodySize));
  let pos = 0;
  bytes[pos++] = (11 << 3) | LEN;
  pos = writeVarint(bytes, pos, bodySize);
  pos = writeNumberField(bytes, pos, (1 << 3) | VARINT, e.type);
  bytes[pos++] = (2 << 3) | LEN;
  pos = writeVarint(bytes, pos, kvSize);
  pos = writeKeyValue(bytes, pos, e.kv);
  if (e.prevKv) pos = writeKeyValueField(bytes, pos, (3 << 3) | LEN, e.prevKv);
  if (pos !== bytes.length) throw new Error(`proto-codec: wrote ${pos} bytes of a ${bytes.length}-byte event`);
  encodedEvents.set(e, bytes);
  return bytes;
}

/**
 * `leadingBytes` are left unwritten before the message, for a transport's framing (the gRPC
 * message prefix), so the message needs no copy to be sent.
 */
export function encodeWatchResponse(header: HeaderWire, r: WatchResponse, leadingBytes = 0): Buffer {
  const hSize = headers.size(header);
  const reasonBytes = r.cancelReason === '' ? 0 : Buffer.byteLength(r.cancelReason);
  let size =
    messageFieldSize(hSize) +
    numberFieldSize(r.watchId) +
    (r.created ? 2 : 0) +
    (r.canceled ? 2 : 0) +
    numberFieldSize(r.compactRevision) +
    (reasonBytes === 0 ? 0 : 1 + varintSize(reasonBytes) + reasonBytes);
  const events = r.events.map(eventField);
  for (const e of events) size += e.length;
  const buf = Buffer.allocUnsafe(leadingBytes + size);
  let pos = headerField(buf, leadingBytes, header, hSize);
  pos = writeNumberField(buf, pos, (2 << 3) | VARINT, r.watchId);
  pos = writeBoolField(buf, pos, (3 << 3) | VARINT, r.created);
  pos = writeBoolField(buf, pos, (4 << 3) | VARINT, r.canceled);
  pos = writeNumberField(buf, pos, (5 << 3) | VARINT, r.compactRevision);
  if (reasonBytes !== 0) {
    buf[pos++] = (6 << 3) | LEN;
    pos = writeVarint(buf, pos, reasonBytes);
    pos += buf.write(r.cancelReason, pos);
  }
  for (const e of events) {
    buf.set(e, pos);
    pos += e.length;
  }
  if (pos !== leadingBytes + size) throw new Error(`proto-codec: wrote ${pos - leadingBytes} bytes of a ${size}-byte watch response`);
  return buf;
}

// ---- leases ----

/** etcdserverpb.LeaseGrantRequest. */
export function decodeLeaseGrantRequest(buf: Uint8Array): { TTL: number; ID: bigint } {
  const r = new Reader(buf, 'LeaseGrantRequest');
  const end = buf.length;
  const m = { TTL: 0, ID: 0n };
  while (r.pos < end) {
    const tag = r.tag(end);
    switch (tag) {
      case (1 << 3) | VARINT: m.TTL = r.int64(end); break;
      case (2 << 3) | VARINT: m.ID = r.bigint64(end); break;
      default: r.skipOther(tag, end, leaseGrantFields);
    }
  }
  return m;
}

/** etcdserverpb.LeaseKeepAliveRequest: the lease id. */
export function decodeLeaseKeepAliveRequest(buf: Uint8Array): bigint {
  const r = new Reader(buf, 'LeaseKeepAliveRequest');
  const end = buf.length;
  let id = 0n;
  while (r.pos < end) {
    const tag = r.tag(end);
    if (tag === ((1 << 3) | VARINT)) id = r.bigint64(end);
    else r.skipOther(tag, end, idOnlyFields);
  }
  return id;
}

/** LeaseGrantResponse and LeaseKeepAliveResponse share their first fields: header, ID, TTL. */
function encodeLeaseResponse(header: HeaderWire, ID: bigint, TTL: number, error: string): Buffer {
  const hSize = headers.size(header);
  const errorBytes = error === '' ? 0 : Buffer.byteLength(error);
  const size = messageFieldSize(hSize) + (ID === 0n ? 0 : 1 + bigintSize(ID)) + numberFieldSize(TTL) + (errorBytes === 0 ? 0 : 1 + varintSize(errorBytes) + errorBytes);
  const buf = Buffer.allocUnsafe(size);
  let pos = headerField(buf, 0, header, hSize);
  if (ID !== 0n) {
    buf[pos++] = (2 << 3) | VARINT;
    const [lo, hi] = bigintHalves(ID);
    pos = writeVarint64(buf, pos, lo, hi);
  }
  pos = writeNumberField(buf, pos, (3 << 3) | VARINT, TTL);
  if (errorBytes !== 0) {
    buf[pos++] = (4 << 3) | LEN;
    pos = writeVarint(buf, pos, errorBytes);
    pos += buf.write(error, pos);
  }
  if (pos !== size) throw new Error(`proto-codec: wrote ${pos} bytes of a ${size}-byte lease response`);
  return buf;
}

export function encodeLeaseGrantResponse(header: HeaderWire, r: { ID: bigint; TTL: number; error: string }): Buffer {
  return encodeLeaseResponse(header, r.ID, r.TTL, r.error);
}

export function encodeLeaseKeepAliveResponse(header: HeaderWire, r: { ID: bigint; TTL: number }): Buffer {
  return encodeLeaseResponse(header, r.ID, r.TTL, '');
}

// ---- maintenance ----

/**
 * etcdserverpb.StatusRequest: no fields, but what it holds must still be well-formed. Status is
 * here because `etcdctl endpoint status` and monitoring poll it: it must not load protobufjs.
 */
export function decodeStatusRequest(buf: Uint8Array): Record<string, never> {
  const r = new Reader(buf, 'StatusRequest');
  const end = buf.length;
  while (r.pos < end) r.skip(r.tag(end), end, 0);
  return {};
}

export function encodeStatusResponse(header: HeaderWire, s: StatusBody): Buffer {
  const hSize = headers.size(header);
  const versionBytes = Buffer.byteLength(s.version);
  const size =
    messageFieldSize(hSize) +
    (versionBytes === 0 ? 0 : 1 + varintSize(versionBytes) + versionBytes) +
    numberFieldSize(s.dbSize) +
    numberFieldSize(s.leader) +
    numberFieldSize(s.raftIndex) +
    numberFieldSize(s.raftTerm) +
    numberFieldSize(s.raftAppliedIndex) +
    numberFieldSize(s.dbSizeInUse) +
    (s.isLearner ? 2 : 0);
  const buf = Buffer.allocUnsafe(size);
  let pos = headerField(buf, 0, header, hSize);
  if (versionBytes !== 0) {
    buf[pos++] = (2 << 3) | LEN;
    pos = writeVarint(buf, pos, versionBytes);
    pos += buf.write(s.version, pos);
  }
  pos = writeNumberField(buf, pos, (3 << 3) | VARINT, s.dbSize);
  pos = writeNumberField(buf, pos, (4 << 3) | VARINT, s.leader);
  pos = writeNumberField(buf, pos, (5 << 3) | VARINT, s.raftIndex);
  pos = writeNumberField(buf, pos, (6 << 3) | VARINT, s.raftTerm);
  pos = writeNumberField(buf, pos, (7 << 3) | VARINT, s.raftAppliedIndex);
  pos = writeNumberField(buf, pos, (9 << 3) | VARINT, s.dbSizeInUse);
  pos = writeBoolField(buf, pos, (10 << 3) | VARINT, s.isLearner);
  if (pos !== size) throw new Error(`proto-codec: wrote ${pos} bytes of a ${size}-byte status response`);
  return buf;
}
