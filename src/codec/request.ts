// The encoding of replicated MVCC requests in Raft entries: msgpack, with int64 lease ids as
// BigInt and byte strings as Uint8Array. Entries are written once and decoded on every member.
//
// A put as the etcd API builds it (all six fields, in PutRequest's order) is encoded and decoded
// by hand: the bytes are exactly msgpackr's, and the decoded request is exactly what msgpackr
// would return (byte fields copied into buffers of their own), so members with and without this
// path read each other's entries. It saves msgpackr's object walk, its map-key strings and one
// copy of the entry on the put's path, which every member takes once per put. Anything else,
// and any put whose bytes do not have that exact layout, goes through msgpackr.

import { Packr } from 'msgpackr';
import type { ApplyRequest, PutRequest } from '../mvcc/types.ts';

const packr = new Packr({ int64AsType: 'bigint', useRecords: false, moreTypes: true });

/** The first byte of every encoded request: lets a later format be told apart. */
export const requestFormatVersion = 1;

export function encodeRequest(req: ApplyRequest): Uint8Array {
  const put = req.kind === 'put' ? encodeCanonicalPut(req) : null;
  if (put !== null) return put;
  const body = packr.pack(req);
  const out = new Uint8Array(body.length + 1);
  out[0] = requestFormatVersion;
  out.set(body, 1);
  return out;
}

export class RequestDecodeError extends Error {}

export function decodeRequest(data: Uint8Array): ApplyRequest {
  if (data.length < 2 || data[0] !== requestFormatVersion) {
    throw new RequestDecodeError(`request format ${data[0]} is not ${requestFormatVersion}`);
  }
  const put = decodeCanonicalPut(data);
  if (put !== null) return put;
  let req: unknown;
  try {
    req = packr.unpack(data.subarray(1));
  } catch (err) {
    throw new RequestDecodeError(`undecodable request: ${(err as Error).message}`);
  }
  if (!req || typeof req !== 'object' || typeof (req as ApplyRequest).kind !== 'string' || typeof (req as ApplyRequest).request !== 'object') {
    throw new RequestDecodeError('request without kind');
  }
  return req as ApplyRequest;
}

// ---- the canonical put, by hand ----

/** msgpack's fixstr header and the string's bytes (ASCII only). */
function fixstr(s: string): number[] {
  if (s.length > 31 || !/^[\x20-\x7e]*$/.test(s)) throw new Error(`${JSON.stringify(s)} is not a short ASCII string`);
  return [0xa0 | s.length, ...Array.from(s, (c) => c.charCodeAt(0))];
}

/** The outer object's keys, then the request's, in the order the encoder writes them. */
const applyRequestKeys = ['kind', 'request'] as const;
const putKeys = ['key', 'value', 'lease', 'prevKv', 'ignoreValue', 'ignoreLease'] as const;

/** Version, map16 of 2 {kind: 'put', request: map16 of 6 {key: …: what msgpackr writes before the key's bytes. */
const putHead = new Uint8Array([
  requestFormatVersion,
  0xde, 0, applyRequestKeys.length,
  ...fixstr('kind'), ...fixstr('put'),
  ...fixstr('request'),
  0xde, 0, putKeys.length,
  ...fixstr('key'),
]);
const valueName = new Uint8Array(fixstr('value'));
/** The lease's name and msgpack's int64 marker (msgpackr writes every BigInt in int64 range so). */
const leaseName = new Uint8Array([...fixstr('lease'), 0xd3]);
const prevKvName = new Uint8Array(fixstr('prevKv'));
const ignoreValueName = new Uint8Array(fixstr('ignoreValue'));
const ignoreLeaseName = new Uint8Array(fixstr('ignoreLease'));
const msgpackFalse = 0xc2;
const msgpackTrue = 0xc3;
/** msgpackr's extension type for typed arrays ('t'), and its code for Uint8Array. */
const typedArrayExt = 0x74;
const uint8ArrayCode = 1;
const int64Min = -(2n ** 63n);
const int64Max = 2n ** 63n - 1n;

