// Reading a data directory back: list segments and snapshot files, scan every frame, replay
// them into the state a member had synced, and detect a torn final write versus corruption.

import { join } from 'node:path';
import type { Entry, HardState, Snapshot } from '../../../src/raft/types.ts';
import { emptyHardState } from '../../../src/raft/types.ts';
import { StorageError } from '../errors.ts';
import type { WalFs } from './fs.ts';
import type { BatchRecord, SegmentHeader, SnapshotMarker } from './records.ts';
import { DecodeError, FrameType, Reader, decodeBatch, decodeSegmentHeader, decodeSnapshotFile, frameAt, frameHeaderBytes, payloadShapeFits } from './records.ts';

export const segmentNamePattern = /^([0-9a-f]{16})\.wal$/;
export const snapshotNamePattern = /^([0-9a-f]{16})-([0-9a-f]{16})\.snap$/;
export const tmpNamePattern = /\.(wal|snap)\.tmp$/;

export function hex64(n: number): string {
  return n.toString(16).padStart(16, '0');
}

export function segmentName(seq: number): string {
  return `${hex64(seq)}.wal`;
}

export function snapshotName(m: SnapshotMarker): string {
  return `${hex64(m.term)}-${hex64(m.index)}.snap`;
}

export interface SegmentInfo {
  seq: number;
  name: string;
  /** Highest entry index written in this segment, 0 if none: deletable once a snapshot covers it. */
  maxEntryIndex: number;
}

export interface WalContents {
  segments: SegmentInfo[];
  /** Where the next frame goes in the last segment; 0 means its header is still to be written. */
  writeOffset: number;
  /** Size of the last segment file. */
  lastSegmentBytes: number;
  /** Snapshot files present, whether referenced or not. */
  snapshotFiles: SnapshotMarker[];
  tmpFiles: string[];
  hardState: HardState;
  marker: SnapshotMarker | null;
  snapshot: Snapshot | null;
  /** Contiguous, starting after the marker's index. */
  entries: Entry[];
  /** Set when the last segment ended in a torn write at this byte offset. */
  torn: { name: string; offset: number; reason: string; nonZeroEnd: number } | null;
  /**
   * A segment after the last written one that holds only zeros: prepared ahead of its rollover
   * (wal.ts, rule 6). It is not in `segments`; the one before it is the last written segment.
   */
  prepared: { seq: number; name: string; bytes: number } | null;
}

export async function readWal(fs: WalFs, dir: string, frameBytesMax: number): Promise<WalContents> {
  const names = (await fs.readdir(dir)).sort();
  const seqs: number[] = [];
  const snapshotFiles: SnapshotMarker[] = [];
  const tmpFiles: string[] = [];
  for (const name of names) {
    const seg = segmentNamePattern.exec(name);
    const snap = snapshotNamePattern.exec(name);
    if (seg) seqs.push(parseInt(seg[1], 16));
    else if (snap) snapshotFiles.push({ term: parseInt(snap[1], 16), index: parseInt(snap[2], 16) });
    else if (tmpNamePattern.test(name)) tmpFiles.push(name);
  }
  seqs.sort((a, b) => a - b);
  for (let i = 1; i < seqs.length; i++) {
    if (seqs[i] !== seqs[i - 1] + 1) {
      throw corrupt(`${join(dir, segmentName(seqs[i - 1] + 1))} is missing (segments ${seqs[i - 1]} and ${seqs[i]} exist): the WAL has a hole`);
    }
  }
  const state = new ReplayState();
  const segments: SegmentInfo[] = [];
  let writeOffset = 0;
  let lastSegmentBytes = 0;
  let torn: WalContents['torn'] = null;
  let prepared: WalContents['prepared'] = null;
  // A trailing segment of zeros after a written one was prepared ahead of its rollover and never
  // used: the segment before it is the last written one, the one a crash may leave torn. Only the
  // very last segment may be such; a header-less segment anywhere else is corruption (below).
  let written = seqs.length;
  let lastBytes: Uint8Array | null = null;
  if (seqs.length > 1) {
    lastBytes = await fs.readFile(join(dir, segmentName(seqs[seqs.length - 1])));
    if (lastNonZero(lastBytes, 0) < 0) {
      written--;
      prepared = { seq: seqs[written], name: segmentName(seqs[written]), bytes: lastBytes.length };
    }
  }
  for (let i = 0; i < written; i++) {
    const name = segmentName(seqs[i]);
    const path = join(dir, name);
    const isLast = i === written - 1;
    const bytes = i === seqs.length - 1 && lastBytes !== null ? lastBytes : await fs.readFile(path);
    const scan = scanSegment(bytes, path, seqs[i], isLast, i === 0, state, frameBytesMax);
    segments.push({ seq: seqs[i], name, maxEntryIndex: scan.maxEntryIndex });
    if (isLast) {
      // A segment is prepared only once the header of the one before it is durable (wal.ts).
      if (prepared !== null && scan.end === 0) {
        throw corrupt(`${path}: segment has no header but is not the last segment (${join(dir, prepared.name)}, all zeros, follows it)`);
      }
      writeOffset = scan.end;
      lastSegmentBytes = bytes.length;
      if (scan.tornReason !== null) {
        torn = { name, offset: scan.end, reason: scan.tornReason, nonZeroEnd: lastNonZero(bytes, 0) + 1 };
      }
    }
  }
  const marker = state.marker;
  const first = state.entries[0]?.index;
  if (first !== undefined && first !== (marker?.index ?? 0) + 1) {
    throw corrupt(
      `WAL in ${dir} holds entries from index ${first} but the snapshot is at index ${marker?.index ?? 0}: ` +
        `entries ${(marker?.index ?? 0) + 1}..${first - 1} are missing (the log starts over at index ${first} in ${state.entriesStartAt})`,
    );
  }
  let snapshot: Snapshot | null = null;
  if (marker !== null) snapshot = await readSnapshotFile(fs, dir, marker);
  return {
    segments,
    writeOffset,
    lastSegmentBytes,
    snapshotFiles,
    tmpFiles,
    hardState: state.hardState,
    marker,
    snapshot,
    entries: state.entries,
    torn,
    prepared,
  };
}

