// The backend's contents, laid out as etcd lays out its bbolt file, so that etcd's snapshot
// format stays close at hand: the `key` bucket maps a revision to an mvccpb.KeyValue, `meta`
// holds consistent_index and the compaction revisions. See docs/architecture.md.

import type { BinaryString } from '../mvcc/bytes.ts';
import type { KeyValue } from '../mvcc/types.ts';
import type { BackendBatch, BackendOp } from '../seams.ts';

/** etcd's revBytesLen: main (8 bytes, big-endian), '_', sub (8 bytes, big-endian). */
export const revisionKeyBytes = 17;
/** etcd's markedRevBytesLen: a tombstone's key carries a trailing 't'. */
const tombstoneMark = 0x74;
const revisionSeparator = 0x5f;

export const metaKeys = {
  consistentIndex: new TextEncoder().encode('consistent_index'),
  finishedCompactRev: new TextEncoder().encode('finishedCompactRev'),
  scheduledCompactRev: new TextEncoder().encode('scheduledCompactRev'),
} as const;

export function revisionKey(main: number, sub: number, tombstone = false): Uint8Array {
  const bytes = new Uint8Array(tombstone ? revisionKeyBytes + 1 : revisionKeyBytes);
  writeRevisionKey(bytes, main, sub, tombstone);
  return bytes;
}

/** Writes a revision key at the start of `out` (recordPut shares the buffer with the record). */
function writeRevisionKey(out: Uint8Array, main: number, sub: number, tombstone: boolean): void {
  writeU64(out, 0, main);
  out[8] = revisionSeparator;
  writeU64(out, 9, sub);
  if (tombstone) out[revisionKeyBytes] = tombstoneMark;
}

export function parseRevisionKey(bytes: Uint8Array): { main: number; sub: number; tombstone: boolean } {
  const marked = bytes.length === revisionKeyBytes + 1 && bytes[revisionKeyBytes] === tombstoneMark;
  if ((bytes.length !== revisionKeyBytes && !marked) || bytes[8] !== revisionSeparator) {
    throw new Error(`backend: ${bytes.length}-byte key in bucket "key" is not a revision`);
  }
  return { main: readU64(bytes, 0), sub: readU64(bytes, 9), tombstone: marked };
}

export function encodeU64(n: number): Uint8Array {
  const bytes = new Uint8Array(8);
  writeU64(bytes, 0, n);
  return bytes;
}

export function decodeU64(bytes: Uint8Array): number {
  if (bytes.length !== 8) throw new Error(`backend: a u64 of ${bytes.length} bytes`);
  return readU64(bytes, 0);
}

function writeU64(bytes: Uint8Array, at: number, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`backend: ${n} is not a safe non-negative integer`);
  const high = Math.floor(n / 2 ** 32);
  const low = n >>> 0;
  bytes[at] = high >>> 24;
  bytes[at + 1] = (high >>> 16) & 0xff;
  bytes[at + 2] = (high >>> 8) & 0xff;
  bytes[at + 3] = high & 0xff;
  bytes[at + 4] = low >>> 24;
  bytes[at + 5] = (low >>> 16) & 0xff;
  bytes[at + 6] = (low >>> 8) & 0xff;
  bytes[at + 7] = low & 0xff;
}

function readU64(bytes: Uint8Array, at: number): number {
  if (at + 8 > bytes.length) throw new RangeError(`backend: a u64 at ${at} overruns ${bytes.length} bytes`);
  // Byte arithmetic rather than a DataView: a restart reads two per stored record.
  const high = bytes[at] * 2 ** 24 + ((bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3]);
  const low = bytes[at + 4] * 2 ** 24 + ((bytes[at + 5] << 16) | (bytes[at + 6] << 8) | bytes[at + 7]);
  if (high >= 2 ** 21) throw new RangeError(`backend: u64 ${(BigInt(high) << 32n) | BigInt(low)} beyond 2^53`);
  return high * 2 ** 32 + low;
}

/** The refusal every backend gives a batch that would move the applied index backwards. */
export function checkBatchIndex(batch: BackendBatch, applied: number): void {
  if (!Number.isSafeInteger(batch.appliedIndex) || batch.appliedIndex < 0) {
    throw new RangeError(`backend: applied index ${batch.appliedIndex} is not a safe non-negative integer`);
  }
  if (!batch.clear && batch.appliedIndex < applied) {
    throw new RangeError(`backend: batch at applied index ${batch.appliedIndex} is behind the stored ${applied}`);
  }
}

