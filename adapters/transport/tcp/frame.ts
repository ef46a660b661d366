// Framing for the TCP transport: `[u32 frame bytes, big endian][u8 type][payload]`, where
// frame bytes counts the type byte and the payload. A FrameReader cuts a byte stream into
// frames and throws FramingError when the stream cannot be framed any more (the connection
// must then be closed: nothing after a bad header can be trusted).
//
// A snapshot stream's chunks (SnapChunk messages, src/server/snapshot-stream.ts) have a frame
// type of their own: a fixed header, then the chunk's pairs as they are. The sender writes the
// pairs it got from its chunk producer without encoding or copying them, and the receiver gets
// them in a buffer of their own, which the staging area can take whole (transfer to a worker)
// instead of copying: per chunk of 512 KiB, two copies and two large allocations fewer on the
// sender's thread and one on the receiver's (docs/benchmarks.md, "Raw chunk frames").

import { Packr } from 'msgpackr';
import { describeDecoded } from '../../../src/codec/message.ts';
import { MessageType, type MemberId, type Message } from '../../../src/raft/types.ts';
import { helloProofBytes } from './admission.ts';

export enum FrameType {
  /** First frame from the connecting side: protocol version, cluster token, its id, the id it expects to reach, and its admission proof (./admission.ts). */
  Hello = 1,
  /** The listening side accepted the Hello. */
  Accept = 2,
  /** The listening side refuses the connection; the payload is a UTF-8 reason. It closes next. */
  Refuse = 3,
  /** One Raft message (src/codec/message.ts). */
  Message = 4,
  /** A snapshot message with empty snapshot data, preceded by a u32 of the data's byte length. */
  SnapshotHead = 5,
  /** The next bytes of the snapshot data announced by the last SnapshotHead. */
  SnapshotChunk = 6,
  /** A SnapChunk message: a chunk header (encodeChunkHeader), then the chunk's pairs as they are. */
  StreamChunk = 7,
}

export const frameHeaderBytes = 5;
/** The largest frame (type byte plus payload) either side accepts. */
export const frameBytesMax = 64 * 1024 * 1024;
/** Until the Hello is accepted, frames are at most this big, so strangers cannot make us buffer much. */
export const helloFrameBytesMax = 1024;
export const clusterTokenBytesMax = 256;
/** Snapshot data is streamed in chunks of this size. */
export const snapshotChunkBytes = 1024 * 1024;
/** The largest snapshot data the transport carries. */
export const snapshotBytesMax = 1024 * 1024 * 1024;
/** 2: the Hello carries an admission proof; 3: snapshot stream chunks travel as StreamChunk frames. */
export const protocolVersion = 3;
/**
 * The Refuse reason a member gives a peer that the member table says was removed (etcd's
 * peers answer such a member 410 Gone, with this text).
 */
export const removedReason = 'the member has been permanently removed from the cluster';

if (snapshotChunkBytes + 1 > frameBytesMax) throw new Error(`snapshotChunkBytes ${snapshotChunkBytes} does not fit frameBytesMax ${frameBytesMax}`);
if (snapshotBytesMax > 0xffffffff) throw new Error(`snapshotBytesMax ${snapshotBytesMax} does not fit the u32 in a SnapshotHead`);
if (clusterTokenBytesMax + helloProofBytes + 64 > helloFrameBytesMax) throw new Error(`a Hello with a ${clusterTokenBytesMax}-byte token may exceed helloFrameBytesMax ${helloFrameBytesMax}`);

const knownFrameTypes: ReadonlySet<number> = new Set(Object.values(FrameType).filter((v): v is number => typeof v === 'number'));

export class FramingError extends Error {}

export function frameHeader(type: FrameType, payloadBytes: number): Uint8Array {
  const h = new Uint8Array(frameHeaderBytes);
  writeFrameHeader(h, 0, type, payloadBytes);
  return h;
}

/** Writes a frame header at `at` in `out`. */
export function writeFrameHeader(out: Uint8Array, at: number, type: FrameType, payloadBytes: number): void {
  const frameBytes = payloadBytes + 1;
  if (frameBytes > frameBytesMax) throw new Error(`frame of ${frameBytes} bytes exceeds frameBytesMax ${frameBytesMax}`);
  out[at] = frameBytes >>> 24;
  out[at + 1] = (frameBytes >>> 16) & 0xff;
  out[at + 2] = (frameBytes >>> 8) & 0xff;
  out[at + 3] = frameBytes & 0xff;
  out[at + 4] = type;
}

/** A whole frame in one buffer; the transport writes header and payload separately instead. */
export function encodeFrame(type: FrameType, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(frameHeaderBytes + payload.length);
  out.set(frameHeader(type, payload.length));
  out.set(payload, frameHeaderBytes);
  return out;
}

export interface Frame {
  type: FrameType;
  /**
   * Exactly the payload's bytes in a buffer of its own, so keeping it does not pin a socket read.
   * For a StreamChunk frame, only its chunk header (or as much of it as arrived: the frame may
   * be too short).
   */
  payload: Uint8Array;
  /** StreamChunk frames only: the bytes after the chunk header (the pairs), in a buffer of their own. */
  pairs?: Uint8Array;
}