export async function readSnapshotFile(fs: WalFs, dir: string, marker: SnapshotMarker): Promise<Snapshot> {
  const path = join(dir, snapshotName(marker));
  let bytes: Uint8Array;
  try {
    bytes = await fs.readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw corrupt(`snapshot file ${path} is missing, but the WAL in ${dir} says the snapshot at index ${marker.index} term ${marker.term} was saved`);
    }
    throw err;
  }
  let snapshot: Snapshot;
  try {
    snapshot = decodeSnapshotFile(bytes);
  } catch (err) {
    if (err instanceof DecodeError) throw corrupt(`snapshot file ${path} is corrupt: ${err.message}`);
    throw err;
  }
  if (snapshot.metadata.index !== marker.index || snapshot.metadata.term !== marker.term) {
    throw corrupt(`snapshot file ${path} holds index ${snapshot.metadata.index} term ${snapshot.metadata.term}, its name says index ${marker.index} term ${marker.term}`);
  }
  return snapshot;
}

/** Applies frames in write order; the rules mirror log-rules.ts. */
class ReplayState {
  hardState: HardState = emptyHardState();
  marker: SnapshotMarker | null = null;
  /** Contiguous; may start anywhere until the final snapshot marker trims it. */
  entries: Entry[] = [];
  /** Where the current run of entries began (file and byte): named if a gap precedes it. */
  entriesStartAt = '';

  applyHeader(h: SegmentHeader, isFirst: boolean): string | null {
    if (!isFirst) {
      // A header repeats the state in force when its segment was cut: it must match.
      const hs = this.hardState;
      if (hs.term !== h.hardState.term || hs.vote !== h.hardState.vote || hs.commit !== h.hardState.commit) {
        return `header hard state ${JSON.stringify(h.hardState)} differs from the replayed ${JSON.stringify(hs)}`;
      }
      if (this.marker?.index !== h.marker?.index || this.marker?.term !== h.marker?.term) {
        return `header snapshot ${JSON.stringify(h.marker)} differs from the replayed ${JSON.stringify(this.marker)}`;
      }
    }
    this.hardState = h.hardState;
    this.marker = h.marker;
    return null;
  }

  /** `at` names the frame (file and byte offset). */
  applyBatch(b: BatchRecord, at: string): void {
    if (b.marker !== null) {
      const first = this.entries[0]?.index;
      if (b.snapshotReset) this.entries = [];
      else if (first !== undefined && first <= b.marker.index) this.entries = this.entries.slice(b.marker.index - first + 1);
      this.marker = b.marker;
    }
    for (const e of b.entries) {
      const first = this.entries[0]?.index;
      const next = first === undefined ? undefined : first + this.entries.length;
      // A gap can only follow segments deleted under a snapshot: everything before it is
      // covered by that snapshot, so start over from e.
      if (first === undefined || e.index < first || (next !== undefined && e.index > next)) {
        this.entries = [];
        this.entriesStartAt = at;
      } else this.entries.length = e.index - first;
      this.entries.push(e);
    }
    if (b.hardState !== null) this.hardState = b.hardState;
  }
}

interface SegmentScan {
  /** End of the last valid frame. */
  end: number;
  maxEntryIndex: number;
  /** Why the frame at `end` is a torn write, or null if the segment ended cleanly. */
  tornReason: string | null;
}