/** mvccpb.KeyValue (api/mvccpb/kv.proto) as the `key` bucket stores it: field numbers as etcd's. */
export type StoredKeyValue = KeyValue;

const wireVarint = 0;
const wireBytes = 2;

/** Bytes of `n` (a safe integer) as a protobuf varint: a negative int64 takes 10. */
export function varintBytes(n: number): number {
  if (n < 0) return 10;
  let bytes = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 0x80);
    bytes++;
  }
  return bytes;
}

/** Bytes of a length-delimited field holding `field` bytes (0 when empty: proto3 omits it). */
function bytesFieldLength(field: Uint8Array): number {
  return field.length === 0 ? 0 : 1 + varintBytes(field.length) + field.length;
}

function intFieldLength(n: number): number {
  return n === 0 ? 0 : 1 + varintBytes(n);
}

/** Writes `n` (a safe non-negative integer) as a varint at `at`; returns the end. */
function writeVarint(out: Uint8Array, at: number, n: number): number {
  while (n >= 0x80) {
    out[at++] = (n % 0x80) | 0x80;
    n = Math.floor(n / 0x80);
  }
  out[at++] = n;
  return at;
}

function writeBytesField(out: Uint8Array, at: number, field: number, bytes: Uint8Array): number {
  if (bytes.length === 0) return at;
  out[at] = (field << 3) | wireBytes;
  at = writeVarint(out, at + 1, bytes.length);
  out.set(bytes, at);
  return at + bytes.length;
}

function writeIntField(out: Uint8Array, at: number, field: number, n: number): number {
  if (n === 0) return at;
  out[at] = (field << 3) | wireVarint;
  return writeVarint(out, at + 1, n);
}

// Plain module functions, no per-call closures: this runs for every write the store applies.
export function encodeKeyValue(kv: StoredKeyValue): Uint8Array {
  const out = new Uint8Array(bytesFieldLength(kv.key) + keyValueTailBytes(kv.createRevision, kv.modRevision, kv.version, kv.value, kv.lease));
  writeKeyValueTail(out, writeBytesField(out, 0, 1, kv.key), kv.createRevision, kv.modRevision, kv.version, kv.value, kv.lease);
  return out;
}

/**
 * The `key`-bucket put of one record the store applies: its revision key (with the tombstone
 * mark when `version` is 0) and its mvccpb.KeyValue, as `revisionKey` and `encodeKeyValue`
 * write them, but both in one allocation and with the key written straight from its binary
 * string (one char per byte, as the key index holds it). This runs for every write and its result lives until the backend commits it (up to
 * the batch interval), long enough to survive scavenges: one buffer instead of two (the revision
 * key and the KeyValue), and no throwaway copy of the key, is less for V8 to copy and promote.
 */
export function recordPut(key: BinaryString, main: number, sub: number, createRevision: number, version: number, value: Uint8Array, lease: bigint): BackendOp {
  const keyBytes = version === 0 ? revisionKeyBytes + 1 : revisionKeyBytes;
  const keyField = key.length === 0 ? 0 : 1 + varintBytes(key.length) + key.length;
  const out = new Uint8Array(keyBytes + keyField + keyValueTailBytes(createRevision, main, version, value, lease));
  writeRevisionKey(out, main, sub, version === 0);
  let at = keyBytes;
  if (key.length > 0) {
    out[at] = (1 << 3) | wireBytes;
    at = writeVarint(out, at + 1, key.length);
    for (let i = 0; i < key.length; i++) out[at + i] = key.charCodeAt(i);
    at += key.length;
  }
  writeKeyValueTail(out, at, createRevision, main, version, value, lease);
  return { bucket: 'key', key: out.subarray(0, keyBytes), value: out.subarray(keyBytes) };
}

/** Bytes of a KeyValue's fields after its key (create, mod revision, version, value, lease). */
function keyValueTailBytes(createRevision: number, modRevision: number, version: number, value: Uint8Array, lease: bigint): number {
  let leaseBytes = 0;
  if (lease !== 0n) {
    leaseBytes = 2;
    for (let v = BigInt.asUintN(64, lease); v >= 0x80n; v >>= 7n) leaseBytes++;
  }
  return intFieldLength(createRevision) + intFieldLength(modRevision) + intFieldLength(version) + bytesFieldLength(value) + leaseBytes;
}

