// Framing for the TCP transport: `[u32 frame bytes, big endian][u8 type][payload]`, where
// frame bytes counts the type byte and the payload. A FrameReader cuts a byte stream into
// frames and throws FramingError when the stream cannot be framed any more (the connection
// must then be closed: nothing after a bad header can be trusted).

import { Packr } from 'msgpackr';
import type { MemberId } from '../../../src/raft/types.ts';

export enum FrameType {
  /** First frame from the connecting side: protocol version, cluster token, its id, the id it expects to reach. */
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
export const protocolVersion = 1;

if (snapshotChunkBytes + 1 > frameBytesMax) throw new Error(`snapshotChunkBytes ${snapshotChunkBytes} does not fit frameBytesMax ${frameBytesMax}`);
if (snapshotBytesMax > 0xffffffff) throw new Error(`snapshotBytesMax ${snapshotBytesMax} does not fit the u32 in a SnapshotHead`);
if (clusterTokenBytesMax + 64 > helloFrameBytesMax) throw new Error(`a Hello with a ${clusterTokenBytesMax}-byte token may exceed helloFrameBytesMax ${helloFrameBytesMax}`);

const knownFrameTypes: ReadonlySet<number> = new Set(Object.values(FrameType).filter((v): v is number => typeof v === 'number'));

export class FramingError extends Error {}

export function frameHeader(type: FrameType, payloadBytes: number): Uint8Array {
  const frameBytes = payloadBytes + 1;
  if (frameBytes > frameBytesMax) throw new Error(`frame of ${frameBytes} bytes exceeds frameBytesMax ${frameBytesMax}`);
  const h = new Uint8Array(frameHeaderBytes);
  new DataView(h.buffer).setUint32(0, frameBytes);
  h[4] = type;
  return h;
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
  /** Exactly the payload's bytes in a buffer of its own, so keeping it does not pin a socket read. */
  payload: Uint8Array;
}

export class FrameReader {
  private readonly chunks: Uint8Array[] = [];
  private bufferedBytes = 0;
  /** The frame size limit in force; starts at the Hello limit. */
  frameBytesLimit = helloFrameBytesMax;

  /**
   * Appends bytes read from the socket and yields each frame now complete. Lazily: a change
   * to `frameBytesLimit` made while handling one frame applies to the next.
   */
  *push(chunk: Uint8Array): Generator<Frame> {
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.bufferedBytes += chunk.length;
    }
    while (this.bufferedBytes >= frameHeaderBytes) {
      const header = this.peek(frameHeaderBytes);
      const frameBytes = new DataView(header.buffer, header.byteOffset, frameHeaderBytes).getUint32(0);
      if (frameBytes === 0) throw new FramingError('frame of 0 bytes has no type');
      if (frameBytes > this.frameBytesLimit) throw new FramingError(`frame of ${frameBytes} bytes exceeds the limit of ${this.frameBytesLimit}`);
      const type = header[4];
      if (!knownFrameTypes.has(type)) throw new FramingError(`unknown frame type ${type}`);
      if (this.bufferedBytes < frameHeaderBytes + frameBytes - 1) break;
      this.take(frameHeaderBytes);
      yield { type, payload: this.take(frameBytes - 1) };
    }
  }

  /** Bytes received but not yet part of a complete frame. */
  get pendingBytes(): number {
    return this.bufferedBytes;
  }

  private peek(n: number): Uint8Array {
    const first = this.chunks[0];
    if (first.length >= n) return first.subarray(0, n);
    return this.copyOut(n, false);
  }

  private take(n: number): Uint8Array {
    const first = this.chunks[0];
    if (n === 0) return new Uint8Array(0);
    if (first.length === n) {
      this.chunks.shift();
      this.bufferedBytes -= n;
      // A plain view of a whole socket read (Node hands out Buffers).
      return first.constructor === Uint8Array ? first : new Uint8Array(first.buffer, first.byteOffset, n);
    }
    return this.copyOut(n, true);
  }

  private copyOut(n: number, consume: boolean): Uint8Array {
    const out = new Uint8Array(n);
    let filled = 0;
    let i = 0;
    while (filled < n) {
      const c = this.chunks[i];
      const used = Math.min(c.length, n - filled);
      out.set(c.subarray(0, used), filled);
      filled += used;
      if (consume) {
        if (used === c.length) this.chunks.shift();
        else this.chunks[0] = c.subarray(used);
      } else {
        i++;
      }
    }
    if (consume) this.bufferedBytes -= n;
    return out;
  }
}

export interface Hello {
  version: number;
  clusterToken: string;
  from: MemberId;
  to: MemberId;
}

const packr = new Packr({ useRecords: false });

export function encodeHello(h: Hello): Uint8Array {
  return packr.pack([h.version, h.clusterToken, h.from, h.to]);
}

/** Returns the Hello, or a reason it is not one. */
export function decodeHello(payload: Uint8Array): Hello | string {
  let raw: unknown;
  try {
    raw = packr.unpack(payload);
  } catch (err) {
    return `undecodable hello: ${(err as Error).message}`;
  }
  if (!Array.isArray(raw) || raw.length !== 4) return 'hello is not a 4-tuple';
  const [version, clusterToken, from, to] = raw as unknown[];
  if (version !== protocolVersion) return `protocol version ${String(version)} is not ${protocolVersion}`;
  if (typeof clusterToken !== 'string') return 'hello without a cluster token';
  if (!isMemberId(from) || !isMemberId(to)) return `hello with member ids ${String(from)} -> ${String(to)}`;
  return { version, clusterToken, from, to };
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
