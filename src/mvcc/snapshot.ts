// Snapshots of the whole state machine: every stored record (keys with their history), the
// current and compaction revisions, and the leases. A SnapshotView is taken in O(1) (plus a copy
// of the lease table, without keys) from copy-on-write clones. Writes applied afterwards do not
// leak into it, and it encodes frame by frame, so a driver can interleave applies with encoding.
//
// Encoding: a sequence of frames, each a u32 little-endian body length, a u32 little-endian
// CRC-32C of the body, then the body: a msgpackr-encoded value. Frame 0 is the header; the rest
// carry records in revision order, as columns. The checksum travels with the image, so damage
// is caught whichever storage or transport carried it; decoding then checks every field.

import { Packr } from 'msgpackr';
import { concat } from '../client/bytes.ts';
import { crc32c } from '../codec/crc32c.ts';
import { describeDecoded } from '../codec/message.ts';
import { fromBinaryString, toBinaryString } from './bytes.ts';
import type { StoredRecord } from './history.ts';
import { INITIAL_REVISION, NO_COMPACTION, type StoreView } from './kv-store.ts';
import type { LeaseState } from './lessor.ts';

/** Bumped on any incompatible change of the encoding. 5 added appliedIndex; 4 still decodes (as index 0). */
export const SNAPSHOT_FORMAT = 5;
const previousFormat = 4;
/** Records per frame: bounds the work done between two yields of `frames()`. */
export const SNAPSHOT_FRAME_RECORDS_MAX = 4_096;
const frameHeaderBytes = 8;

/** Why bytes are not a snapshot image; restoring one changes nothing. */
export class SnapshotDecodeError extends Error {
  override readonly name = 'SnapshotDecodeError';
  constructor(reason: string) {
    super(`snapshot: ${reason}`);
  }
}

const packr = new Packr({ useRecords: false, moreTypes: false });

interface HeaderFrame {
  format: number;
  /** The Raft index of the last entry applied to the state the image holds (0: unknown). */
  appliedIndex: number;
  currentRevision: number;
  compactRevision: number;
  recordCount: number;
  /** Lease ids as decimal strings. */
  leaseIds: string[];
  leaseTtlSeconds: number[];
  leaseRemainingTtlSeconds: number[];
  nextLeaseId: string;
}

interface RecordsFrame {
  keyLengths: number[];
  /** Every key of the frame, concatenated (binary, not UTF-8: decodes to flat one-byte strings). */
  keys: Uint8Array;
  mains: number[];
  subs: number[];
  createRevisions: number[];
  versions: number[];
  /** Lease ids as decimal strings ('' for none). */
  leases: string[];
  valueLengths: number[];
  /** Every value of the frame, concatenated. */
  values: Uint8Array;
}

export interface DecodedSnapshot {
  appliedIndex: number;
  currentRevision: number;
  compactRevision: number;
  /** Decodes the record frames one at a time, in revision order; throws on corruption. */
  records: () => Iterable<StoredRecord>;
  leases: LeaseState[];
  nextLeaseId: bigint;
}

function framed(doc: unknown): Uint8Array {
  const body = packr.pack(doc);
  const frame = new Uint8Array(frameHeaderBytes + body.length);
  const view = new DataView(frame.buffer);
  view.setUint32(0, body.length, true);
  view.setUint32(4, crc32c(body), true);
  frame.set(body, frameHeaderBytes);
  return frame;
}

/** What an image holds; `records()` yields every stored record in revision order. */
export interface SnapshotContents {
  readonly appliedIndex: number;
  readonly currentRevision: number;
  readonly compactRevision: number;
  readonly recordCount: number;
  readonly leases: readonly LeaseState[];
  readonly nextLeaseId: bigint;
  records(): Iterable<StoredRecord>;
}

/** Encodes contents as an image, one frame at a time: O(SNAPSHOT_FRAME_RECORDS_MAX) work per frame. */
export function* encodeSnapshotFrames(contents: SnapshotContents): Generator<Uint8Array> {
  const header: HeaderFrame = {
    format: SNAPSHOT_FORMAT,
    appliedIndex: contents.appliedIndex,
    currentRevision: contents.currentRevision,
    compactRevision: contents.compactRevision,
    recordCount: contents.recordCount,
    leaseIds: contents.leases.map((l) => l.id.toString()),
    leaseTtlSeconds: contents.leases.map((l) => l.ttlSeconds),
    leaseRemainingTtlSeconds: contents.leases.map((l) => l.remainingTtlSeconds),
    nextLeaseId: contents.nextLeaseId.toString(),
  };
  yield framed(header);
  let batch: StoredRecord[] = [];
  for (const record of contents.records()) {
    batch.push(record);
    if (batch.length < SNAPSHOT_FRAME_RECORDS_MAX) continue;
    yield framed(recordsFrame(batch));
    batch = [];
  }
  if (batch.length > 0) yield framed(recordsFrame(batch));
}

