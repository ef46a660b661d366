// bbolt's file format (etcd-io/bbolt), read and written from bytes: the format of etcd's
// backend file and of the snapshot files `etcdctl snapshot save` writes. Pure: no I/O, no Node.
//
// A file is a run of pages of `pageBytes` each. Every page starts with a 16-byte header: id
// (u64), flags (u16), count (u16), overflow (u32: how many more pages the page spans). Pages 0
// and 1 are meta pages (two, so that a torn write of one leaves the other); the valid one with
// the higher transaction id wins. A meta names the root bucket's root page, the freelist page
// and the high-water page id, and ends with an FNV-64a checksum of its fields. A bucket is a
// B+tree: branch pages hold (first key, child page) elements, leaf pages (flags, key, value)
// elements, each element a fixed 16-byte record pointing at its key bytes further in the page.
// A leaf element flagged as a bucket holds a nested bucket's header (root page, sequence); a
// root page of 0 means the bucket is inline: its one leaf page follows the header in the value.
// All integers are little-endian (as on the machines etcd runs on).

export const boltPageBytes = 4096;
const pageHeaderBytes = 16;
const elementBytes = 16;
const bucketHeaderBytes = 16;
const metaBytes = 64;
/** Bytes of the meta fields the checksum covers (every field before it). */
const metaChecksummedBytes = 56;
const boltMagic = 0xed0cdaed;
const boltVersion = 2;

const branchPageFlag = 0x01;
const leafPageFlag = 0x02;
const metaPageFlag = 0x04;
const freelistPageFlag = 0x10;
const bucketLeafFlag = 0x01;
/** A meta's freelist field when the freelist is not stored (bbolt's NoFreelistSync). */
const noFreelist = 0xffff_ffff_ffff_ffffn;
/** A page header's count field at this value means the freelist's count is in its first u64. */
const countInBody = 0xffff;

/** Bucket trees deeper than this are refused as damaged (a real tree of 2^31 entries is ~10 deep). */
const treeDepthMax = 64;
/** bbolt's MaxKeySize. */
export const boltKeyBytesMax = 32768;
/** bbolt's MaxValueSize. */
export const boltValueBytesMax = 2 ** 31 - 2;

/** Bytes that are not a bbolt database, or a damaged one. Names what is wrong and where. */
export class BoltFormatError extends Error {
  override readonly name = 'BoltFormatError';
}

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();