function writeKeyValueTail(out: Uint8Array, at: number, createRevision: number, modRevision: number, version: number, value: Uint8Array, lease: bigint): void {
  at = writeIntField(out, at, 2, createRevision);
  at = writeIntField(out, at, 3, modRevision);
  at = writeIntField(out, at, 4, version);
  at = writeBytesField(out, at, 5, value);
  if (lease === 0n) return;
  out[at++] = (6 << 3) | wireVarint;
  // Negative int64 (lease ids may be) are ten bytes of two's complement, as protobuf writes them.
  let v = BigInt.asUintN(64, lease);
  while (v >= 0x80n) {
    out[at++] = Number(v & 0x7fn) | 0x80;
    v >>= 7n;
  }
  out[at] = Number(v);
}

/** Reads protobuf fields from `bytes`, front to back. */
class ProtoReader {
  at = 0;
  constructor(
    public bytes: Uint8Array,
    private readonly what: string,
  ) {}

  /** Starts over on `bytes`, so one reader serves a scan of millions of records. */
  reset(bytes: Uint8Array): void {
    this.bytes = bytes;
    this.at = 0;
  }

  get done(): boolean {
    return this.at >= this.bytes.length;
  }

  varint(): bigint {
    let v = 0n;
    for (let shift = 0n; shift < 70n; shift += 7n) {
      if (this.at >= this.bytes.length) throw new Error(`backend: ${this.what} truncated in a varint`);
      const b = this.bytes[this.at++];
      v |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return v;
    }
    throw new Error(`backend: ${this.what} varint longer than 10 bytes`);
  }

  /** A varint that must be a safe non-negative integer (revisions, versions, lengths). */
  count(): number {
    // Most are one to four bytes: read those without BigInt.
    let n = 0;
    for (let scale = 1, i = this.at; i < this.bytes.length && scale < 2 ** 28; i++, scale *= 0x80) {
      const b = this.bytes[i];
      n += (b & 0x7f) * scale;
      if (b < 0x80) {
        this.at = i + 1;
        return n;
      }
    }
    const v = BigInt.asIntN(64, this.varint());
    if (v < 0n || v > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`backend: ${this.what} number ${v} out of range`);
    return Number(v);
  }

  bytesField(): Uint8Array {
    const length = this.count();
    if (this.at + length > this.bytes.length) throw new Error(`backend: ${this.what} field overruns the record`);
    const view = this.bytes.subarray(this.at, this.at + length);
    this.at += length;
    return view;
  }
}

/** Decodes an mvccpb.KeyValue; `key` and `value` are views into `bytes`. Throws on malformed input. */
export function decodeKeyValue(bytes: Uint8Array): StoredKeyValue {
  const kv: StoredKeyValue = { key: empty, createRevision: 0, modRevision: 0, version: 0, value: empty, lease: 0n };
  const r = new ProtoReader(bytes, 'KeyValue');
  while (!r.done) {
    const tag = bytes[r.at++];
    const field = tag >> 3;
    const wire = tag & 7;
    if (wire === wireBytes && field === 1) kv.key = r.bytesField();
    else if (wire === wireBytes && field === 5) kv.value = r.bytesField();
    else if (wire === wireVarint && field === 2) kv.createRevision = r.count();
    else if (wire === wireVarint && field === 3) kv.modRevision = r.count();
    else if (wire === wireVarint && field === 4) kv.version = r.count();
    else if (wire === wireVarint && field === 6) kv.lease = BigInt.asIntN(64, r.varint());
    else throw new Error(`backend: KeyValue has unexpected field ${field} (wire type ${wire})`);
  }
  return kv;
}

const empty = new Uint8Array(0);

/**
 * What the key index keeps of an mvccpb.KeyValue: every field but the value, and the key as a
 * position in the record (`keyStart`, `keyEnd`) rather than a view. Filled in place by
 * decodeKeyValueHeader, so a restart's scan allocates nothing per record for it.
 */
export interface KeyValueHeader {
  keyStart: number;
  keyEnd: number;
  createRevision: number;
  modRevision: number;
  version: number;
  lease: bigint;
}

export function emptyKeyValueHeader(): KeyValueHeader {
  return { keyStart: 0, keyEnd: 0, createRevision: 0, modRevision: 0, version: 0, lease: 0n };
}