export class FrameReader {
  /** Socket reads not yet consumed, as plain views; the first is consumed up to `offset`. */
  private readonly chunks: Uint8Array[] = [];
  private offset = 0;
  /** Invariant: bufferedBytes = Σ chunk lengths − offset. */
  private bufferedBytes = 0;
  /** The frame size limit in force; starts at the Hello limit. */
  frameBytesLimit = helloFrameBytesMax;

  /**
   * Appends bytes read from the socket and yields each frame now complete. Lazily: a change
   * to `frameBytesLimit` made while handling one frame applies to the next.
   */
  *push(chunk: Uint8Array): Generator<Frame> {
    if (chunk.length > 0) {
      this.chunks.push(chunk.constructor === Uint8Array ? chunk : new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length));
      this.bufferedBytes += chunk.length;
    }
    while (this.bufferedBytes >= frameHeaderBytes) {
      const frameBytes = ((this.byteAt(0) << 24) | (this.byteAt(1) << 16) | (this.byteAt(2) << 8) | this.byteAt(3)) >>> 0;
      if (frameBytes === 0) throw new FramingError('frame of 0 bytes has no type');
      if (frameBytes > this.frameBytesLimit) throw new FramingError(`frame of ${frameBytes} bytes exceeds the limit of ${this.frameBytesLimit}`);
      const type = this.byteAt(4);
      if (!knownFrameTypes.has(type)) throw new FramingError(`unknown frame type ${type}`);
      if (this.bufferedBytes < frameHeaderBytes + frameBytes - 1) break;
      this.skip(frameHeaderBytes);
      if (type === FrameType.StreamChunk) {
        const headerBytes = Math.min(chunkHeaderBytes, frameBytes - 1);
        const payload = this.take(headerBytes);
        yield { type, payload, pairs: this.take(frameBytes - 1 - headerBytes) };
      } else yield { type, payload: this.take(frameBytes - 1) };
    }
  }

  /** Bytes received but not yet part of a complete frame. */
  get pendingBytes(): number {
    return this.bufferedBytes;
  }

  /** The byte `i` places after the read position; the caller checked that it was received. */
  private byteAt(i: number): number {
    let at = this.offset + i;
    for (const c of this.chunks) {
      if (at < c.length) return c[at];
      at -= c.length;
    }
    throw new Error(`unreachable: byte ${i} past the ${this.bufferedBytes} buffered`);
  }

  private skip(n: number): void {
    this.bufferedBytes -= n;
    this.offset += n;
    while (this.chunks.length > 0 && this.offset >= this.chunks[0].length) {
      this.offset -= this.chunks[0].length;
      this.chunks.shift();
    }
  }

  private take(n: number): Uint8Array {
    const first = this.chunks[0];
    if (n === 0) return new Uint8Array(0);
    // A whole socket read is handed out as it is; a part of one is copied, so that keeping a
    // small frame does not pin a large read buffer.
    if (this.offset === 0 && first.length === n) {
      this.skip(n);
      return first;
    }
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[0];
      const used = Math.min(c.length - this.offset, n - filled);
      out.set(c.subarray(this.offset, this.offset + used), filled);
      filled += used;
      this.skip(used);
    }
    return out;
  }
}

export interface Hello {
  version: number;
  clusterToken: string;
  from: MemberId;
  to: MemberId;
  /** HMAC of the other fields keyed by the admission secret (./admission.ts). */
  proof: Uint8Array;
}

const packr = new Packr({ useRecords: false });

export function encodeHello(h: Hello): Uint8Array {
  return packr.pack([h.version, h.clusterToken, h.from, h.to, h.proof]);
}

/** Returns the Hello, or a reason it is not one. */
export function decodeHello(payload: Uint8Array): Hello | string {
  let raw: unknown;
  try {
    raw = packr.unpack(payload);
  } catch (err) {
    return `undecodable hello: ${err instanceof Error ? err.message : describeDecoded(err)}`;
  }
  if (!Array.isArray(raw) || raw.length !== 5) return `hello is ${describeDecoded(raw)}, not a 5-tuple`;
  const [version, clusterToken, from, to, proof] = raw as unknown[];
  if (version !== protocolVersion) return `protocol version ${describeDecoded(version)} is not ${protocolVersion}`;
  if (typeof clusterToken !== 'string') return `cluster token is ${describeDecoded(clusterToken)}, not a string`;
  if (!isMemberId(from) || !isMemberId(to)) return `hello with member ids ${describeDecoded(from)} -> ${describeDecoded(to)}`;
  if (!(proof instanceof Uint8Array) || proof.length !== helloProofBytes) return `admission proof is ${describeDecoded(proof)}, not ${helloProofBytes} bytes`;
  return { version, clusterToken, from, to, proof: new Uint8Array(proof) };
}