function bucketName(name: string | Uint8Array): Uint8Array {
  return typeof name === 'string' ? textEncoder.encode(name) : name;
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

function fnv64a(bytes: Uint8Array): bigint {
  let hash = 0xcbf29ce484222325n;
  for (const b of bytes) hash = BigInt.asUintN(64, (hash ^ BigInt(b)) * 0x100000001b3n);
  return hash;
}

// ---- reading ----

interface Meta {
  pageBytes: number;
  rootPage: number;
  freelistPage: number | null;
  /** The high-water mark: pages at or beyond it are not in use. */
  pageCount: number;
  txid: bigint;
}

/** One entry of a bucket: a key and its value, or a nested bucket (value null). */
export interface BoltEntry {
  key: Uint8Array;
  value: Uint8Array | null;
}

/**
 * A bbolt database read from its bytes. Checks the meta pages on open and each page as it is
 * visited; throws BoltFormatError on anything out of place. Keys and values are views into the
 * file's bytes.
 */
export class BoltReader {
  readonly pageBytes: number;
  readonly txid: bigint;
  /** Pages the database uses (its high-water mark). */
  readonly pageCount: number;
  private readonly view: DataView;
  private readonly rootPage: number;

  constructor(private readonly file: Uint8Array) {
    this.view = new DataView(file.buffer, file.byteOffset, file.byteLength);
    const meta = this.pickMeta();
    this.pageBytes = meta.pageBytes;
    this.txid = meta.txid;
    this.pageCount = meta.pageCount;
    this.rootPage = meta.rootPage;
    if (meta.pageCount * meta.pageBytes > file.length) {
      throw new BoltFormatError(`bbolt: the meta says ${meta.pageCount} pages of ${meta.pageBytes} bytes, the file has ${file.length} bytes`);
    }
    if (meta.freelistPage !== null) this.checkFreelist(meta.freelistPage);
  }

  /** The names of the top-level buckets, in key order. */
  bucketNames(): string[] {
    const names: string[] = [];
    this.walk(this.rootPage, 0, (key, value, flags) => {
      if (flags & bucketLeafFlag) names.push(textDecoder.decode(key));
      else throw new BoltFormatError(`bbolt: the root holds a plain key ${JSON.stringify(textDecoder.decode(key))}; only buckets belong there`);
    });
    return names;
  }

  /**
   * Visits a top-level bucket's entries in key order (nested buckets with value null). Returns
   * false when there is no such bucket.
   */
  forEach(name: string | Uint8Array, visit: (key: Uint8Array, value: Uint8Array | null) => void): boolean {
    const header = this.rootEntry(bucketName(name));
    if (header === null) return false;
    this.walkBucket(header, 1, visit);
    return true;
  }

  /** A top-level bucket's entries, in key order. */
  entries(name: string | Uint8Array): BoltEntry[] | null {
    const out: BoltEntry[] = [];
    return this.forEach(name, (key, value) => out.push({ key, value })) ? out : null;
  }

  private rootEntry(name: Uint8Array): Uint8Array | null {
    let found: Uint8Array | null = null;
    this.walk(this.rootPage, 0, (key, value, flags) => {
      if (found === null && flags & bucketLeafFlag && compareBytes(key, name) === 0) found = value;
    });
    return found;
  }

  private walkBucket(header: Uint8Array, depth: number, visit: (key: Uint8Array, value: Uint8Array | null) => void): void {
    if (header.length < bucketHeaderBytes) throw new BoltFormatError(`bbolt: a bucket header of ${header.length} bytes`);
    const h = new DataView(header.buffer, header.byteOffset, header.length);
    const root = h.getBigUint64(0, true);
    const each = (key: Uint8Array, value: Uint8Array, flags: number) => visit(key, flags & bucketLeafFlag ? null : value);
    if (root !== 0n) {
      this.walk(this.pageId(root, 'a bucket root'), depth, each);
      return;
    }
    // Inline: the bucket's one leaf page is the rest of the value.
    const page = header.subarray(bucketHeaderBytes);
    if (page.length < pageHeaderBytes) throw new BoltFormatError(`bbolt: an inline bucket of ${page.length} bytes`);
    const p = new DataView(page.buffer, page.byteOffset, page.length);
    if (p.getUint16(8, true) !== leafPageFlag) throw new BoltFormatError(`bbolt: an inline bucket's page has flags ${hex(p.getUint16(8, true))}, not a leaf's`);
    this.leafElements(page, p.getUint16(10, true), 'an inline bucket', each);
  }

  private pageId(id: bigint, what: string): number {
    if (id < 2n || id >= BigInt(this.pageCount)) throw new BoltFormatError(`bbolt: ${what} at page ${id}, outside pages 2..${this.pageCount - 1}`);
    return Number(id);
  }

  /** The bytes of page `id` with its overflow pages, after checking they lie in the file. */
  private page(id: number): { bytes: Uint8Array; flags: number; count: number } {
    const at = id * this.pageBytes;
    const pageId = this.view.getBigUint64(at, true);
    if (pageId !== BigInt(id)) throw new BoltFormatError(`bbolt: page ${id} says it is page ${pageId}`);
    const overflow = this.view.getUint32(at + 12, true);
    if (id + overflow >= this.pageCount) throw new BoltFormatError(`bbolt: page ${id} overflows ${overflow} pages past the high-water mark ${this.pageCount}`);
    return {
      bytes: this.file.subarray(at, at + (overflow + 1) * this.pageBytes),
      flags: this.view.getUint16(at + 8, true),
      count: this.view.getUint16(at + 10, true),
    };
  }

  private walk(id: number, depth: number, visit: (key: Uint8Array, value: Uint8Array, flags: number) => void): void {
    if (depth > treeDepthMax) throw new BoltFormatError(`bbolt: a tree deeper than ${treeDepthMax} levels at page ${id} (a cycle?)`);
    const page = this.page(id);
    if (page.flags === leafPageFlag) {
      this.leafElements(page.bytes, page.count, `page ${id}`, visit);
      return;
    }
    if (page.flags !== branchPageFlag) throw new BoltFormatError(`bbolt: page ${id} has flags ${hex(page.flags)}, not a branch or leaf page's`);
    const p = new DataView(page.bytes.buffer, page.bytes.byteOffset, page.bytes.length);
    checkElements(page.bytes, page.count, `page ${id}`);
    for (let i = 0; i < page.count; i++) {
      const at = pageHeaderBytes + i * elementBytes;
      const child = p.getBigUint64(at + 8, true);
      this.walk(this.pageId(child, `page ${id} element ${i}'s child`), depth + 1, visit);
    }
  }

  private leafElements(bytes: Uint8Array, count: number, what: string, visit: (key: Uint8Array, value: Uint8Array, flags: number) => void): void {
    checkElements(bytes, count, what);
    const p = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
    let previous: Uint8Array | null = null;
    for (let i = 0; i < count; i++) {
      const at = pageHeaderBytes + i * elementBytes;
      const flags = p.getUint32(at, true);
      const start = at + p.getUint32(at + 4, true);
      const keyBytes = p.getUint32(at + 8, true);
      const valueBytes = p.getUint32(at + 12, true);
      if (start + keyBytes + valueBytes > bytes.length) throw new BoltFormatError(`bbolt: ${what} element ${i} overruns its page`);
      const key = bytes.subarray(start, start + keyBytes);
      if (previous !== null && compareBytes(previous, key) >= 0) throw new BoltFormatError(`bbolt: ${what} element ${i}'s key is not above the one before it`);
      previous = key;
      visit(key, bytes.subarray(start + keyBytes, start + keyBytes + valueBytes), flags);
    }
  }

  private pickMeta(): Meta {
    const problems: string[] = [];
    let best: Meta | null = null;
    // The page size is not known before a meta is read: meta 0 is at 0, meta 1 one page in.
    const first = this.readMeta(0, problems);
    const second = first ?? this.guessSecondMeta(problems);
    for (const meta of [first, first === null ? second : this.readMeta(first.pageBytes, problems)]) {
      if (meta !== null && (best === null || meta.txid > best.txid)) best = meta;
    }
    if (best === null) throw new BoltFormatError(`bbolt: no valid meta page (${problems.join('; ')})`);
    return best;
  }

  /** Meta 1 when meta 0 is damaged: tried at the usual page sizes. */
  private guessSecondMeta(problems: string[]): Meta | null {
    for (const pageBytes of [4096, 8192, 16384, 65536]) {
      if (pageBytes + pageHeaderBytes + metaBytes > this.file.length) break;
      const ignored: string[] = [];
      const meta = this.readMeta(pageBytes, ignored);
      if (meta !== null && meta.pageBytes === pageBytes) return meta;
    }
    problems.push('meta page 1 not found at any usual page size');
    return null;
  }

  private readMeta(at: number, problems: string[]): Meta | null {
    const what = `meta page at byte ${at}`;
    if (at + pageHeaderBytes + metaBytes > this.file.length) {
      problems.push(`${what}: the file of ${this.file.length} bytes is too short`);
      return null;
    }
    const v = this.view;
    if (v.getUint16(at + 8, true) !== metaPageFlag) {
      problems.push(`${what}: flags ${hex(v.getUint16(at + 8, true))}, not a meta page's`);
      return null;
    }
    const m = at + pageHeaderBytes;
    if (v.getUint32(m, true) !== boltMagic) {
      problems.push(`${what}: magic ${hex(v.getUint32(m, true))}, not bbolt's`);
      return null;
    }
    if (v.getUint32(m + 4, true) !== boltVersion) {
      problems.push(`${what}: version ${v.getUint32(m + 4, true)}, expected ${boltVersion}`);
      return null;
    }
    const checksum = v.getBigUint64(m + metaChecksummedBytes, true);
    if (fnv64a(this.file.subarray(m, m + metaChecksummedBytes)) !== checksum) {
      problems.push(`${what}: checksum mismatch`);
      return null;
    }
    const pageBytes = v.getUint32(m + 8, true);
    if (pageBytes < 1024 || pageBytes > 65536 || (pageBytes & (pageBytes - 1)) !== 0) {
      problems.push(`${what}: page size ${pageBytes}`);
      return null;
    }
    const freelist = v.getBigUint64(m + 32, true);
    const pageCount = v.getBigUint64(m + 40, true);
    const root = v.getBigUint64(m + 16, true);
    if (pageCount > BigInt(Number.MAX_SAFE_INTEGER) || root >= pageCount || (freelist !== noFreelist && freelist >= pageCount)) {
      problems.push(`${what}: root page ${root} or freelist page ${freelist} beyond the high-water mark ${pageCount}`);
      return null;
    }
    return {
      pageBytes,
      rootPage: Number(root),
      freelistPage: freelist === noFreelist ? null : Number(freelist),
      pageCount: Number(pageCount),
      txid: v.getBigUint64(m + 48, true),
    };
  }

  private checkFreelist(id: number): void {
    const page = this.page(id);
    if (page.flags !== freelistPageFlag) throw new BoltFormatError(`bbolt: freelist page ${id} has flags ${hex(page.flags)}`);
    const p = new DataView(page.bytes.buffer, page.bytes.byteOffset, page.bytes.length);
    let count = page.count;
    let at = pageHeaderBytes;
    if (count === countInBody) {
      count = Number(p.getBigUint64(at, true));
      at += 8;
    }
    if (at + count * 8 > page.bytes.length) throw new BoltFormatError(`bbolt: freelist page ${id} lists ${count} pages, more than it holds`);
  }
}

function checkElements(bytes: Uint8Array, count: number, what: string): void {
  if (pageHeaderBytes + count * elementBytes > bytes.length) throw new BoltFormatError(`bbolt: ${what} has ${count} elements, more than fit in ${bytes.length} bytes`);
}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

// ---- writing ----

/** Where the writer's pages go. */
export interface BoltSink {
  /** Pages from page 3 on, in page order: each call is one page with its overflow pages. */
  append(pages: Uint8Array): void;
}

interface BranchElement {
  key: Uint8Array;
  page: number;
}

interface RootElement {
  name: Uint8Array;
  /** A bucket header, with the inline page after it when the bucket is inline. */
  value: Uint8Array;
}

/**
 * Writes a bbolt database front to back, streaming: pages go to the sink as soon as they are
 * full, so memory holds one leaf and the branch elements (one per page written), not the data.
 * Buckets are written one at a time, keys ascending; `finish()` returns the first pages (two
 * metas and an empty freelist), which belong at the start of the file.
 *
 * Pages are filled completely (bbolt's own writes fill to half, leaving room to insert); bbolt
 * splits them as usual when the file is written to later. A bucket whose one leaf fits in a
 * quarter page is written inline, as bbolt does.
 */
export class BoltWriter {
  /** The next page id to hand out: 0 and 1 are the metas, 2 the freelist. */
  private nextPage = 3;
  private readonly root: RootElement[] = [];
  private open: BucketBuilder | null = null;
  private finished = false;

  constructor(
    private readonly sink: BoltSink,
    readonly pageBytes = boltPageBytes,
  ) {
    if (pageBytes < 1024 || (pageBytes & (pageBytes - 1)) !== 0) throw new RangeError(`bbolt: page size ${pageBytes} is not a power of two >= 1024`);
  }

  /** Starts a top-level bucket; names must not repeat. Ends the bucket written before. */
  bucket(name: string | Uint8Array): BucketBuilder {
    this.endBucket();
    if (this.finished) throw new Error('bbolt: the writer is finished');
    const bytes = bucketName(name);
    if (bytes.length === 0 || bytes.length > boltKeyBytesMax) throw new RangeError(`bbolt: a bucket name of ${bytes.length} bytes`);
    if (this.root.some((e) => compareBytes(e.name, bytes) === 0)) throw new Error(`bbolt: bucket ${JSON.stringify(textDecoder.decode(bytes))} written twice`);
    this.open = new BucketBuilder(bytes, this.pageBytes, (page) => this.writePage(page));
    return this.open;
  }

  /** Ends the writing: returns pages 0, 1 and 2, to be written at the start of the file. */
  finish(): Uint8Array {
    this.endBucket();
    if (this.finished) throw new Error('bbolt: the writer is finished');
    this.finished = true;
    this.root.sort((a, b) => compareBytes(a.name, b.name));
    const rootPage = writeTree(
      this.root.map((e) => ({ key: e.name, value: e.value, flags: bucketLeafFlag })),
      this.pageBytes,
      (page) => this.writePage(page),
    );
    const head = new Uint8Array(3 * this.pageBytes);
    // Both metas describe the same tree; bbolt opens the one with the higher txid and writes the next transaction over the other.
    writeMeta(head, 0, this.pageBytes, rootPage, this.nextPage, 2n);
    writeMeta(head, this.pageBytes, this.pageBytes, rootPage, this.nextPage, 1n);
    const freelist = new DataView(head.buffer, 2 * this.pageBytes, this.pageBytes);
    freelist.setBigUint64(0, 2n, true);
    freelist.setUint16(8, freelistPageFlag, true);
    return head;
  }

  /** Pages in the finished file (the high-water mark). */
  get pageCount(): number {
    return this.nextPage;
  }

  private endBucket(): void {
    if (this.open === null) return;
    this.root.push({ name: this.open.name, value: this.open.end() });
    this.open = null;
  }

  /** Assigns the next page id to `page` (a node's bytes, whole pages), stamps it and sends it. */
  private writePage(page: Uint8Array): number {
    const id = this.nextPage;
    const pages = page.length / this.pageBytes;
    const v = new DataView(page.buffer, page.byteOffset, page.length);
    v.setBigUint64(0, BigInt(id), true);
    v.setUint32(12, pages - 1, true);
    this.nextPage += pages;
    this.sink.append(page);
    return id;
  }
}

interface LeafElement {
  key: Uint8Array;
  value: Uint8Array;
  flags: number;
}

/** One bucket being written: keys ascending. */
export class BucketBuilder {
  private leaf: LeafElement[] = [];
  private leafBytes = pageHeaderBytes;
  /** One element per leaf page written so far. */
  private readonly leaves: BranchElement[] = [];
  private last: Uint8Array | null = null;
  private ended = false;

  constructor(
    readonly name: Uint8Array,
    private readonly pageBytes: number,
    private readonly writePage: (page: Uint8Array) => number,
  ) {}

  /** Adds a key and its value; keys must be strictly ascending (bytewise). Neither is copied: both must stay unchanged until the bucket ends. */
  put(key: Uint8Array, value: Uint8Array): void {
    if (this.ended) throw new Error(`bbolt: bucket ${JSON.stringify(textDecoder.decode(this.name))} is ended`);
    if (key.length === 0 || key.length > boltKeyBytesMax) throw new RangeError(`bbolt: a key of ${key.length} bytes (1..${boltKeyBytesMax})`);
    if (value.length > boltValueBytesMax) throw new RangeError(`bbolt: a value of ${value.length} bytes (max ${boltValueBytesMax})`);
    if (this.last !== null && compareBytes(this.last, key) >= 0) throw new Error(`bbolt: keys out of order in bucket ${JSON.stringify(textDecoder.decode(this.name))}`);
    this.last = key;
    const bytes = elementBytes + key.length + value.length;
    if (this.leaf.length > 0 && this.leafBytes + bytes > this.pageBytes) this.flushLeaf();
    this.leaf.push({ key, value, flags: 0 });
    this.leafBytes += bytes;
  }

  private flushLeaf(): void {
    const page = leafPage(this.leaf, this.leafBytes, this.pageBytes);
    this.leaves.push({ key: this.leaf[0].key.slice(), page: this.writePage(page) });
    this.leaf = [];
    this.leafBytes = pageHeaderBytes;
  }

  /** The bucket's value in its parent: its header, with its page inline when small. */
  end(): Uint8Array {
    this.ended = true;
    if (this.leaves.length === 0 && this.leafBytes <= this.pageBytes / 4) {
      const value = new Uint8Array(bucketHeaderBytes + this.leafBytes);
      value.set(leafPage(this.leaf, this.leafBytes, this.leafBytes), bucketHeaderBytes);
      return value;
    }
    if (this.leaf.length > 0) this.flushLeaf();
    const root = this.leaves.length === 1 ? this.leaves[0].page : writeBranches(this.leaves, this.pageBytes, this.writePage);
    const value = new Uint8Array(bucketHeaderBytes);
    new DataView(value.buffer).setBigUint64(0, BigInt(root), true);
    return value;
  }
}

function pagesFor(bytes: number, pageBytes: number): number {
  return Math.max(1, Math.ceil(bytes / pageBytes));
}

/** A leaf page (id and overflow left for writePage) of `bytes` used bytes, padded to whole pages of `pageBytes`. */
function leafPage(elements: readonly LeafElement[], bytes: number, pageBytes: number): Uint8Array {
  const page = new Uint8Array(pagesFor(bytes, pageBytes) * pageBytes);
  const v = new DataView(page.buffer);
  v.setUint16(8, leafPageFlag, true);
  v.setUint16(10, elements.length, true);
  let data = pageHeaderBytes + elements.length * elementBytes;
  elements.forEach((e, i) => {
    const at = pageHeaderBytes + i * elementBytes;
    v.setUint32(at, e.flags, true);
    v.setUint32(at + 4, data - at, true);
    v.setUint32(at + 8, e.key.length, true);
    v.setUint32(at + 12, e.value.length, true);
    page.set(e.key, data);
    page.set(e.value, data + e.key.length);
    data += e.key.length + e.value.length;
  });
  return page;
}

function branchPage(elements: readonly BranchElement[], bytes: number, pageBytes: number): Uint8Array {
  const page = new Uint8Array(pagesFor(bytes, pageBytes) * pageBytes);
  const v = new DataView(page.buffer);
  v.setUint16(8, branchPageFlag, true);
  v.setUint16(10, elements.length, true);
  let data = pageHeaderBytes + elements.length * elementBytes;
  elements.forEach((e, i) => {
    const at = pageHeaderBytes + i * elementBytes;
    v.setUint32(at, data - at, true);
    v.setUint32(at + 4, e.key.length, true);
    v.setBigUint64(at + 8, BigInt(e.page), true);
    page.set(e.key, data);
    data += e.key.length;
  });
  return page;
}

/** The largest element count a page's u16 count field holds (0xffff is the freelist's escape). */
const pageElementsMax = 0xfffe;

/** Writes branch levels over `children` until one page is left; returns its id. */
function writeBranches(children: readonly BranchElement[], pageBytes: number, writePage: (page: Uint8Array) => number): number {
  let level = children;
  while (level.length > 1) {
    const up: BranchElement[] = [];
    let group: BranchElement[] = [];
    let bytes = pageHeaderBytes;
    const flush = () => {
      up.push({ key: group[0].key, page: writePage(branchPage(group, bytes, pageBytes)) });
      group = [];
      bytes = pageHeaderBytes;
    };
    for (const child of level) {
      const size = elementBytes + child.key.length;
      if (group.length > 0 && (bytes + size > pageBytes || group.length === pageElementsMax)) flush();
      group.push(child);
      bytes += size;
    }
    flush();
    level = up;
  }
  return level[0].page;
}

/** Writes a whole tree of leaf elements held in memory (the root bucket); returns its root page. */
function writeTree(elements: readonly LeafElement[], pageBytes: number, writePage: (page: Uint8Array) => number): number {
  const leaves: BranchElement[] = [];
  let group: LeafElement[] = [];
  let bytes = pageHeaderBytes;
  const flush = () => {
    leaves.push({ key: group.length > 0 ? group[0].key : new Uint8Array(0), page: writePage(leafPage(group, bytes, pageBytes)) });
    group = [];
    bytes = pageHeaderBytes;
  };
  for (const e of elements) {
    const size = elementBytes + e.key.length + e.value.length;
    if (group.length > 0 && bytes + size > pageBytes) flush();
    group.push(e);
    bytes += size;
  }
  flush();
  return leaves.length === 1 ? leaves[0].page : writeBranches(leaves, pageBytes, writePage);
}

function writeMeta(out: Uint8Array, at: number, pageBytes: number, rootPage: number, pageCount: number, txid: bigint): void {
  const v = new DataView(out.buffer, out.byteOffset + at, pageBytes);
  v.setBigUint64(0, BigInt(at / pageBytes), true);
  v.setUint16(8, metaPageFlag, true);
  const m = pageHeaderBytes;
  v.setUint32(m, boltMagic, true);
  v.setUint32(m + 4, boltVersion, true);
  v.setUint32(m + 8, pageBytes, true);
  v.setUint32(m + 12, 0, true);
  v.setBigUint64(m + 16, BigInt(rootPage), true);
  v.setBigUint64(m + 24, 0n, true);
  v.setBigUint64(m + 32, 2n, true);
  v.setBigUint64(m + 40, BigInt(pageCount), true);
  v.setBigUint64(m + 48, txid, true);
  v.setBigUint64(m + metaChecksummedBytes, fnv64a(out.subarray(at + m, at + m + metaChecksummedBytes)), true);
}

/** Writes a whole database into memory (for small ones and tests): buckets by name, entries in any order. */
export function writeBoltBytes(buckets: ReadonlyMap<string, readonly { key: Uint8Array; value: Uint8Array }[]>, pageBytes = boltPageBytes): Uint8Array {
  const pages: Uint8Array[] = [];
  const writer = new BoltWriter({ append: (p) => pages.push(p) }, pageBytes);
  for (const name of [...buckets.keys()].sort()) {
    const bucket = writer.bucket(name);
    for (const { key, value } of [...buckets.get(name)!].sort((a, b) => compareBytes(a.key, b.key))) bucket.put(key, value);
  }
  const head = writer.finish();
  const out = new Uint8Array(head.length + pages.reduce((n, p) => n + p.length, 0));
  out.set(head, 0);
  let at = head.length;
  for (const p of pages) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