const headerReader = new ProtoReader(empty, 'KeyValue');

/**
 * Decodes an mvccpb.KeyValue into `out` without touching the value's bytes (it is stepped over,
 * not copied or viewed): the restart's key-index rebuild reads millions of records and needs
 * none of their values. Throws on malformed input, as decodeKeyValue.
 */
export function decodeKeyValueHeader(bytes: Uint8Array, out: KeyValueHeader): void {
  const r = headerReader;
  r.reset(bytes);
  out.keyStart = out.keyEnd = out.createRevision = out.modRevision = out.version = 0;
  out.lease = 0n;
  while (!r.done) {
    const tag = bytes[r.at++];
    const field = tag >> 3;
    const wire = tag & 7;
    if (wire === wireBytes && (field === 1 || field === 5)) {
      const length = r.count();
      const start = r.at;
      if (start + length > bytes.length) throw new Error('backend: KeyValue field overruns the record');
      r.at = start + length;
      if (field === 1) {
        out.keyStart = start;
        out.keyEnd = start + length;
      }
    } else if (wire === wireVarint && field === 2) out.createRevision = r.count();
    else if (wire === wireVarint && field === 3) out.modRevision = r.count();
    else if (wire === wireVarint && field === 4) out.version = r.count();
    else if (wire === wireVarint && field === 6) out.lease = BigInt.asIntN(64, r.varint());
    else throw new Error(`backend: KeyValue has unexpected field ${field} (wire type ${wire})`);
  }
  // The reader must not keep a view of the backend's buffer past the call.
  r.reset(empty);
}

/** meshkv's own meta key: the next lease id the state machine picks (etcd's server picks ids itself). */
export const nextLeaseIdKey = new TextEncoder().encode('meshkv_next_lease_id');

/** etcd's lease bucket key: the id as 8 bytes, big-endian (int64 taken as uint64). */
export function leaseKey(id: bigint): Uint8Array {
  const bytes = new Uint8Array(8);
  new DataView(bytes.buffer).setBigUint64(0, BigInt.asUintN(64, id));
  return bytes;
}

export function encodeInt64(n: bigint): Uint8Array {
  const bytes = new Uint8Array(8);
  new DataView(bytes.buffer).setBigInt64(0, BigInt.asIntN(64, n));
  return bytes;
}

export function decodeInt64(bytes: Uint8Array): bigint {
  if (bytes.length !== 8) throw new Error(`backend: an int64 of ${bytes.length} bytes`);
  return new DataView(bytes.buffer, bytes.byteOffset, 8).getBigInt64(0);
}

/** leasepb.Lease (etcd's lease/leasepb/lease.proto): ID 1, TTL 2, RemainingTTL 3. */
export interface StoredLease {
  id: bigint;
  ttlSeconds: number;
  remainingTtlSeconds: number;
}

export function encodeLease(lease: StoredLease): Uint8Array {
  const out: number[] = [];
  const varint = (field: number, n: bigint): void => {
    if (n === 0n) return;
    out.push(field << 3);
    let v = BigInt.asUintN(64, n);
    while (v >= 0x80n) {
      out.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    out.push(Number(v));
  };
  varint(1, lease.id);
  varint(2, BigInt(lease.ttlSeconds));
  varint(3, BigInt(lease.remainingTtlSeconds));
  return new Uint8Array(out);
}

export function decodeLease(bytes: Uint8Array): StoredLease {
  const fields = [0n, 0n, 0n];
  let at = 0;
  while (at < bytes.length) {
    const tag = bytes[at++];
    const field = tag >> 3;
    if ((tag & 7) !== wireVarint || field < 1 || field > 3) throw new Error(`backend: Lease has unexpected field ${field} (wire type ${tag & 7})`);
    let v = 0n;
    for (let shift = 0n; ; shift += 7n) {
      if (at >= bytes.length || shift >= 70n) throw new Error('backend: Lease has a truncated or overlong varint');
      const b = bytes[at++];
      v |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) break;
    }
    fields[field - 1] = BigInt.asIntN(64, v);
  }
  const seconds = (n: bigint, what: string): number => {
    if (n < 0n || n > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`backend: Lease ${what} ${n} out of range`);
    return Number(n);
  };
  return { id: fields[0], ttlSeconds: seconds(fields[1], 'TTL'), remainingTtlSeconds: seconds(fields[2], 'RemainingTTL') };
}
