// HPACK (RFC 7541), just enough for the authority shim in front of nghttp2: a decoder that mirrors
// a client encoder's dynamic table, and an encoder that writes literals without touching the
// peer's dynamic table (so a re-encoded block never desynchronises the server's decoder).
//
// Strings are kept as latin1 JS strings: header octets map one-to-one to UTF-16 code units.

/** The static table (RFC 7541 Appendix A), index 1 first. */
const staticTable: readonly (readonly [string, string])[] = [
  [':authority', ''], [':method', 'GET'], [':method', 'POST'], [':path', '/'], [':path', '/index.html'],
  [':scheme', 'http'], [':scheme', 'https'], [':status', '200'], [':status', '204'], [':status', '206'],
  [':status', '304'], [':status', '400'], [':status', '404'], [':status', '500'], ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'], ['accept-language', ''], ['accept-ranges', ''], ['accept', ''],
  ['access-control-allow-origin', ''], ['age', ''], ['allow', ''], ['authorization', ''], ['cache-control', ''],
  ['content-disposition', ''], ['content-encoding', ''], ['content-language', ''], ['content-length', ''],
  ['content-location', ''], ['content-range', ''], ['content-type', ''], ['cookie', ''], ['date', ''], ['etag', ''],
  ['expect', ''], ['expires', ''], ['from', ''], ['host', ''], ['if-match', ''], ['if-modified-since', ''],
  ['if-none-match', ''], ['if-range', ''], ['if-unmodified-since', ''], ['last-modified', ''], ['link', ''],
  ['location', ''], ['max-forwards', ''], ['proxy-authenticate', ''], ['proxy-authorization', ''], ['range', ''],
  ['referer', ''], ['refresh', ''], ['retry-after', ''], ['server', ''], ['set-cookie', ''],
  ['strict-transport-security', ''], ['transfer-encoding', ''], ['user-agent', ''], ['vary', ''], ['via', ''],
  ['www-authenticate', ''],
];

/** Static index of each name's first entry, for encoding names by index. */
const staticNameIndex = new Map<string, number>();
staticTable.forEach(([name], i) => {
  if (!staticNameIndex.has(name)) staticNameIndex.set(name, i + 1);
});

/**
 * Code length in bits of each symbol 0..256 (256 is EOS) of the HPACK Huffman code (RFC 7541
 * Appendix B), one letter each: 'a' is 5 bits, 'b' 6, ... The code is canonical (codes of equal
 * length are consecutive in symbol order, shorter codes first), so lengths alone define it.
 */
const huffmanLengthLetters =
  'isxxxxxxxtzxxzxxxxxxxxzxxxxxxxxxbffhibdgffdgdbbbaaabbbbbbbcdkbhf' +
  'ibccccccccccccccccccccccdcdioijbkabababbbaccbbbabcbaabccccckgjix' +
  'prpprrrsrssssststtrstssssqrsrsstrqprrssqsrrtqrssqqrqsrssprrrsrrs' +
  'vvporsruvvvwwvtuoqvwwvwtqqvvxwwwptpqrqqsrruuttvsvwvvwwwwwxwwwwwv' +
  'z';
const huffmanBitsMax = 30;
const eos = 256;

/** Canonical decoding tables: for each length, the first code, how many codes, and where its symbols start. */
const huffman = (() => {
  const lengths = Array.from(huffmanLengthLetters, (c) => c.charCodeAt(0) - 'a'.charCodeAt(0) + 5);
  if (lengths.length !== 257) throw new Error(`HPACK Huffman table has ${lengths.length} symbols, want 257`);
  const symbols = lengths.map((_, s) => s).sort((a, b) => lengths[a]! - lengths[b]! || a - b);
  const firstCode = new Array<number>(huffmanBitsMax + 1).fill(0);
  const count = new Array<number>(huffmanBitsMax + 1).fill(0);
  const offset = new Array<number>(huffmanBitsMax + 1).fill(0);
  for (const l of lengths) count[l]!++;
  let code = 0;
  let at = 0;
  for (let l = 1; l <= huffmanBitsMax; l++) {
    firstCode[l] = code;
    offset[l] = at;
    code = (code + count[l]!) * 2;
    at += count[l]!;
  }
  return { symbols, firstCode, count, offset };
})();

