// Snapshots of the whole state machine: every stored record (keys with their history), the
// current and compaction revisions, and the leases. A SnapshotView is taken in O(1) (plus a copy
// of the lease table, without keys) from copy-on-write clones. Writes applied afterwards do not
// leak into it, and it encodes frame by frame, so a driver can interleave applies with encoding.
//
// Encoding: a sequence of frames, each a u32 little-endian byte length then a msgpackr-encoded value.
// Frame 0 is the header; the rest carry records in revision order, as columns.

import { Packr } from 'msgpackr';
import { toBinaryString } from './bytes.ts';
import type { Record } from './key-index.ts';
import type { StoreView } from './kv-store.ts';
import type { LeaseState } from './lessor.ts';

/** Bumped on any incompatible change of the encoding. */
export const SNAPSHOT_FORMAT = 3;
/** Records per frame: bounds the work done between two yields of `frames()`. */
export const SNAPSHOT_FRAME_RECORDS_MAX = 4_096;

const packr = new Packr({ useRecords: false, moreTypes: false });

interface HeaderFrame {
  format: number;
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
  currentRevision: number;
  compactRevision: number;
  /** Decodes the record frames one at a time, in revision order; throws on corruption. */
  records: () => Iterable<Record>;
  leases: LeaseState[];
  nextLeaseId: bigint;
}

function framed(doc: unknown): Uint8Array {
  const body = packr.pack(doc);
  const frame = new Uint8Array(4 + body.length);
  new DataView(frame.buffer).setUint32(0, body.length, true);
  frame.set(body, 4);
  return frame;
}

export class SnapshotView {
  constructor(
    private readonly store: StoreView,
    private readonly leases: readonly LeaseState[],
    private readonly nextLeaseId: bigint,
  ) {}

  get revision(): number {
    return this.store.currentRevision;
  }

  /** Records (every kept version of every key) the view holds. */
  get recordCount(): number {
    return this.store.recordCount;
  }

  /** The encoding, one frame at a time: O(SNAPSHOT_FRAME_RECORDS_MAX) work per frame. */
  *frames(): Generator<Uint8Array> {
    const header: HeaderFrame = {
      format: SNAPSHOT_FORMAT,
      currentRevision: this.store.currentRevision,
      compactRevision: this.store.compactRevision,
      recordCount: this.store.recordCount,
      leaseIds: this.leases.map((l) => l.id.toString()),
      leaseTtlSeconds: this.leases.map((l) => l.ttlSeconds),
      leaseRemainingTtlSeconds: this.leases.map((l) => l.remainingTtlSeconds),
      nextLeaseId: this.nextLeaseId.toString(),
    };
    yield framed(header);
    let batch: Record[] = [];
    for (const [, records] of this.store.revisions.entries()) {
      for (const record of records) batch.push(record);
      if (batch.length >= SNAPSHOT_FRAME_RECORDS_MAX) {
        yield framed(recordsFrame(batch));
        batch = [];
      }
    }
    if (batch.length > 0) yield framed(recordsFrame(batch));
  }

  /** The whole encoding at once. */
  encode(): Uint8Array {
    const frames = [...this.frames()];
    const bytes = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
    let offset = 0;
    for (const frame of frames) {
      bytes.set(frame, offset);
      offset += frame.length;
    }
    return bytes;
  }
}

/** Concatenates binary strings into one byte array. */
function blob(texts: readonly string[]): Uint8Array {
  let total = 0;
  for (const text of texts) total += text.length;
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const text of texts) {
    for (let i = 0; i < text.length; i++) bytes[offset + i] = text.charCodeAt(i);
    offset += text.length;
  }
  return bytes;
}

function recordsFrame(records: readonly Record[]): RecordsFrame {
  return {
    keyLengths: records.map((r) => r.key.length),
    keys: blob(records.map((r) => r.key)),
    mains: records.map((r) => r.main),
    subs: records.map((r) => r.sub),
    createRevisions: records.map((r) => r.createRevision),
    versions: records.map((r) => r.version),
    leases: records.map((r) => (r.lease === 0n ? '' : r.lease.toString())),
    valueLengths: records.map((r) => r.value.length),
    values: blob(records.map((r) => r.value)),
  };
}

/** Parses the header now; records decode lazily, frame by frame, when iterated. */
export function decodeSnapshot(bytes: Uint8Array): DecodedSnapshot {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const frameAt = (offset: number): { doc: unknown; next: number } => {
    if (offset + 4 > bytes.length) throw new Error(`snapshot: truncated frame header at byte ${offset}`);
    const length = view.getUint32(offset, true);
    if (offset + 4 + length > bytes.length) throw new Error(`snapshot: frame at byte ${offset} overruns the end`);
    return { doc: packr.unpack(bytes.subarray(offset + 4, offset + 4 + length)), next: offset + 4 + length };
  };
  const first = frameAt(0);
  const header = first.doc as HeaderFrame;
  if (header.format !== SNAPSHOT_FORMAT) throw new Error(`snapshot: format ${header.format}, expected ${SNAPSHOT_FORMAT}`);
  function* records(): Generator<Record> {
    let offset = first.next;
    let count = 0;
    while (offset < bytes.length) {
      const { doc, next } = frameAt(offset);
      offset = next;
      const frame = doc as RecordsFrame;
      const n = frame.keyLengths.length;
      for (const column of [frame.mains, frame.subs, frame.createRevisions, frame.versions, frame.leases, frame.valueLengths]) {
        if (column.length !== n) throw new Error(`snapshot: column of ${column.length} records, expected ${n}`);
      }
      let keyOffset = 0;
      let valueOffset = 0;
      for (let i = 0; i < n; i++) {
        const length = frame.valueLengths[i];
        const keyLength = frame.keyLengths[i];
        if (keyLength === 0) throw new Error(`snapshot: empty key in record ${count + i}`);
        const key = toBinaryString(frame.keys.subarray(keyOffset, keyOffset + keyLength));
        keyOffset += keyLength;
        yield {
          key,
          main: frame.mains[i],
          sub: frame.subs[i],
          createRevision: frame.createRevisions[i],
          version: frame.versions[i],
          value: toBinaryString(frame.values.subarray(valueOffset, valueOffset + length)),
          lease: frame.leases[i] === '' ? 0n : BigInt(frame.leases[i]),
        };
        valueOffset += length;
      }
      if (valueOffset !== frame.values.length || keyOffset !== frame.keys.length) {
        throw new Error(`snapshot: frame blobs of ${frame.keys.length}/${frame.values.length} bytes, records use ${keyOffset}/${valueOffset}`);
      }
      count += n;
    }
    if (count !== header.recordCount) throw new Error(`snapshot: ${count} records, header says ${header.recordCount}`);
  }
  const leases: LeaseState[] = header.leaseIds.map((id, i) => ({
    id: BigInt(id),
    ttlSeconds: header.leaseTtlSeconds[i],
    remainingTtlSeconds: header.leaseRemainingTtlSeconds[i],
  }));
  return {
    currentRevision: header.currentRevision,
    compactRevision: header.compactRevision,
    records,
    leases,
    nextLeaseId: BigInt(header.nextLeaseId),
  };
}
