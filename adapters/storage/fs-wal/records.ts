// On-disk layouts of fs-wal, hand-written little-endian binary (no Node imports).
//
// Frame:   [u32 payloadBytes][u32 crc32c(type, payload)][u8 type][payload]
// A frame of all zero bytes does not exist (type 0 is invalid): zeros mark the preallocated
// space after the last frame of a segment.
//
// Each save() is ONE batch frame (snapshot marker, entries, hard state), written with one
// write and one fdatasync. So a crash tears at most the final frame, and a valid frame after
// an invalid one can only mean corruption, never a torn write.
//
// Segment header (first frame of each segment): format version, segment sequence number and
// the hard state and snapshot marker in force when the segment was cut, so that deleting
// older segments never loses them.
//
// Snapshot file: [8-byte magic][u32 payloadBytes][u32 crc32c(payload)][payload]

import { crc32c } from '../../../src/codec/crc32c.ts';
import type { ConfState, Entry, HardState, Snapshot } from '../../../src/raft/types.ts';

export const formatVersion = 1;
export const frameHeaderBytes = 9;

export enum FrameType {
  SegmentHeader = 1,
  Batch = 2,
}

export interface SnapshotMarker {
  index: number;
  term: number;
}

export interface SegmentHeader {
  seq: number;
  hardState: HardState;
  marker: SnapshotMarker | null;
}

export interface BatchRecord {
  /** With `snapshotReset`, every earlier entry is discarded; otherwise those at or below it. */
  marker: SnapshotMarker | null;
  snapshotReset: boolean;
  entries: Entry[];
  hardState: HardState | null;
}

const flagMarker = 1;
const flagReset = 2;
const flagHardState = 4;
const entryFixedBytes = 8 + 8 + 1 + 4;
const hardStateBytes = 3 * 8;
const two32 = 2 ** 32;

class Writer {
  readonly bytes: Uint8Array;
  private readonly view: DataView;
  pos: number;

  constructor(size: number, start: number) {
    this.bytes = new Uint8Array(size);
    this.view = new DataView(this.bytes.buffer);
    this.pos = start;
  }

  u8(n: number): void {
    this.view.setUint8(this.pos, n);
    this.pos += 1;
  }

  u32(n: number): void {
    this.view.setUint32(this.pos, n, true);
    this.pos += 4;
  }

  /** A non-negative safe integer as 64 bits (lo, hi). */
  u64(n: number): void {
    this.view.setUint32(this.pos, n >>> 0, true);
    this.view.setUint32(this.pos + 4, Math.floor(n / two32), true);
    this.pos += 8;
  }

  raw(b: Uint8Array): void {
    this.bytes.set(b, this.pos);
    this.pos += b.length;
  }
}

/** Thrown by readers on structurally invalid payloads; callers add the file and offset. */
export class DecodeError extends Error {}

export class Reader {
  private readonly view: DataView;
  private readonly bytes: Uint8Array;
  pos: number;
  private readonly end: number;

