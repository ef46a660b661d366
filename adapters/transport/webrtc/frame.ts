// Frames of the WebRTC transport. A data channel carries messages, not a byte stream, so one
// data-channel message is one frame: `[u8 type][payload]`, at most `frameBytesMax` bytes,
// a size every WebRTC stack accepts. Small Raft messages are batched into one frame; a message
// too big for a frame (a snapshot, a long append) is streamed as a Start and Mores.
//
//   Batch  [u8 1]  ([u32 message bytes][message])+     messages encoded by src/codec/message.ts
//   Start  [u8 2]  [u32 message bytes][first bytes]    a streamed message begins
//   More   [u8 3]  [next bytes]                        until the announced bytes arrived

export enum FrameType {
  Batch = 1,
  Start = 2,
  More = 3,
}

/** The largest data-channel message sent: 64 KiB, the size every implementation accepts. */
export const frameBytesMax = 64 * 1024;
/** The largest encoded Raft message carried (a snapshot, streamed): sender drops, receiver discards. */
export const messageBytesMax = 256 * 1024 * 1024;
const lengthBytes = 4;
/** An encoded message up to this size travels inside a Batch; larger ones are streamed. */
export const batchedMessageBytesMax = frameBytesMax - 1 - lengthBytes;
/** Payload bytes of a Start (after its length) and of a More. */
export const startPartBytes = frameBytesMax - 1 - lengthBytes;
export const morePartBytes = frameBytesMax - 1;

if (messageBytesMax > 0xffffffff) throw new Error(`messageBytesMax ${messageBytesMax} does not fit a u32`);

export class FrameError extends Error {}

/** One Batch frame holding `messages`; their framed sizes must sum to at most frameBytesMax. */
export function encodeBatch(messages: readonly Uint8Array[]): Uint8Array {
  let bytes = 1;
  for (const m of messages) bytes += lengthBytes + m.length;
  if (bytes > frameBytesMax) throw new Error(`batch of ${bytes} bytes exceeds frameBytesMax ${frameBytesMax}`);
  const out = new Uint8Array(bytes);
  const view = new DataView(out.buffer);
  out[0] = FrameType.Batch;
  let at = 1;
  for (const m of messages) {
    view.setUint32(at, m.length);
    out.set(m, at + lengthBytes);
    at += lengthBytes + m.length;
  }
  return out;
}

/** The Start frame of `message` (longer than batchedMessageBytesMax); returns the bytes it carries. */
export function encodeStart(message: Uint8Array): { frame: Uint8Array; carried: number } {
  const carried = Math.min(startPartBytes, message.length);
  const out = new Uint8Array(1 + lengthBytes + carried);
  out[0] = FrameType.Start;
  new DataView(out.buffer).setUint32(1, message.length);
  out.set(message.subarray(0, carried), 1 + lengthBytes);
  return { frame: out, carried };
}

/** The next More frame of `message` from `offset`. */
export function encodeMore(message: Uint8Array, offset: number): { frame: Uint8Array; carried: number } {
  const carried = Math.min(morePartBytes, message.length - offset);
  const out = new Uint8Array(1 + carried);
  out[0] = FrameType.More;
  out.set(message.subarray(offset, offset + carried), 1);
  return { frame: out, carried };
}

/** Framed bytes of a message in a batch. */
export function batchedBytes(message: Uint8Array): number {
  return lengthBytes + message.length;
}

export type Frame = { type: FrameType.Batch; messages: Uint8Array[] } | { type: FrameType.Start; totalBytes: number; part: Uint8Array } | { type: FrameType.More; part: Uint8Array };

/** Parses one data-channel message; throws FrameError with a reason for a log line. */
export function decodeFrame(bytes: Uint8Array): Frame {
  if (bytes.length === 0) throw new FrameError('empty frame');
  if (bytes.length > frameBytesMax) throw new FrameError(`frame of ${bytes.length} bytes exceeds frameBytesMax ${frameBytesMax}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  switch (bytes[0]) {
    case FrameType.Batch: {
      const messages: Uint8Array[] = [];
      for (let at = 1; at < bytes.length; ) {
        if (at + lengthBytes > bytes.length) throw new FrameError(`batch ends inside a length at byte ${at}`);
        const n = view.getUint32(at);
        at += lengthBytes;
        if (n === 0 || at + n > bytes.length) throw new FrameError(`batched message of ${n} bytes at byte ${at} does not fit the ${bytes.length}-byte frame`);
        messages.push(bytes.subarray(at, at + n));
        at += n;
      }
      if (messages.length === 0) throw new FrameError('empty batch');
      return { type: FrameType.Batch, messages };
    }
    case FrameType.Start: {
      if (bytes.length < 1 + lengthBytes) throw new FrameError(`start frame of ${bytes.length} bytes`);
      const totalBytes = view.getUint32(1);
      const part = bytes.subarray(1 + lengthBytes);
      if (totalBytes > messageBytesMax) throw new FrameError(`streamed message of ${totalBytes} bytes exceeds messageBytesMax ${messageBytesMax}`);
      if (part.length > totalBytes) throw new FrameError(`start frame carries ${part.length} bytes of a ${totalBytes}-byte message`);
      return { type: FrameType.Start, totalBytes, part };
    }
    case FrameType.More:
      return { type: FrameType.More, part: bytes.subarray(1) };
    default:
      throw new FrameError(`unknown frame type ${bytes[0]}`);
  }
}