function scanSegment(
  bytes: Uint8Array,
  path: string,
  seq: number,
  isLast: boolean,
  isFirst: boolean,
  state: ReplayState,
  frameBytesMax: number,
): SegmentScan {
  let pos = 0;
  let maxEntryIndex = 0;
  const dataEnd = lastNonZero(bytes, 0) + 1;
  while (pos < dataEnd) {
    const frame = frameAt(bytes, pos, frameBytesMax);
    if (typeof frame === 'string') {
      if (isLast && !validFrameAfter(bytes, pos + 1, dataEnd, frameBytesMax)) {
        return { end: pos, maxEntryIndex, tornReason: frame };
      }
      throw corrupt(
        `${path}: corrupt frame at byte ${pos}: ${frame}; ` +
          (isLast ? 'valid frames follow it, so it is not a torn final write' : 'this is not the last segment, so it is not a torn final write') +
          '. Refusing to load: restore this data dir from a backup, or remove the member from the cluster and re-add it empty',
      );
    }
    const r = new Reader(bytes, frame.payloadStart, frame.end);
    let problem: string | null = null;
    try {
      if (pos === 0 && frame.type !== FrameType.SegmentHeader) problem = `first frame has type ${frame.type}, expected a segment header`;
      else if (pos !== 0 && frame.type === FrameType.SegmentHeader) problem = 'segment header in the middle of a segment';
      else if (frame.type === FrameType.SegmentHeader) {
        const header = decodeSegmentHeader(r);
        problem = header.seq !== seq ? `header names segment ${header.seq}, file name says ${seq}` : state.applyHeader(header, isFirst);
      } else {
        const batch = decodeBatch(r);
        for (const e of batch.entries) maxEntryIndex = Math.max(maxEntryIndex, e.index);
        state.applyBatch(batch, `${path} at byte ${pos}`);
      }
    } catch (err) {
      if (!(err instanceof DecodeError)) throw err;
      problem = `checksum is valid but the payload is not: ${err.message}`;
    }
    if (problem !== null) throw corrupt(`${path}: bad frame at byte ${pos}: ${problem}`);
    pos = frame.end;
  }
  if (pos === 0 && !isLast) throw corrupt(`${path}: segment has no header but is not the last segment`);
  return { end: pos, maxEntryIndex, tornReason: null };
}

/** Checksum work allowed when deciding torn-versus-corrupt; beyond it, assume corruption. */
export const tornScanBytesMax = 256 * 1024 * 1024;

/**
 * Whether a valid frame starts anywhere in [from, dataEnd): evidence of corruption, since a
 * torn write is the last write and leaves nothing valid after it. A candidate must also be
 * plausibly followed by another frame or by the end of the data, and its payload must have a
 * decodable layout, before its checksum is computed (a frame we wrote always has both). Returns true (corruption, the safe answer) if the checksum work would exceed
 * tornScanBytesMax.
 */
function validFrameAfter(bytes: Uint8Array, from: number, dataEnd: number, frameBytesMax: number): boolean {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let checksummedBytes = 0;
  for (let q = from; q < dataEnd && q + frameHeaderBytes <= bytes.length; q++) {
    const type = bytes[q + 8];
    if (type !== FrameType.Batch && type !== FrameType.SegmentHeader) continue;
    const end = q + frameHeaderBytes + view.getUint32(q, true);
    if (end > bytes.length || end - q > frameBytesMax + frameHeaderBytes) continue;
    const next = bytes[end + 8];
    if (end < dataEnd && next !== FrameType.Batch && next !== FrameType.SegmentHeader) continue;
    if (!payloadShapeFits(bytes, type, q + frameHeaderBytes, end)) continue;
    checksummedBytes += end - q;
    if (checksummedBytes > tornScanBytesMax) return true;
    if (typeof frameAt(bytes, q, frameBytesMax) !== 'string') return true;
  }
  return false;
}

/** Index of the last non-zero byte at or after `from`, or from - 1 if there is none. O(length - from). */
export function lastNonZero(bytes: Uint8Array, from: number): number {
  const base = bytes.byteOffset;
  let i = bytes.length - 1;
  while (i >= from && (base + i + 1) % 4 !== 0) {
    if (bytes[i] !== 0) return i;
    i--;
  }
  // Word at a time over the aligned middle: preallocated segments are mostly zeros.
  const wordStart = Math.ceil((base + from) / 4);
  const wordEnd = (base + i + 1) / 4;
  if (wordEnd > wordStart) {
    const words = new Uint32Array(bytes.buffer, wordStart * 4, wordEnd - wordStart);
    let w = words.length - 1;
    while (w >= 0 && words[w] === 0) w--;
    i = (wordStart + w + 1) * 4 - base - 1;
  }
  while (i >= from) {
    if (bytes[i] !== 0) return i;
    i--;
  }
  return from - 1;
}

function corrupt(message: string): StorageError {
  return new StorageError('corrupt', message);
}