  constructor(bytes: Uint8Array, start: number, end: number) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = start;
    this.end = end;
  }

  private need(n: number): void {
    if (this.pos + n > this.end) throw new DecodeError(`needs ${n} bytes at payload byte ${this.pos}, only ${this.end - this.pos} left`);
  }

  u8(): number {
    this.need(1);
    return this.view.getUint8(this.pos++);
  }

  u32(): number {
    this.need(4);
    const n = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return n;
  }

  u64(): number {
    this.need(8);
    const lo = this.view.getUint32(this.pos, true);
    const hi = this.view.getUint32(this.pos + 4, true);
    this.pos += 8;
    const n = hi * two32 + lo;
    if (!Number.isSafeInteger(n)) throw new DecodeError(`integer ${hi}:${lo} is not a safe integer`);
    return n;
  }

  /** A copy, so a decoded value never pins the whole file buffer. */
  raw(n: number): Uint8Array {
    this.need(n);
    const out = this.bytes.slice(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  expectEnd(): void {
    if (this.pos !== this.end) throw new DecodeError(`${this.end - this.pos} trailing bytes`);
  }
}

function writeHardState(w: Writer, hs: HardState): void {
  w.u64(hs.term);
  w.u64(hs.vote);
  w.u64(hs.commit);
}

function readHardState(r: Reader): HardState {
  return { term: r.u64(), vote: r.u64(), commit: r.u64() };
}

/** Writes the frame header over bytes [0, frameHeaderBytes) once the payload is in place. */
function sealFrame(w: Writer, type: FrameType): Uint8Array {
  const view = new DataView(w.bytes.buffer);
  const payloadBytes = w.pos - frameHeaderBytes;
  view.setUint32(0, payloadBytes, true);
  view.setUint8(8, type);
  view.setUint32(4, crc32c(w.bytes, 0, 8, w.pos), true);
  if (w.pos !== w.bytes.length) throw new Error(`frame size mismatch: wrote ${w.pos} of ${w.bytes.length} bytes`);
  return w.bytes;
}

export function encodeSegmentHeader(h: SegmentHeader): Uint8Array {
  const w = new Writer(frameHeaderBytes + 4 + 8 + 1 + hardStateBytes + (h.marker ? 16 : 0), frameHeaderBytes);
  w.u32(formatVersion);
  w.u64(h.seq);
  w.u8(h.marker ? flagMarker : 0);
  writeHardState(w, h.hardState);
  if (h.marker) {
    w.u64(h.marker.index);
    w.u64(h.marker.term);
  }
  return sealFrame(w, FrameType.SegmentHeader);
}

export function decodeSegmentHeader(r: Reader): SegmentHeader {
  const version = r.u32();
  if (version !== formatVersion) throw new DecodeError(`segment format version ${version}, this build reads ${formatVersion}`);
  const seq = r.u64();
  const flags = r.u8();
  const hardState = readHardState(r);
  const marker = flags & flagMarker ? { index: r.u64(), term: r.u64() } : null;
  r.expectEnd();
  return { seq, hardState, marker };
}

export function batchFrameBytes(b: BatchRecord): number {
  let n = frameHeaderBytes + 1 + (b.marker ? 16 : 0) + (b.hardState ? hardStateBytes : 0) + 4;
  for (const e of b.entries) n += entryFixedBytes + e.data.length;
  return n;
}

export function encodeBatch(b: BatchRecord): Uint8Array {
  const w = new Writer(batchFrameBytes(b), frameHeaderBytes);
  w.u8((b.marker ? flagMarker : 0) | (b.snapshotReset ? flagReset : 0) | (b.hardState ? flagHardState : 0));
  if (b.marker) {
    w.u64(b.marker.index);
    w.u64(b.marker.term);
  }
  if (b.hardState) writeHardState(w, b.hardState);
  w.u32(b.entries.length);
  for (const e of b.entries) {
    w.u64(e.index);
    w.u64(e.term);
    w.u8(e.type);
    w.u32(e.data.length);
    w.raw(e.data);
  }
  return sealFrame(w, FrameType.Batch);
}

export function decodeBatch(r: Reader): BatchRecord {
  const flags = r.u8();
  const marker = flags & flagMarker ? { index: r.u64(), term: r.u64() } : null;
  const hardState = flags & flagHardState ? readHardState(r) : null;
  const count = r.u32();
  const entries: Entry[] = [];
  for (let i = 0; i < count; i++) {
    const index = r.u64();
    const term = r.u64();
    const type = r.u8();
    entries.push({ index, term, type, data: r.raw(r.u32()) });
  }
  r.expectEnd();
  return { marker, snapshotReset: (flags & flagReset) !== 0, entries, hardState };
}

/**
 * Whether a payload of `type` in [start, end) has the layout the decoders expect, read field by
 * field without copying or checksumming. Cheap enough to try at every byte of a damaged
 * segment, where it rules out nearly every false frame start before its checksum is computed.
 */
export function payloadShapeFits(bytes: Uint8Array, type: FrameType, start: number, end: number): boolean {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = start;
  if (type === FrameType.SegmentHeader) {
    if (end - start < 4 + 8 + 1 + hardStateBytes || view.getUint32(pos, true) !== formatVersion) return false;
    const flags = bytes[pos + 12];
    if ((flags & ~flagMarker) !== 0) return false;
    return end - start === 4 + 8 + 1 + hardStateBytes + (flags & flagMarker ? 16 : 0);
  }
  if (pos >= end) return false;
  const flags = bytes[pos++];
  if ((flags & ~(flagMarker | flagReset | flagHardState)) !== 0) return false;
  pos += (flags & flagMarker ? 16 : 0) + (flags & flagHardState ? hardStateBytes : 0);
  if (pos + 4 > end) return false;
  let count = view.getUint32(pos, true);
  pos += 4;
  for (; count > 0; count--) {
    if (pos + entryFixedBytes > end) return false;
    pos += entryFixedBytes + view.getUint32(pos + 17, true);
  }
  return pos === end;
}

export interface FrameAt {
  type: FrameType;
  /** Payload occupies [payloadStart, end). */
  payloadStart: number;
  end: number;
}

/**
 * The frame at `pos` if it is complete, of a known type and its checksum matches;
 * otherwise a reason. Never throws.
 */
export function frameAt(bytes: Uint8Array, pos: number, frameBytesMax: number): FrameAt | string {
  if (pos + frameHeaderBytes > bytes.length) return `only ${bytes.length - pos} bytes left for a ${frameHeaderBytes}-byte frame header`;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const payloadBytes = view.getUint32(pos, true);
  const type = bytes[pos + 8];
  if (type !== FrameType.SegmentHeader && type !== FrameType.Batch) return `unknown frame type ${type}`;
  const end = pos + frameHeaderBytes + payloadBytes;
  if (payloadBytes > frameBytesMax || end > bytes.length) {
    return `frame of ${payloadBytes} payload bytes overruns the ${bytes.length}-byte file`;
  }
  const crc = view.getUint32(pos + 4, true);
  const actual = crc32c(bytes, 0, pos + 8, end);
  if (crc !== actual) return `checksum mismatch (stored 0x${hex32(crc)}, computed 0x${hex32(actual)})`;
  return { type: type as FrameType, payloadStart: pos + frameHeaderBytes, end };
}

export function hex32(n: number): string {
  return n.toString(16).padStart(8, '0');
}

const snapshotMagic = new TextEncoder().encode('MKVSNAP1');
const snapshotHeaderBytes = snapshotMagic.length + 8;

function confStateBytes(c: ConfState): number {
  return 4 * 4 + 8 * (c.voters.length + c.learners.length + c.votersOutgoing.length + c.learnersNext.length) + 1;
}

function writeIds(w: Writer, ids: number[]): void {
  w.u32(ids.length);
  for (const id of ids) w.u64(id);
}

function readIds(r: Reader): number[] {
  const n = r.u32();
  const ids: number[] = [];
  for (let i = 0; i < n; i++) ids.push(r.u64());
  return ids;
}

export function encodeSnapshotFile(s: Snapshot): Uint8Array {
  const c = s.metadata.confState;
  const payloadBytes = 16 + confStateBytes(c) + 4 + s.data.length;
  const w = new Writer(snapshotHeaderBytes + payloadBytes, 0);
  w.raw(snapshotMagic);
  w.u32(payloadBytes);
  w.u32(0);
  w.u64(s.metadata.index);
  w.u64(s.metadata.term);
  writeIds(w, c.voters);
  writeIds(w, c.learners);
  writeIds(w, c.votersOutgoing);
  writeIds(w, c.learnersNext);
  w.u8(c.autoLeave ? 1 : 0);
  w.u32(s.data.length);
  w.raw(s.data);
  new DataView(w.bytes.buffer).setUint32(snapshotMagic.length + 4, crc32c(w.bytes, 0, snapshotHeaderBytes), true);
  return w.bytes;
}

/** Decodes a snapshot file; throws DecodeError naming what is wrong. */
export function decodeSnapshotFile(bytes: Uint8Array): Snapshot {
  if (bytes.length < snapshotHeaderBytes || !snapshotMagic.every((b, i) => bytes[i] === b)) {
    throw new DecodeError('not a meshkv snapshot file (bad magic)');
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const payloadBytes = view.getUint32(snapshotMagic.length, true);
  if (snapshotHeaderBytes + payloadBytes !== bytes.length) {
    throw new DecodeError(`header says ${payloadBytes} payload bytes, file has ${bytes.length - snapshotHeaderBytes}`);
  }
  const crc = view.getUint32(snapshotMagic.length + 4, true);
  const actual = crc32c(bytes, 0, snapshotHeaderBytes);
  if (crc !== actual) throw new DecodeError(`checksum mismatch (stored 0x${hex32(crc)}, computed 0x${hex32(actual)})`);
  const r = new Reader(bytes, snapshotHeaderBytes, bytes.length);
  const index = r.u64();
  const term = r.u64();
  const confState: ConfState = {
    voters: readIds(r),
    learners: readIds(r),
    votersOutgoing: readIds(r),
    learnersNext: readIds(r),
    autoLeave: r.u8() === 1,
  };
  const data = r.raw(r.u32());
  r.expectEnd();
  return { metadata: { index, term, confState }, data };
}
