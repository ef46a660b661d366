import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { decodeRequest, encodeRequest, RequestDecodeError } from '../../src/codec/request.ts';
import type { ApplyRequest, PutRequest } from '../../src/mvcc/types.ts';

// What every member wrote before the hand-written put path, and what older members still read.
const reference = new Packr({ int64AsType: 'bigint', useRecords: false, moreTypes: true });
const referenceEncode = (req: ApplyRequest): Uint8Array => new Uint8Array([1, ...reference.pack(req)]);
const referenceDecode = (data: Uint8Array): unknown => reference.unpack(data.subarray(1));

/** A deterministic byte pattern, so a misplaced byte shows. */
function bytes(length: number, seed: number): Uint8Array {
  const b = new Uint8Array(length);
  for (let i = 0; i < length; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

/** Compares two puts field by field (toEqual walks large byte arrays element by element: too slow here). */
function expectSamePut(actual: ApplyRequest, expected: ApplyRequest): void {
  expect(actual.kind).toBe('put');
  expect(Object.keys(actual)).toEqual(Object.keys(expected));
  const a = actual.request as Required<PutRequest>;
  const e = expected.request as Required<PutRequest>;
  expect(Object.keys(a)).toEqual(Object.keys(e));
  expect(Buffer.from(a.key).equals(Buffer.from(e.key))).toBe(true);
  expect(Buffer.from(a.value).equals(Buffer.from(e.value))).toBe(true);
  expect(a.lease).toBe(e.lease);
  expect([a.prevKv, a.ignoreValue, a.ignoreLease]).toEqual([e.prevKv, e.ignoreValue, e.ignoreLease]);
}

function put(keyBytes: number, valueBytes: number, lease: bigint, flags = 0): ApplyRequest {
  const request: PutRequest = {
    key: bytes(keyBytes, 1),
    value: bytes(valueBytes, 2),
    lease,
    prevKv: (flags & 1) !== 0,
    ignoreValue: (flags & 2) !== 0,
    ignoreLease: (flags & 4) !== 0,
  };
  return { kind: 'put', request };
}

// Around each msgpack ext header's size limits: the typed-array ext carries one type byte more.
const sizes = [0, 1, 15, 16, 253, 254, 255, 256, 1024, 65533, 65534, 65535, 65536, 70_000];
const leases = [0n, 1n, 127n, 128n, 2n ** 32n, 2n ** 63n - 1n, -1n, -(2n ** 63n)];

describe('replicated request encoding', () => {
  it('writes a put exactly as msgpackr does, so members of either version read it', () => {
    for (const keyBytes of sizes) {
      for (const valueBytes of [0, 255, 65534, 70_000]) {
        const req = put(keyBytes, valueBytes, 7n, 5);
        expect(Buffer.from(encodeRequest(req)).equals(Buffer.from(referenceEncode(req))), `key ${keyBytes} B, value ${valueBytes} B`).toBe(true);
      }
    }
    for (const lease of leases) {
      for (let flags = 0; flags < 8; flags++) {
        const req = put(10, 256, lease, flags);
        expect(Buffer.from(encodeRequest(req)).equals(Buffer.from(referenceEncode(req))), `lease ${lease}, flags ${flags}`).toBe(true);
      }
    }
  });

  it('reads a put as msgpackr does, byte fields in buffers of their own', () => {
    for (const keyBytes of sizes) {
      for (const lease of leases) {
        const req = put(keyBytes, 300, lease, keyBytes % 8);
        // An entry inside a larger buffer, as it arrives in a peer's frame.
        const entry = referenceEncode(req);
        const frame = new Uint8Array(entry.length + 20);
        frame.set(entry, 7);
        const decoded = decodeRequest(frame.subarray(7, 7 + entry.length));
        expectSamePut(decoded, referenceDecode(entry) as ApplyRequest);
        expectSamePut(decoded, req);
        const r = decoded.request as Required<PutRequest>;
        for (const field of [r.key, r.value]) {
          expect(field.constructor).toBe(Uint8Array);
          expect(field.byteOffset).toBe(0);
          expect(field.buffer.byteLength).toBe(field.length);
        }
        frame.fill(0);
        expectSamePut(decoded, req);
      }
    }
  });

  it('round-trips puts of other shapes and other requests through msgpackr unchanged', () => {
    const others: ApplyRequest[] = [
      { kind: 'put', request: { key: bytes(3, 1), value: bytes(4, 2) } },
      { kind: 'put', request: { key: Buffer.from('k'), value: bytes(4, 2), lease: 0n, prevKv: false, ignoreValue: false, ignoreLease: false } },
      { kind: 'put', request: { value: bytes(4, 2), key: bytes(3, 1), lease: 0n, prevKv: false, ignoreValue: false, ignoreLease: false } as PutRequest },
      { kind: 'put', request: { key: bytes(3, 1), value: bytes(4, 2), lease: 2n ** 63n, prevKv: false, ignoreValue: false, ignoreLease: false } },
      { kind: 'deleteRange', request: { key: bytes(3, 1), rangeEnd: bytes(3, 9) } },
    ];
    for (const req of others) {
      const encoded = encodeRequest(req);
      expect(Buffer.from(encoded).equals(Buffer.from(referenceEncode(req)))).toBe(true);
      expect(decodeRequest(encoded)).toEqual(referenceDecode(encoded));
    }
  });

  it('refuses a truncated or altered put as it refused it before', () => {
    const entry = encodeRequest(put(16, 256, 3n, 1));
    for (const cut of [entry.length - 1, entry.length - 9, 40, 2]) {
      expect(() => decodeRequest(entry.subarray(0, cut)), `cut at ${cut}`).toThrow(RequestDecodeError);
    }
    const badBool = entry.slice();
    badBool[badBool.length - 1] = 0x05; // a fixint where a boolean was: msgpackr reads it, as before
    expect(decodeRequest(badBool)).toEqual(referenceDecode(badBool));
    expect(() => decodeRequest(new Uint8Array([2, ...entry.subarray(1)]))).toThrow(RequestDecodeError);
  });
});