/** Frames joined into one array. */
export function joinFrames(frames: Iterable<Uint8Array>): Uint8Array {
  return concat([...frames]);
}

export class SnapshotView implements SnapshotContents {
  constructor(
    private readonly store: StoreView,
    readonly leases: readonly LeaseState[],
    readonly nextLeaseId: bigint,
    readonly appliedIndex: number,
  ) {}

  get revision(): number {
    return this.store.currentRevision;
  }

  get currentRevision(): number {
    return this.store.currentRevision;
  }

  get compactRevision(): number {
    return this.store.compactRevision;
  }

  /** Records (every kept version of every key) the view holds. */
  get recordCount(): number {
    return this.store.recordCount;
  }

  /**
   * Every stored record in revision order, read from the history a batch at a time (resuming
   * after the last record of the previous batch). Does not release the view.
   */
  *records(): Generator<StoredRecord> {
    let nextMain = 0;
    let nextSub = 0;
    for (;;) {
      const batch: StoredRecord[] = [];
      this.store.history.forEach(nextMain, this.store.currentRevision, (record) => {
        if (record.main === nextMain && record.sub < nextSub) return true;
        batch.push(record);
        return batch.length < SNAPSHOT_FRAME_RECORDS_MAX;
      });
      yield* batch;
      if (batch.length < SNAPSHOT_FRAME_RECORDS_MAX) return;
      const last = batch[batch.length - 1];
      nextMain = last.main;
      nextSub = last.sub + 1;
    }
  }

  /** Releases the view's backend read view; call once, when done with a view not encoded through frames(). */
  release(): void {
    this.store.release();
  }

  /**
   * The encoding, one frame at a time: O(SNAPSHOT_FRAME_RECORDS_MAX) work per frame. Iterate it
   * once: finishing (or returning from) the iteration releases the view's backend read view.
   */
  *frames(): Generator<Uint8Array> {
    try {
      yield* encodeSnapshotFrames(this);
    } finally {
      this.store.release();
    }
  }

  /** The whole encoding at once. */
  encode(): Uint8Array {
    return joinFrames(this.frames());
  }
}

function recordsFrame(records: readonly StoredRecord[]): RecordsFrame {
  return {
    keyLengths: records.map((r) => r.key.length),
    keys: fromBinaryString(records.map((r) => r.key).join('')),
    mains: records.map((r) => r.main),
    subs: records.map((r) => r.sub),
    createRevisions: records.map((r) => r.createRevision),
    versions: records.map((r) => r.version),
    leases: records.map((r) => (r.lease === 0n ? '' : r.lease.toString())),
    valueLengths: records.map((r) => r.value.length),
    values: concat(records.map((r) => r.value)),
  };
}

/**
 * Parses and checks the header now; records decode lazily, frame by frame, when iterated, and
 * each frame is checked before any of its records is yielded. Throws SnapshotDecodeError (and
 * nothing else) on bad bytes, from here or from the iteration.
 */
export function decodeSnapshot(bytes: Uint8Array): DecodedSnapshot {
  const frameAt = (offset: number): { doc: unknown; next: number } => {
    const end = checkedFrameEnd(bytes, offset);
    try {
      return { doc: packr.unpack(bytes.subarray(offset + frameHeaderBytes, end)), next: end };
    } catch (err) {
      throw new SnapshotDecodeError(`frame at byte ${offset}: bad msgpack: ${err instanceof Error ? err.message : describeDecoded(err)}`);
    }
  };
  const first = frameAt(0);
  const header = toHeader(first.doc);
  function* records(): Generator<StoredRecord> {
    let offset = first.next;
    let count = 0;
    /** The revision of the last record yielded: records come in strictly increasing revision order. */
    let last = { main: 0, sub: 0 };
    while (offset < bytes.length) {
      const at = offset;
      const { doc, next } = frameAt(offset);
      offset = next;
      const frame = toRecordsFrame(doc, `frame at byte ${at}`);
      let keyOffset = 0;
      let valueOffset = 0;
      for (let i = 0; i < frame.keyLengths.length; i++) {
        const record: StoredRecord = {
          key: toBinaryString(frame.keys.subarray(keyOffset, keyOffset + frame.keyLengths[i])),
          main: frame.mains[i],
          sub: frame.subs[i],
          createRevision: frame.createRevisions[i],
          version: frame.versions[i],
          value: new Uint8Array(frame.values.subarray(valueOffset, valueOffset + frame.valueLengths[i])),
          lease: frame.leases[i] === '' ? 0n : leaseId(frame.leases[i], `record ${count + i} lease`),
        };
        checkRecord(record, last, header.currentRevision, count + i);
        keyOffset += frame.keyLengths[i];
        valueOffset += frame.valueLengths[i];
        last = record;
        yield record;
      }
      count += frame.keyLengths.length;
    }
    if (count !== header.recordCount) throw new SnapshotDecodeError(`${count} records, header says ${header.recordCount}`);
  }
  const leases: LeaseState[] = header.leaseIds.map((id, i) => ({
    id: leaseId(id, `lease ${i} id`),
    ttlSeconds: header.leaseTtlSeconds[i],
    remainingTtlSeconds: header.leaseRemainingTtlSeconds[i],
  }));
  return {
    appliedIndex: header.appliedIndex,
    currentRevision: header.currentRevision,
    compactRevision: header.compactRevision,
    records,
    leases,
    nextLeaseId: int64(header.nextLeaseId, 'nextLeaseId'),
  };
}

