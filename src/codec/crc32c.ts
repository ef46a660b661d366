// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as used by etcd's WAL, iSCSI and ext4.
// Slicing-by-8 over eight 256-entry tables: about 8x fewer table steps than byte-at-a-time.
// Isomorphic: plain typed arrays, no runtime imports.

const POLY_REFLECTED = 0x82f63b78;
const TABLE_COUNT = 8;

/** tables[k][b]: the CRC of byte b followed by k zero bytes. */
const tables: Uint32Array[] = buildTables();

function buildTables(): Uint32Array[] {
  const out: Uint32Array[] = [];
  const t0 = new Uint32Array(256);
  for (let b = 0; b < 256; b++) {
    let c = b;
    for (let bit = 0; bit < 8; bit++) c = c & 1 ? (c >>> 1) ^ POLY_REFLECTED : c >>> 1;
    t0[b] = c >>> 0;
  }
  out.push(t0);
  for (let k = 1; k < TABLE_COUNT; k++) {
    const prev = out[k - 1];
    const t = new Uint32Array(256);
    for (let b = 0; b < 256; b++) t[b] = ((prev[b] >>> 8) ^ t0[prev[b] & 0xff]) >>> 0;
    out.push(t);
  }
  return out;
}

/**
 * Continues a CRC-32C over `data[start, end)`. Start a fresh checksum with `crc = 0`;
 * `crc32c(b, crc32c(a))` equals the checksum of `a` followed by `b`. O(end - start).
 */
export function crc32c(data: Uint8Array, crc = 0, start = 0, end = data.length): number {
  if (start < 0 || end > data.length || start > end) {
    throw new RangeError(`crc32c: range [${start}, ${end}) outside data of ${data.length} bytes`);
  }
  const [t0, t1, t2, t3, t4, t5, t6, t7] = tables;
  let c = ~crc >>> 0;
  let i = start;
  const end8 = end - ((end - start) & 7);
  while (i < end8) {
    const lo = c ^ (data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24));
    c =
      t7[lo & 0xff] ^
      t6[(lo >>> 8) & 0xff] ^
      t5[(lo >>> 16) & 0xff] ^
      t4[lo >>> 24] ^
      t3[data[i + 4]] ^
      t2[data[i + 5]] ^
      t1[data[i + 6]] ^
      t0[data[i + 7]];
    i += 8;
  }
  while (i < end) c = t0[(c ^ data[i++]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

// The same checksum, fed piecewise from values that are not byte arrays (the MVCC hash feeds
// keys held as binary strings and revision numbers). Start from CRC32C_INITIAL, update, then
// finish; crc32cFinish(crc32cUpdate(CRC32C_INITIAL, b)) === crc32c(b).

/** The running state before any byte. */
export const CRC32C_INITIAL = 0xffffffff;

export function crc32cUpdate(state: number, bytes: Uint8Array): number {
  const t0 = tables[0];
  let c = state;
  for (let i = 0; i < bytes.length; i++) c = t0[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return c >>> 0;
}

/** Feeds a binary string (one byte per char code, each < 256). */
export function crc32cUpdateBinaryString(state: number, text: string): number {
  const t0 = tables[0];
  let c = state;
  for (let i = 0; i < text.length; i++) c = t0[(c ^ text.charCodeAt(i)) & 0xff] ^ (c >>> 8);
  return c >>> 0;
}

/** Feeds an unsigned integer below 2^53 as 8 little-endian bytes. */
export function crc32cUpdateUint53(state: number, value: number): number {
  const t0 = tables[0];
  let c = state;
  let low = value >>> 0;
  let high = Math.floor(value / 0x1_0000_0000) >>> 0;
  for (let i = 0; i < 4; i++, low >>>= 8) c = t0[(c ^ low) & 0xff] ^ (c >>> 8);
  for (let i = 0; i < 4; i++, high >>>= 8) c = t0[(c ^ high) & 0xff] ^ (c >>> 8);
  return c >>> 0;
}

export function crc32cFinish(state: number): number {
  return (state ^ 0xffffffff) >>> 0;
}
