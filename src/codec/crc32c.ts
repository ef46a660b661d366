// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum etcd uses for its
// backend hash. Incremental: start from CRC32C_INITIAL, update, then finish.

const POLYNOMIAL_REFLECTED = 0x82f63b78;

const TABLE: Uint32Array = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let bit = 0; bit < 8; bit++) c = c & 1 ? (c >>> 1) ^ POLYNOMIAL_REFLECTED : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** The running state before any byte: feed it to the update functions, then `crc32cFinish`. */
export const CRC32C_INITIAL = 0xffffffff;

export function crc32cUpdate(state: number, bytes: Uint8Array): number {
  let c = state;
  for (let i = 0; i < bytes.length; i++) c = TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return c >>> 0;
}

/** Feeds a binary string (one byte per char code, each < 256). */
export function crc32cUpdateBinaryString(state: number, text: string): number {
  let c = state;
  for (let i = 0; i < text.length; i++) c = TABLE[(c ^ text.charCodeAt(i)) & 0xff] ^ (c >>> 8);
  return c >>> 0;
}

/** Feeds an unsigned integer below 2^53 as 8 little-endian bytes. */
export function crc32cUpdateUint53(state: number, value: number): number {
  let c = state;
  let low = value >>> 0;
  let high = Math.floor(value / 0x1_0000_0000) >>> 0;
  for (let i = 0; i < 4; i++, low >>>= 8) c = TABLE[(c ^ low) & 0xff] ^ (c >>> 8);
  for (let i = 0; i < 4; i++, high >>>= 8) c = TABLE[(c ^ high) & 0xff] ^ (c >>> 8);
  return c >>> 0;
}

export function crc32cFinish(state: number): number {
  return (state ^ 0xffffffff) >>> 0;
}

/** CRC-32C of one buffer. */
export function crc32c(bytes: Uint8Array): number {
  return crc32cFinish(crc32cUpdate(CRC32C_INITIAL, bytes));
}
