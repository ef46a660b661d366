import { describe, expect, it } from 'vitest';
import {
  decodeKeyValue,
  decodeLease,
  encodeKeyValue,
  encodeLease,
  leaseKey,
  parseRevisionKey,
  recordPut,
  revisionKey,
} from '../../src/backend/layout.ts';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const bytes = (text: string) => new TextEncoder().encode(text);

describe("the backend's etcd layout", () => {
  it('encodes a KeyValue as etcd does (protobuf, mvccpb field numbers, zero fields omitted)', () => {
    const kv = { key: bytes('a'), createRevision: 2, modRevision: 3, version: 1, value: bytes('b'), lease: 0n };
    expect(hex(encodeKeyValue(kv))).toBe('0a0161100218032001' + '2a0162');
    expect(decodeKeyValue(encodeKeyValue(kv))).toEqual(kv);
    // A tombstone: key and mod revision only.
    expect(hex(encodeKeyValue({ key: bytes('a'), createRevision: 0, modRevision: 300, version: 0, value: new Uint8Array(0), lease: 0n }))).toBe('0a016118ac02');
  });

  it('round-trips large revisions and negative lease ids (ten-byte varints)', () => {
    const kv = { key: new Uint8Array([0, 255]), createRevision: 2 ** 53 - 2, modRevision: 2 ** 53 - 1, version: 7, value: new Uint8Array(300).fill(9), lease: -5n };
    const encoded = encodeKeyValue(kv);
    expect(decodeKeyValue(encoded)).toEqual(kv);
    expect(hex(encoded.subarray(encoded.length - 11))).toBe('30fbffffffffffffffff01');
  });

  it("writes a record's put (revision key and KeyValue in one buffer) byte for byte as revisionKey and encodeKeyValue do", () => {
    const binary = (b: Uint8Array) => String.fromCharCode(...b);
    const cases = [
      { key: bytes('a'), createRevision: 2, modRevision: 3, sub: 0, version: 1, value: bytes('b'), lease: 0n },
      // A tombstone: no value, the key marked with 't'.
      { key: bytes('a'), createRevision: 0, modRevision: 300, sub: 4, version: 0, value: new Uint8Array(0), lease: 0n },
      { key: new Uint8Array([0, 255, 128]), createRevision: 2 ** 53 - 2, modRevision: 2 ** 53 - 1, sub: 2 ** 20, version: 7, value: new Uint8Array(300).fill(9), lease: -5n },
      { key: new Uint8Array(200).fill(0x61), createRevision: 9, modRevision: 9, sub: 1, version: 1, value: new Uint8Array(5_000).fill(1), lease: 0x7fffffffn },
    ];
    for (const { sub, ...kv } of cases) {
      const op = recordPut(binary(kv.key), kv.modRevision, sub, kv.createRevision, kv.version, kv.value, kv.lease);
      expect(op.bucket).toBe('key');
      expect(hex(op.key)).toBe(hex(revisionKey(kv.modRevision, sub, kv.version === 0)));
      expect(hex(op.value!)).toBe(hex(encodeKeyValue(kv)));
      expect(decodeKeyValue(op.value!)).toEqual(kv);
      // One allocation: the key and the value are views of the same buffer.
      expect(op.key.buffer).toBe(op.value!.buffer);
    }
  });

  it('refuses malformed KeyValues with a reason', () => {
    expect(() => decodeKeyValue(new Uint8Array([0x0a, 0x05, 0x61]))).toThrow(/overruns/);
    expect(() => decodeKeyValue(new Uint8Array([0x38, 0x01]))).toThrow(/unexpected field 7/);
    expect(() => decodeKeyValue(new Uint8Array([0x10, 0x80]))).toThrow(/truncated/);
  });

  it('keys revisions as etcd does: 8-byte main, "_", 8-byte sub, big-endian, "t" for tombstones, in revision order', () => {
    expect(hex(revisionKey(258, 3))).toBe('0000000000000102' + '5f' + '0000000000000003');
    expect(hex(revisionKey(258, 3, true))).toBe('00000000000001025f000000000000000374');
    expect(parseRevisionKey(revisionKey(2 ** 40 + 5, 9, true))).toEqual({ main: 2 ** 40 + 5, sub: 9, tombstone: true });
    const order = [revisionKey(1, 0), revisionKey(1, 1, true), revisionKey(2, 0), revisionKey(256, 0)].map(hex);
    expect([...order].sort()).toEqual(order);
    expect(() => parseRevisionKey(bytes('consistent_index'))).toThrow(/not a revision/);
  });

  it('stores leases as leasepb.Lease under their big-endian id', () => {
    const lease = { id: 0x1234n, ttlSeconds: 60, remainingTtlSeconds: 17 };
    expect(hex(encodeLease(lease))).toBe('08b424103c1811');
    expect(decodeLease(encodeLease(lease))).toEqual(lease);
    expect(hex(leaseKey(0x1234n))).toBe('0000000000001234');
  });
});