export function isMemberId(v: unknown): v is MemberId {
  return typeof v === 'number' && Number.isSafeInteger(v) && v > 0;
}

/** SnapshotHead payload: `[u32 data bytes][encoded message with empty snapshot data]`. */
export function encodeSnapshotHead(dataBytes: number, message: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + message.length);
  new DataView(out.buffer).setUint32(0, dataBytes);
  out.set(message, 4);
  return out;
}

export function decodeSnapshotHead(payload: Uint8Array): { dataBytes: number; message: Uint8Array } | string {
  if (payload.length < 4) return `snapshot head of ${payload.length} bytes`;
  return { dataBytes: new DataView(payload.buffer, payload.byteOffset, 4).getUint32(0), message: payload.subarray(4) };
}

// The StreamChunk frame's header: [u8 chunk format 1][u64 to][u64 from][u64 term]
// [u64 stream id][u64 sequence][u32 CRC-32C][u8 flags: bit 0 = last chunk, bit 1 = no context
// (null, not empty)], integers big-endian.
// It carries exactly the fields a SnapChunk message uses (snapshot-stream.ts: index = stream id,
// commit = sequence, reject = last, rejectHint = the checksum); the others are zero or empty.

const chunkFormat = 1;
export const chunkHeaderBytes = 46;
const chunkLastFlag = 1;
const chunkNoContextFlag = 2;

/** Whether `m` can travel as a StreamChunk frame: a SnapChunk using only the fields the header carries. */
export function isStreamChunk(m: Message): boolean {
  return (
    m.type === MessageType.SnapChunk &&
    m.logTerm === 0 &&
    m.entries.length === 0 &&
    m.snapshot === null &&
    Number.isInteger(m.rejectHint) &&
    m.rejectHint >= 0 &&
    m.rejectHint <= 0xffffffff
  );
}

/**
 * The frame header and chunk header of a StreamChunk frame carrying `m`, in one buffer; the
 * caller writes `m.context` (the pairs) after it. Throws if `m` is not isStreamChunk.
 */
export function encodeStreamChunkHead(m: Message): Uint8Array {
  if (!isStreamChunk(m)) throw new Error(`a ${MessageType[m.type]} message with these fields does not fit a StreamChunk frame`);
  const pairsBytes = m.context?.length ?? 0;
  const out = new Uint8Array(frameHeaderBytes + chunkHeaderBytes);
  writeFrameHeader(out, 0, FrameType.StreamChunk, chunkHeaderBytes + pairsBytes);
  const dv = new DataView(out.buffer);
  let at = frameHeaderBytes;
  out[at++] = chunkFormat;
  for (const v of [m.to, m.from, m.term, m.index, m.commit]) {
    if (!Number.isSafeInteger(v) || v < 0) throw new Error(`stream chunk field ${v} is not a safe non-negative integer`);
    dv.setUint32(at, Math.floor(v / 0x1_0000_0000));
    dv.setUint32(at + 4, v >>> 0);
    at += 8;
  }
  dv.setUint32(at, m.rejectHint);
  out[at + 4] = (m.reject ? chunkLastFlag : 0) | (m.context === null ? chunkNoContextFlag : 0);
  return out;
}

/** The SnapChunk message a StreamChunk frame carries (its context: `pairs`, not copied), or why it is not one. */
export function decodeStreamChunk(header: Uint8Array, pairs: Uint8Array): Message | string {
  if (header.length !== chunkHeaderBytes) return `stream chunk frame of ${header.length + pairs.length} bytes is shorter than its ${chunkHeaderBytes}-byte header`;
  if (header[0] !== chunkFormat) return `stream chunk format ${header[0]} is not ${chunkFormat}`;
  const dv = new DataView(header.buffer, header.byteOffset, header.byteLength);
  const fields: number[] = [];
  for (let at = 1; at < 41; at += 8) {
    const high = dv.getUint32(at);
    if (high > 0x1fffff) return `stream chunk field at byte ${at} is not a safe integer`;
    fields.push(high * 0x1_0000_0000 + dv.getUint32(at + 4));
  }
  const [to, from, term, streamId, seq] = fields;
  if (to === 0 || from === 0) return `stream chunk from member ${from} to member ${to}: 0 is not a member id`;
  const flags = header[45];
  if ((flags & ~(chunkLastFlag | chunkNoContextFlag)) !== 0) return `stream chunk flags ${flags} has unknown bits`;
  const noContext = (flags & chunkNoContextFlag) !== 0;
  if (noContext && pairs.length > 0) return `stream chunk without a context carries ${pairs.length} bytes`;
  return {
    type: MessageType.SnapChunk,
    to,
    from,
    term,
    logTerm: 0,
    index: streamId,
    entries: [],
    commit: seq,
    reject: (flags & chunkLastFlag) !== 0,
    rejectHint: dv.getUint32(41),
    snapshot: null,
    context: noContext ? null : pairs.constructor === Uint8Array ? pairs : new Uint8Array(pairs.buffer, pairs.byteOffset, pairs.byteLength),
  };
}
