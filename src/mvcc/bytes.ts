// Keys live inside the store as "binary strings": one UTF-16 code unit per byte, every unit
// below 256. JavaScript compares strings by code unit, so `<` on binary strings is exactly a
// bytewise comparison of the keys, and V8 stores such strings one byte per character.

/** Bytes as a binary string (see the file comment). Values are stored this way too. */
export type BinaryString = string;
/** A key as a binary string. */
export type KeyString = BinaryString;

const CHUNK_CHARS = 0x2000;

export function toBinaryString(bytes: Uint8Array): BinaryString {
  // fromCharCode over a whole chunk builds one flat one-byte string; appending char by char
  // would build a chain of cons strings, many times larger until V8 flattens it.
  if (bytes.length <= CHUNK_CHARS) return String.fromCharCode.apply(null, bytes as unknown as number[]);
  const chunks: string[] = [];
  for (let offset = 0; offset < bytes.length; offset += CHUNK_CHARS) {
    chunks.push(String.fromCharCode.apply(null, bytes.subarray(offset, offset + CHUNK_CHARS) as unknown as number[]));
  }
  return chunks.join('');
}

export function fromBinaryString(text: BinaryString): Uint8Array {
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}

export function compareKeyStrings(a: KeyString, b: KeyString): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export const EMPTY_BYTES: Uint8Array = new Uint8Array(0);

/**
 * The end of a range request as the index walks it: `null` for a single key, `''` for "every
 * key from `key` on" (etcd's range_end "\0"), otherwise the exclusive end.
 */
export type RangeEnd = KeyString | null;

export function toRangeEnd(rangeEnd: Uint8Array | undefined): RangeEnd {
  if (rangeEnd === undefined || rangeEnd.length === 0) return null;
  if (rangeEnd.length === 1 && rangeEnd[0] === 0) return '';
  return toBinaryString(rangeEnd);
}

export function inRange(key: KeyString, start: KeyString, end: RangeEnd): boolean {
  if (end === null) return key === start;
  return key >= start && (end === '' || key < end);
}