export class HpackError extends Error {}

function huffmanDecode(buf: Buffer, start: number, end: number): string {
  const out: number[] = [];
  let code = 0;
  let len = 0;
  for (let i = start; i < end; i++) {
    const byte = buf[i]!;
    for (let bit = 7; bit >= 0; bit--) {
      code = code * 2 + ((byte >> bit) & 1);
      len++;
      const k = code - huffman.firstCode[len]!;
      if (k < huffman.count[len]!) {
        const sym = huffman.symbols[huffman.offset[len]! + k]!;
        if (sym === eos) throw new HpackError('Huffman string contains EOS');
        out.push(sym);
        code = 0;
        len = 0;
      } else if (len === huffmanBitsMax) {
        throw new HpackError('invalid Huffman code');
      }
    }
  }
  // What is left must be padding: fewer than 8 bits, all ones (a prefix of EOS).
  if (len > 7 || code !== 2 ** len - 1) throw new HpackError('invalid Huffman padding');
  return String.fromCharCode(...out);
}

export interface HeaderField {
  name: string;
  value: string;
  /** Sent as "never indexed": re-encodings must keep it so (RFC 7541 §6.2.3). */
  sensitive: boolean;
}

/** Repeated literal values longer than this (encoded) are decoded each time, not kept. */
const literalBytesMax = 256;

/** Integers above this are refused: no header block of ours comes near it. */
const integerMax = 2 ** 28;

/**
 * Decodes header blocks in order, keeping the dynamic table the sender's encoder keeps.
 * `tableBytesMax` bounds the sizes a table size update may set (the SETTINGS_HEADER_TABLE_SIZE
 * the server announced, or more: the server's own decoder enforces the exact figure).
 */
export class HpackDecoder {
  /** Newest entry first, as HPACK indexes them. */
  private readonly dynamic: [string, string][] = [];
  private tableBytes = 0;
  private tableBytesLimit = 4096;
  /**
   * The last value sent as a literal without indexing, per static name index, with its encoded
   * bytes: a client that repeats one (nghttp2, so node:http2 and grpc-js, never indexes a :path
   * of 16 characters or more) gets the same string back without decoding it again, and every
   * waiting request holds that one string rather than a copy of its own.
   */
  private readonly literals: ({ raw: Buffer; value: string } | undefined)[] = [];

  constructor(private readonly tableBytesMax = 65_536) {}