/** The bytes of an ext header and type codes before a Uint8Array's bytes (msgpackr's writeExtBuffer). */
function extHeaderBytes(byteLength: number): number {
  const extLength = byteLength + 1;
  return (extLength < 0x100 ? 2 : extLength < 0x10000 ? 3 : 5) + 2;
}

/** True if `o`'s enumerable keys are exactly `keys`, in order (the order msgpackr writes them). */
function hasExactKeys(o: object, keys: readonly string[]): boolean {
  let i = 0;
  for (const k in o) {
    if (k !== keys[i]) return false;
    i++;
  }
  return i === keys.length;
}

function isPlainBytes(v: unknown): v is Uint8Array {
  return v instanceof Uint8Array && v.constructor === Uint8Array;
}

/** The entry for a put of the canonical shape, or null for msgpackr to encode. */
function encodeCanonicalPut(req: { kind: 'put'; request: PutRequest }): Uint8Array | null {
  const r = req.request;
  if (!hasExactKeys(req, applyRequestKeys) || typeof r !== 'object' || r === null || !hasExactKeys(r, putKeys)) return null;
  const { key, value, lease, prevKv, ignoreValue, ignoreLease } = r;
  if (!isPlainBytes(key) || !isPlainBytes(value)) return null;
  if (typeof lease !== 'bigint' || lease < int64Min || lease > int64Max) return null;
  if (typeof prevKv !== 'boolean' || typeof ignoreValue !== 'boolean' || typeof ignoreLease !== 'boolean') return null;
  const total =
    putHead.length + extHeaderBytes(key.length) + key.length +
    valueName.length + extHeaderBytes(value.length) + value.length +
    leaseName.length + 8 + prevKvName.length + 1 + ignoreValueName.length + 1 + ignoreLeaseName.length + 1;
  const out = new Uint8Array(total);
  out.set(putHead, 0);
  let at = writeBytesField(out, putHead.length, key);
  out.set(valueName, at);
  at = writeBytesField(out, at + valueName.length, value);
  out.set(leaseName, at);
  at += leaseName.length;
  // The buffer starts zeroed: lease 0 (no lease), the common case, is already written.
  if (lease !== 0n) new DataView(out.buffer, at, 8).setBigInt64(0, lease);
  at += 8;
  at = writeBool(out, writeBool(out, writeBool(out, at, prevKvName, prevKv), ignoreValueName, ignoreValue), ignoreLeaseName, ignoreLease);
  if (at !== total) throw new Error(`canonical put filled ${at} of ${total} bytes`);
  return out;
}

/** Writes `bytes` as msgpackr's Uint8Array extension at `at`; returns the offset after it. */
function writeBytesField(out: Uint8Array, at: number, bytes: Uint8Array): number {
  const extLength = bytes.length + 1;
  if (extLength < 0x100) {
    out[at++] = 0xc7;
  } else if (extLength < 0x10000) {
    out[at++] = 0xc8;
    out[at++] = extLength >>> 8;
  } else {
    out[at++] = 0xc9;
    out[at++] = extLength >>> 24;
    out[at++] = (extLength >>> 16) & 0xff;
    out[at++] = (extLength >>> 8) & 0xff;
  }
  out[at++] = extLength & 0xff;
  out[at++] = typedArrayExt;
  out[at++] = uint8ArrayCode;
  out.set(bytes, at);
  return at + bytes.length;
}

function writeBool(out: Uint8Array, at: number, name: Uint8Array, v: boolean): number {
  out.set(name, at);
  at += name.length;
  out[at] = v ? msgpackTrue : msgpackFalse;
  return at + 1;
}