/** Where the frame at `offset` ends, once its length and checksum are checked; throws SnapshotDecodeError. */
function checkedFrameEnd(bytes: Uint8Array, offset: number): number {
  if (offset + frameHeaderBytes > bytes.length) throw new SnapshotDecodeError(`truncated frame header at byte ${offset}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, frameHeaderBytes);
  const length = view.getUint32(0, true);
  const start = offset + frameHeaderBytes;
  if (start + length > bytes.length) throw new SnapshotDecodeError(`frame at byte ${offset} of ${length} bytes overruns the ${bytes.length}-byte image`);
  const stored = view.getUint32(4, true);
  const actual = crc32c(bytes, 0, start, start + length);
  if (stored !== actual) throw new SnapshotDecodeError(`frame at byte ${offset}: checksum mismatch (stored ${hex32(stored)}, computed ${hex32(actual)})`);
  return start + length;
}

/**
 * Why an image is damaged, or null: checks every frame's length and checksum without decoding
 * anything, so it is cheap enough to run on a snapshot as it arrives. O(bytes).
 */
export function checkSnapshotFrames(bytes: Uint8Array): string | null {
  try {
    for (let offset = 0; offset < bytes.length; ) offset = checkedFrameEnd(bytes, offset);
    return bytes.length === 0 ? 'snapshot: empty image' : null;
  } catch (err) {
    if (err instanceof SnapshotDecodeError) return err.message;
    throw err;
  }
}

function toHeader(doc: unknown): HeaderFrame {
  const h = fields(doc, 'header');
  if (h.format !== SNAPSHOT_FORMAT && h.format !== previousFormat) {
    throw new SnapshotDecodeError(`format ${describeDecoded(h.format)}, expected ${SNAPSHOT_FORMAT}`);
  }
  const appliedIndex = h.format === previousFormat ? 0 : int(h.appliedIndex, 'appliedIndex', 0);
  const currentRevision = int(h.currentRevision, 'currentRevision', INITIAL_REVISION);
  const compactRevision = int(h.compactRevision, 'compactRevision', NO_COMPACTION);
  if (compactRevision > currentRevision) throw new SnapshotDecodeError(`compactRevision ${compactRevision} is beyond currentRevision ${currentRevision}`);
  const leaseIds = column<string>(h.leaseIds, 'leaseIds', null, leaseId);
  if (new Set(leaseIds).size !== leaseIds.length) throw new SnapshotDecodeError('leaseIds lists a lease twice');
  const leaseTtlSeconds = ints(h.leaseTtlSeconds, 'leaseTtlSeconds', leaseIds.length, 0);
  const leaseRemainingTtlSeconds = ints(h.leaseRemainingTtlSeconds, 'leaseRemainingTtlSeconds', leaseIds.length, 0);
  if (typeof h.nextLeaseId !== 'string') throw new SnapshotDecodeError(`nextLeaseId is ${describeDecoded(h.nextLeaseId)}, not a string`);
  int64(h.nextLeaseId, 'nextLeaseId');
  return {
    format: SNAPSHOT_FORMAT,
    appliedIndex,
    currentRevision,
    compactRevision,
    recordCount: int(h.recordCount, 'recordCount', 0),
    leaseIds,
    leaseTtlSeconds,
    leaseRemainingTtlSeconds,
    nextLeaseId: h.nextLeaseId,
  };
}

function toRecordsFrame(doc: unknown, what: string): RecordsFrame {
  const f = fields(doc, what);
  const keyLengths = ints(f.keyLengths, `${what} keyLengths`, null, 1);
  const n = keyLengths.length;
  const frame: RecordsFrame = {
    keyLengths,
    keys: bytesField(f.keys, `${what} keys`),
    mains: ints(f.mains, `${what} mains`, n, 1),
    subs: ints(f.subs, `${what} subs`, n, 0),
    createRevisions: ints(f.createRevisions, `${what} createRevisions`, n, 0),
    versions: ints(f.versions, `${what} versions`, n, 0),
    leases: column(
      f.leases,
      `${what} leases`,
      n,
      (v, w) => {
        throw new SnapshotDecodeError(`${w} is ${describeDecoded(v)}, not a string`);
      },
      (v) => typeof v === 'string',
    ),
    valueLengths: ints(f.valueLengths, `${what} valueLengths`, n, 0),
    values: bytesField(f.values, `${what} values`),
  };
  const keyBytes = keyLengths.reduce((sum, l) => sum + l, 0);
  const valueBytes = frame.valueLengths.reduce((sum, l) => sum + l, 0);
  if (keyBytes !== frame.keys.length || valueBytes !== frame.values.length) {
    throw new SnapshotDecodeError(`${what}: blobs of ${frame.keys.length}/${frame.values.length} bytes, records use ${keyBytes}/${valueBytes}`);
  }
  return frame;
}

/** Record number `n` must follow `previous` in revision order and be a live version or a tombstone. */
function checkRecord(r: StoredRecord, previous: { main: number; sub: number }, currentRevision: number, n: number): void {
  if (r.main > currentRevision) throw new SnapshotDecodeError(`record ${n} at revision ${r.main} is beyond currentRevision ${currentRevision}`);
  if (r.main < previous.main || (r.main === previous.main && r.sub <= previous.sub)) {
    throw new SnapshotDecodeError(`record ${n} at revision ${r.main}.${r.sub} does not follow ${previous.main}.${previous.sub}`);
  }
  if (r.version === 0 ? r.createRevision !== 0 || r.lease !== 0n : r.createRevision < 1 || r.createRevision > r.main) {
    throw new SnapshotDecodeError(`record ${n} has version ${r.version}, createRevision ${r.createRevision} at revision ${r.main}`);
  }
}

function fields(doc: unknown, what: string): { [field: string]: unknown } {
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc) || doc instanceof Uint8Array) {
    throw new SnapshotDecodeError(`${what} is ${describeDecoded(doc)}, not a map`);
  }
  return doc as { [field: string]: unknown };
}

/**
 * Checks column `what` in place and returns it. `ok` is a quick check; an item it does not pass
 * gets `item`, which throws if the item is bad, named `${what}[${i}]`: a records frame has
 * thousands of items, so neither a copy nor a name per item.
 */
function column<T>(v: unknown, what: string, length: number | null, item: (v: unknown, what: string) => unknown, ok = (_: unknown) => false): T[] {
  if (!Array.isArray(v)) throw new SnapshotDecodeError(`${what} is ${describeDecoded(v)}, not an array`);
  if (length !== null && v.length !== length) throw new SnapshotDecodeError(`${what} has ${v.length} items, expected ${length}`);
  for (let i = 0; i < v.length; i++) if (!ok(v[i])) item(v[i], `${what}[${i}]`);
  return v as T[];
}

/** A column of safe integers >= `min`. */
function ints(v: unknown, what: string, length: number | null, min: number): number[] {
  return column(v, what, length, (x, w) => int(x, w, min), (x) => Number.isSafeInteger(x) && (x as number) >= min);
}

function int(v: unknown, what: string, min: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) throw new SnapshotDecodeError(`${what} is ${describeDecoded(v)}, not a safe integer >= ${min}`);
  return v;
}

function bytesField(v: unknown, what: string): Uint8Array {
  if (!(v instanceof Uint8Array)) throw new SnapshotDecodeError(`${what} is ${describeDecoded(v)}, not bytes`);
  return v;
}

const int64Min = -(2n ** 63n);
const int64Max = 2n ** 63n - 1n;

/** An int64 written as a canonical decimal string (no leading zeros), as the encoder writes it. */
function int64(v: unknown, what: string): bigint {
  if (typeof v !== 'string' || !/^(0|-?[1-9][0-9]{0,18})$/.test(v)) throw new SnapshotDecodeError(`${what} is ${describeDecoded(v)}, not a decimal int64`);
  const n = BigInt(v);
  if (n < int64Min || n > int64Max) throw new SnapshotDecodeError(`${what} ${v} is out of the int64 range`);
  return n;
}

function leaseId(v: unknown, what: string): bigint {
  const id = int64(v, what);
  if (id === 0n) throw new SnapshotDecodeError(`${what} is 0, which means no lease`);
  return id;
}

function hex32(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}