  decode(block: Buffer): HeaderField[] {
    const fields: HeaderField[] = [];
    let pos = 0;
    const integer = (prefixBits: number): number => {
      if (pos >= block.length) throw new HpackError('header block ends inside an integer');
      const mask = 2 ** prefixBits - 1;
      let n = block[pos++]! & mask;
      if (n < mask) return n;
      let shift = 1;
      for (;;) {
        if (pos >= block.length) throw new HpackError('header block ends inside an integer');
        const b = block[pos++]!;
        n += (b & 0x7f) * shift;
        if (n > integerMax) throw new HpackError('integer too large');
        if ((b & 0x80) === 0) return n;
        shift *= 128;
      }
    };
    const string = (): string => {
      if (pos >= block.length) throw new HpackError('header block ends before a string');
      const huffmanCoded = (block[pos]! & 0x80) !== 0;
      const len = integer(7);
      if (pos + len > block.length) throw new HpackError('string runs past the header block');
      const s = huffmanCoded ? huffmanDecode(block, pos, pos + len) : block.toString('latin1', pos, pos + len);
      pos += len;
      return s;
    };
    const entry = (index: number): readonly [string, string] => {
      if (index === 0) throw new HpackError('index 0');
      const e = index <= staticTable.length ? staticTable[index - 1] : this.dynamic[index - staticTable.length - 1];
      if (!e) throw new HpackError(`index ${index} is outside the tables`);
      return e;
    };
    while (pos < block.length) {
      const b = block[pos]!;
      if (b & 0x80) {
        const [name, value] = entry(integer(7));
        fields.push({ name, value, sensitive: false });
      } else if (b & 0x40) {
        const index = integer(6);
        const name = index === 0 ? string() : entry(index)[0];
        const value = string();
        fields.push({ name, value, sensitive: false });
        this.insert(name, value);
      } else if (b & 0x20) {
        if (fields.length > 0) throw new HpackError('dynamic table size update after a header field');
        const size = integer(5);
        if (size > this.tableBytesMax) throw new HpackError(`dynamic table size ${size} exceeds ${this.tableBytesMax}`);
        this.tableBytesLimit = size;
        this.evict(0);
      } else {
        const sensitive = (b & 0x10) !== 0;
        const index = integer(4);
        const name = index === 0 ? string() : entry(index)[0];
        if (sensitive || index === 0 || index > staticTable.length) {
          fields.push({ name, value: string(), sensitive });
          continue;
        }
        // The value's encoded bytes (its length prefix and all) are compared with the last ones.
        const start = pos;
        const len = integer(7);
        if (pos + len > block.length) throw new HpackError('string runs past the header block');
        const end = pos + len;
        let value = this.repeated(index, block, start, end);
        if (value === undefined) {
          pos = start;
          value = string();
          if (end - start <= literalBytesMax) this.literals[index] = { raw: Buffer.from(block.subarray(start, end)), value };
        }
        pos = end;
        fields.push({ name, value, sensitive });
      }
    }
    return fields;
  }

  /** The string decoded last time at this name index from the same bytes, if they are. */
  private repeated(index: number, block: Buffer, start: number, end: number): string | undefined {
    const last = this.literals[index];
    if (last === undefined || last.raw.length !== end - start) return undefined;
    for (let i = 0; i < last.raw.length; i++) if (last.raw[i] !== block[start + i]) return undefined;
    return last.value;
  }

  private insert(name: string, value: string): void {
    const size = name.length + value.length + 32;
    this.evict(size);
    // An entry larger than the whole table empties it and is not added (RFC 7541 §4.4).
    if (size <= this.tableBytesLimit) {
      this.dynamic.unshift([name, value]);
      this.tableBytes += size;
    }
  }

  /** Drops the oldest entries until `room` more bytes fit. */
  private evict(room: number): void {
    while (this.tableBytes + room > this.tableBytesLimit && this.dynamic.length > 0) {
      const [name, value] = this.dynamic.pop()!;
      this.tableBytes -= name.length + value.length + 32;
    }
  }
}

function writeInteger(out: number[], firstByte: number, prefixBits: number, n: number): void {
  const mask = 2 ** prefixBits - 1;
  if (n < mask) {
    out.push(firstByte | n);
    return;
  }
  out.push(firstByte | mask);
  n -= mask;
  while (n >= 128) {
    out.push((n % 128) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
}

function writeString(out: number[], s: string): void {
  writeInteger(out, 0, 7, s.length);
  for (let i = 0; i < s.length; i++) out.push(s.charCodeAt(i) & 0xff);
}

/**
 * Encodes fields as literals without indexing (names by static index where there is one), so
 * the receiver's dynamic table is neither read nor changed.
 */
export function encodeLiterals(fields: readonly HeaderField[]): Buffer {
  const out: number[] = [];
  for (const f of fields) {
    const first = f.sensitive ? 0x10 : 0x00;
    const index = staticNameIndex.get(f.name);
    if (index !== undefined) {
      writeInteger(out, first, 4, index);
    } else {
      out.push(first);
      writeString(out, f.name);
    }
    writeString(out, f.value);
  }
  return Buffer.from(out);
}