/** The offset after `bytes` if `data` holds them at `at`, else -1. */
function matchAt(data: Uint8Array, at: number, bytes: Uint8Array): number {
  if (at < 0 || at + bytes.length > data.length) return -1;
  for (let i = 0; i < bytes.length; i++) if (data[at + i] !== bytes[i]) return -1;
  return at + bytes.length;
}

/**
 * Where the bytes of a Uint8Array extension at `at` start; its length goes to
 * `bytesFieldLength`. -1 if `data` holds no such extension there.
 */
let bytesFieldLength = 0;
function bytesFieldAt(data: Uint8Array, at: number): number {
  if (at < 0 || at + 2 > data.length) return -1;
  const marker = data[at]!;
  let extLength: number;
  if (marker === 0xc7) {
    extLength = data[at + 1]!;
    at += 2;
  } else if (marker === 0xc8) {
    if (at + 3 > data.length) return -1;
    extLength = (data[at + 1]! << 8) | data[at + 2]!;
    at += 3;
  } else if (marker === 0xc9) {
    if (at + 5 > data.length) return -1;
    extLength = ((data[at + 1]! << 24) | (data[at + 2]! << 16) | (data[at + 3]! << 8) | data[at + 4]!) >>> 0;
    at += 5;
  } else {
    return -1;
  }
  if (extLength < 1 || at + 1 + extLength > data.length || data[at] !== typedArrayExt || data[at + 1] !== uint8ArrayCode) return -1;
  bytesFieldLength = extLength - 1;
  return at + 2;
}

/** The msgpack boolean at `at` as 0 or 1, or -1. */
function boolAt(data: Uint8Array, at: number): number {
  const b = at >= 0 && at < data.length ? data[at] : undefined;
  return b === msgpackTrue ? 1 : b === msgpackFalse ? 0 : -1;
}

/**
 * The put in `data` if its bytes have exactly the canonical layout, or null (msgpackr then
 * decodes it, or says why it cannot). Byte fields are copies, as msgpackr's are: a request
 * kept by the store does not pin the entry's buffer.
 */
function decodeCanonicalPut(data: Uint8Array): ApplyRequest | null {
  const keyAt = bytesFieldAt(data, matchAt(data, 0, putHead));
  if (keyAt < 0) return null;
  const keyEnd = keyAt + bytesFieldLength;
  const valueAt = bytesFieldAt(data, matchAt(data, keyEnd, valueName));
  if (valueAt < 0) return null;
  const valueEnd = valueAt + bytesFieldLength;
  const leaseAt = matchAt(data, valueEnd, leaseName);
  if (leaseAt < 0 || leaseAt + 8 > data.length) return null;
  const prevKvAt = matchAt(data, leaseAt + 8, prevKvName);
  const prevKv = boolAt(data, prevKvAt);
  const ignoreValueAt = prevKv < 0 ? -1 : matchAt(data, prevKvAt + 1, ignoreValueName);
  const ignoreValue = boolAt(data, ignoreValueAt);
  const ignoreLeaseAt = ignoreValue < 0 ? -1 : matchAt(data, ignoreValueAt + 1, ignoreLeaseName);
  const ignoreLease = boolAt(data, ignoreLeaseAt);
  if (ignoreLease < 0 || ignoreLeaseAt + 1 !== data.length) return null;
  let leaseIsZero = true;
  for (let i = leaseAt; i < leaseAt + 8; i++) if (data[i] !== 0) leaseIsZero = false;
  const lease = leaseIsZero ? 0n : new DataView(data.buffer, data.byteOffset + leaseAt, 8).getBigInt64(0);
  const request: Required<PutRequest> = {
    key: Uint8Array.prototype.slice.call(data, keyAt, keyEnd),
    value: Uint8Array.prototype.slice.call(data, valueAt, valueEnd),
    lease,
    prevKv: prevKv === 1,
    ignoreValue: ignoreValue === 1,
    ignoreLease: ignoreLease === 1,
  };
  return { kind: 'put', request };
}
