import { describe, expect, it } from 'vitest';
import { crc32c } from '../../src/codec/crc32c.ts';

const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);

/** Bit-at-a-time reference: slow, obviously correct. */
function crc32cReference(data: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of data) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return ~c >>> 0;
}

describe('crc32c', () => {
  it('matches the published check values', () => {
    expect(crc32c(ascii('123456789'))).toBe(0xe3069283);
    expect(crc32c(new Uint8Array(0))).toBe(0);
    expect(crc32c(ascii('a'))).toBe(0xc1d04330);
    // RFC 3720 (iSCSI) appendix B.4 vectors.
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa);
    expect(crc32c(new Uint8Array(32).fill(0xff))).toBe(0x62a8ab43);
    expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i))).toBe(0x46dd794e);
    expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i))).toBe(0x113fdb5c);
  });

  it('agrees with a bit-at-a-time reference on every length and alignment', () => {
    const data = Uint8Array.from({ length: 300 }, (_, i) => (i * 7919 + 13) & 0xff);
    for (let start = 0; start < 9; start++) {
      for (let end = start; end <= data.length; end += 1 + (end % 5)) {
        expect(crc32c(data, 0, start, end)).toBe(crc32cReference(data.subarray(start, end)));
      }
    }
  });

  it('agrees with the reference on views at any byte offset of their buffer', () => {
    // The sliced path reads 32-bit words through a DataView of the view's own buffer.
    const backing = Uint8Array.from({ length: 1100 }, (_, i) => (i * 2654435761) >>> 24);
    for (let offset = 0; offset < 8; offset++) {
      for (const length of [15, 16, 17, 31, 64, 1000]) {
        const view = backing.subarray(offset, offset + length);
        expect(crc32c(view)).toBe(crc32cReference(view));
        expect(crc32c(view, 0, 3, length - 1)).toBe(crc32cReference(view.subarray(3, length - 1)));
      }
    }
  });

  it('continues a checksum across chunks', () => {
    const data = ascii('The quick brown fox jumps over the lazy dog');
    const whole = crc32c(data);
    for (let cut = 0; cut <= data.length; cut++) {
      expect(crc32c(data, crc32c(data, 0, 0, cut), cut)).toBe(whole);
    }
  });

  it('rejects a range outside the data', () => {
    expect(() => crc32c(new Uint8Array(4), 0, 2, 8)).toThrow(/range \[2, 8\) outside data of 4 bytes/);
  });
});

describe('crc32c incremental state', () => {
  it('piecewise updates equal the one-shot checksum', async () => {
    const { CRC32C_INITIAL, crc32cUpdate, crc32cUpdateBinaryString, crc32cFinish } = await import('../../src/codec/crc32c.ts');
    const bytes = new TextEncoder().encode('123456789');
    expect(crc32cFinish(crc32cUpdate(CRC32C_INITIAL, bytes))).toBe(0xe3069283);
    expect(crc32cFinish(crc32cUpdateBinaryString(crc32cUpdate(CRC32C_INITIAL, bytes.subarray(0, 4)), '56789'))).toBe(0xe3069283);
    const long = Uint8Array.from({ length: 100 }, (_, i) => i * 31);
    expect(crc32cFinish(crc32cUpdate(crc32cUpdate(CRC32C_INITIAL, long.subarray(0, 37)), long.subarray(37)))).toBe(crc32cReference(long));
  });
});
