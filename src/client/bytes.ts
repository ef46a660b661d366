// Keys and values: strings are UTF-8, Uint8Arrays are used as given.

/** A key or value as users pass it. */
export type Bytes = string | Uint8Array;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function toBytes(value: Bytes): Uint8Array {
  return typeof value === 'string' ? encoder.encode(value) : value;
}

export function toText(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}

/** etcd's "\0" range end: every key >= the start key. */
export const RANGE_END_ALL = new Uint8Array([0]);

/**
 * The range end that covers every key starting with `prefix` (clientv3's GetPrefixRangeEnd):
 * the prefix with its last byte below 0xff incremented and the rest dropped; "\0" when every
 * byte is 0xff or the prefix is empty.
 */
export function prefixEnd(prefix: Uint8Array): Uint8Array {
  for (let i = prefix.length - 1; i >= 0; i--) {
    if (prefix[i] < 0xff) {
      const end = prefix.slice(0, i + 1);
      end[i]++;
      return end;
    }
  }
  return RANGE_END_ALL;
}

/** The range of keys starting with `prefix` (clientv3's WithPrefix: an empty prefix is every key). */
export function prefixRange(prefix: Uint8Array): { key: Uint8Array; rangeEnd: Uint8Array } {
  if (prefix.length === 0) return { key: new Uint8Array([0]), rangeEnd: RANGE_END_ALL };
  return { key: prefix, rangeEnd: prefixEnd(prefix) };
}

/** `parts` joined into one array. (An array, not rest arguments: a snapshot's frames may be many.) */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  let offset = 0;
  for (const part of parts) offset += part.length;
  const out = new Uint8Array(offset);
  offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

export function startsWith(bytes: Uint8Array, prefix: Uint8Array): boolean {
  if (bytes.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (bytes[i] !== prefix[i]) return false;
  return true;
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && startsWith(a, b);
}
