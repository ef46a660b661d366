// The outbound side of the TCP transport: one connection to one peer, a bounded queue of
// encoded messages in front of it, and reconnection with capped exponential backoff.
// Snapshots are streamed in chunks; other messages may go between two chunks.

import net from 'node:net';
import tls from 'node:tls';
import type { MemberId } from '../../../src/raft/types.ts';
import { SizedQueue } from '../sized-queue.ts';
import {
  FrameReader,
  FrameType,
  FramingError,
  encodeHello,
  encodeSnapshotHead,
  frameBytesMax,
  frameHeader,
  frameHeaderBytes,
  protocolVersion,
  snapshotChunkBytes,
  writeFrameHeader,
  removedReason,
} from './frame.ts';
import { helloProof } from './admission.ts';

export type LogFn = (level: 'debug' | 'info' | 'warn', msg: string) => void;

export interface LinkBounds {
  /** Messages waiting for the socket, per peer; beyond it the oldest non-snapshot ones are dropped. */
  queueMessagesMax: number;
  /** Bytes waiting for the socket, per peer (snapshot data included). */
  queueBytesMax: number;
  /** Bytes handed to the socket but not yet flushed to the kernel before we stop writing. */
  socketBufferedBytesMax: number;
  reconnectDelayMsMin: number;
  reconnectDelayMsMax: number;
}

export interface LinkOptions {
  selfId: MemberId;
  peerId: MemberId;
  host: string;
  port: number;
  clusterToken: string;
  admissionSecret: string;
  tls: tls.ConnectionOptions | null;
  bounds: LinkBounds;
  log: LogFn;
  /** Consulted again just before each write, so a block applies to what is already queued. */
  isBlocked: () => boolean;
  /** The peer has refused this member as removed for removalConfirmMs, with no accept since. */
  onRemoved: () => void;
  /** An accepted connection closed: what was written into it may be lost (a snapshot stream's chunks among it). */
  onDown: () => void;
}

/**
 * How long a peer must keep refusing this member as removed before the member believes it. A
 * member re-added under the same id may be refused for a moment by a peer that has not yet
 * applied the re-add; a removed member is refused for good.
 */
export const removalConfirmMs = 2000;

/** Frames up to this size are copied into a shared write buffer; larger ones are written as they are. */
const coalesceFrameBytesMax = 64 * 1024;
/** One coalesced write holds at most about this many bytes. */
const writeBatchBytesMax = 256 * 1024;

type Item =
  | { kind: 'message'; payload: Uint8Array; bytes: number }
  /** A StreamChunk frame: `head` (frame and chunk headers), then `pairs` written as they are. */
  | { kind: 'chunk'; head: Uint8Array; pairs: Uint8Array; bytes: number }
  | { kind: 'snapshot'; head: Uint8Array; data: Uint8Array; bytes: number };

/** A snapshot being written: the next data offset to send. */
interface Stream {
  data: Uint8Array;
  offset: number;
}

export class PeerLink {
  private socket: net.Socket | null = null;
  /** True once the socket is connected (and, with TLS, the handshake is done). */
  private writable = false;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private reconnectDelayMs: number;
  private closed = false;
  private readonly queue: SizedQueue<Item>;
  private stream: Stream | null = null;
  private droppedMessages = 0;
  /** Why the last connection attempt failed, so a repeated failure logs once. */
  private lastFailure: string | null = null;
  /** When the peer last accepted this connection (Date.now()); null while not connected. */
  private acceptedAt: number | null = null;
  /** When the peer first refused this member as removed, since its last accept; null if not. */
  private refusedAsRemovedAt: number | null = null;

  constructor(private readonly o: LinkOptions) {
    this.queue = new SizedQueue<Item>((item) => item.bytes, `queue to peer ${o.peerId}`);
    this.reconnectDelayMs = o.bounds.reconnectDelayMsMin;
    this.connect();
  }

  get address(): string {
    return `${this.o.host}:${this.o.port}`;
  }

  /** Since when the peer has been reachable over this link, or null (etcd's ActiveSince). */
  get activeSince(): number | null {
    return this.acceptedAt;
  }

  get queuedMessages(): number {
    return this.queue.length;
  }

  enqueueMessage(payload: Uint8Array): void {
    this.push({ kind: 'message', payload, bytes: payload.length + frameHeaderBytes });
  }

  /** `head` is encodeStreamChunkHead's; the pairs are written after it, not copied (nor changed meanwhile). */
  enqueueStreamChunk(head: Uint8Array, pairs: Uint8Array): void {
    this.push({ kind: 'chunk', head, pairs, bytes: head.length + pairs.length });
  }

  /** `messageWithoutData` is the encoded Snap message with empty snapshot data. */
  enqueueSnapshot(messageWithoutData: Uint8Array, data: Uint8Array): void {
    const head = encodeSnapshotHead(data.length, messageWithoutData);
    this.push({ kind: 'snapshot', head, data, bytes: head.length + data.length + frameHeaderBytes });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this.socket?.destroy();
    this.socket = null;
    this.queue.clear();
    this.stream = null;
  }

  /**
   * Queues without writing: the transport enqueues every message of one send() first and then
   * calls flush(), so a Ready's messages to a peer go out in one write, and at once (no
   * microtask later, behind the caller's own WAL write and whatever else runs before it).
   */
  private push(item: Item): void {
    if (this.closed) return;
    this.queue.push(item);
    this.enforceBounds();
  }

  /** Drops the oldest non-snapshot items, then older snapshots; the newest item always stays. */
  private enforceBounds(): void {
    const { queueMessagesMax, queueBytesMax } = this.o.bounds;
    let dropped = 0;
    for (let pass = 0; pass < 2; pass++) {
      for (let i = 0; i < this.queue.length - 1 && this.overBounds(); ) {
        if (pass === 0 && this.queue.at(i).kind === 'snapshot') {
          i++;
          continue;
        }
        dropped++;
        this.queue.removeAt(i);
      }
    }
    if (this.overBounds() && this.queuedMessages > 1) {
      throw new Error(`queue to peer ${this.o.peerId} holds ${this.queue.length} items, ${this.queue.bytes} bytes after dropping: over its bounds`);
    }
    if (dropped === 0) return;
    if (this.droppedMessages === 0) {
      this.o.log(
        'warn',
        `tcp transport ${this.o.selfId}: queue to peer ${this.o.peerId} (${this.address}) is full ` +
          `(queueMessagesMax ${queueMessagesMax}, queueBytesMax ${queueBytesMax}): dropping the oldest messages`,
      );
    }
    this.droppedMessages += dropped;
  }

  private overBounds(): boolean {
    return this.queue.length > this.o.bounds.queueMessagesMax || this.queue.bytes > this.o.bounds.queueBytesMax;
  }


  /** Writes queued frames until the socket's buffer is full; resumes on 'drain'. */
  flush(): void {
    const s = this.socket;
    if (!s || !this.writable) return;
    const bufferedMax = this.o.bounds.socketBufferedBytesMax;
    s.cork();
    try {
      while (s.writableLength < bufferedMax) {
        const next = this.queue.length > 0 ? this.queue.at(0) : null;
        if (next && next.kind === 'message') {
          this.writeMessages(s);
        } else if (next && next.kind === 'chunk') {
          this.queue.shift();
          if (this.o.isBlocked()) continue;
          s.write(next.head);
          if (next.pairs.length > 0) s.write(next.pairs);
        } else if (this.stream) {
          const { data, offset } = this.stream;
          const end = Math.min(offset + snapshotChunkBytes, data.length);
          this.writeFrame(s, FrameType.SnapshotChunk, data.subarray(offset, end));
          this.stream = end === data.length ? null : { data, offset: end };
        } else if (next && next.kind === 'snapshot') {
          this.queue.shift();
          if (this.o.isBlocked()) continue;
          this.writeFrame(s, FrameType.SnapshotHead, next.head);
          if (next.data.length > 0) this.stream = { data: next.data, offset: 0 };
        } else {
          break;
        }
      }
    } finally {
      s.uncork();
    }
    if (this.queuedMessages === 0 && this.droppedMessages > 0) {
      this.o.log('info', `tcp transport ${this.o.selfId}: dropped ${this.droppedMessages} messages to peer ${this.o.peerId} while its queue was full`);
      this.droppedMessages = 0;
    }
  }

  /**
   * Writes the queued messages up to the next snapshot: small ones copied into one buffer
   * (a write per frame costs more than the copy), a large one on its own.
   */
  private writeMessages(s: net.Socket): void {
    const first = this.queue.at(0);
    if (first.kind !== 'message') throw new Error(`writeMessages at a ${first.kind} item`);
    if (first.bytes > coalesceFrameBytesMax) {
      this.queue.shift();
      if (!this.o.isBlocked()) this.writeFrame(s, FrameType.Message, first.payload);
      return;
    }
    let bytes = 0;
    let count = 0;
    for (; count < this.queue.length && bytes < writeBatchBytesMax; count++) {
      const item = this.queue.at(count);
      if (item.kind !== 'message' || item.bytes > coalesceFrameBytesMax) break;
      bytes += item.bytes;
    }
    if (this.o.isBlocked()) {
      for (let i = 0; i < count; i++) this.queue.shift();
      return;
    }
    const out = new Uint8Array(bytes);
    let at = 0;
    for (let i = 0; i < count; i++) {
      const item = this.queue.shift();
      if (item.kind !== 'message') throw new Error(`unreachable: ${item.kind} item in a message batch`);
      writeFrameHeader(out, at, FrameType.Message, item.payload.length);
      out.set(item.payload, at + frameHeaderBytes);
      at += item.bytes;
    }
    if (at !== bytes) throw new Error(`message batch filled ${at} of ${bytes} bytes`);
    s.write(out);
  }

  private writeFrame(s: net.Socket, type: FrameType, payload: Uint8Array): void {
    s.write(frameHeader(type, payload.length));
    if (payload.length > 0) s.write(payload);
  }

  private connect(): void {
    this.reconnectTimer = null;
    if (this.closed) return;
    const { host, port } = this.o;
    const s = this.o.tls ? tls.connect({ ...this.o.tls, host, port, servername: net.isIP(host) ? undefined : host }) : net.connect({ host, port });
    this.socket = s;
    s.setNoDelay(true);
    s.once(this.o.tls ? 'secureConnect' : 'connect', () => {
      if (this.socket !== s) return;
      this.writable = true;
      const claims = { version: protocolVersion, clusterToken: this.o.clusterToken, from: this.o.selfId, to: this.o.peerId };
      this.writeFrame(s, FrameType.Hello, encodeHello({ ...claims, proof: helloProof(this.o.admissionSecret, claims) }));
      this.flush();
    });
    s.on('drain', () => this.flush());
    const reader = new FrameReader();
    s.on('data', (chunk: Buffer) => {
      try {
        for (const f of reader.push(chunk)) this.onFrame(f.type, f.payload);
      } catch (err) {
        if (!(err instanceof FramingError)) throw err;
        this.o.log('warn', `tcp transport ${this.o.selfId}: peer ${this.o.peerId} (${this.address}) broke framing: ${err.message}; reconnecting`);
        s.destroy();
      }
    });
    s.on('error', (err: NodeJS.ErrnoException) => {
      // 'close' follows and schedules the retry.
      this.noteFailure(`connection to peer ${this.o.peerId} (${this.address}) failed: ${err.code ?? err.message}`);
    });
    s.on('close', () => {
      if (this.socket !== s) return;
      const wasUp = this.acceptedAt !== null;
      this.socket = null;
      this.writable = false;
      this.acceptedAt = null;
      if (wasUp && !this.closed) this.o.onDown();
      if (this.stream) {
        this.o.log('info', `tcp transport ${this.o.selfId}: snapshot stream to peer ${this.o.peerId} cut at ${this.stream.offset}/${this.stream.data.length} bytes`);
        this.stream = null;
      }
      if (this.closed) return;
      this.reconnectTimer = setTimeout(() => this.connect(), this.reconnectDelayMs);
      this.reconnectDelayMs = Math.min(this.reconnectDelayMs * 2, this.o.bounds.reconnectDelayMsMax);
    });
  }

  private noteRefusedAsRemoved(): void {
    const now = Date.now();
    this.refusedAsRemovedAt ??= now;
    if (now - this.refusedAsRemovedAt >= removalConfirmMs) this.o.onRemoved();
  }

  private noteFailure(reason: string): void {
    if (reason !== this.lastFailure) this.o.log('warn', `tcp transport ${this.o.selfId}: ${reason}`);
    this.lastFailure = reason;
  }

  private onFrame(type: FrameType, payload: Uint8Array): void {
    if (type === FrameType.Accept) {
      if (this.lastFailure !== null) this.o.log('info', `tcp transport ${this.o.selfId}: connected to peer ${this.o.peerId} (${this.address})`);
      this.lastFailure = null;
      this.acceptedAt = Date.now();
      this.refusedAsRemovedAt = null;
      this.reconnectDelayMs = this.o.bounds.reconnectDelayMsMin;
      return;
    }
    if (type === FrameType.Refuse) {
      const reason = new TextDecoder().decode(payload);
      this.noteFailure(`peer ${this.o.peerId} (${this.address}) refused the connection: ${reason}`);
      if (reason === removedReason) this.noteRefusedAsRemoved();
      return;
    }
    throw new FramingError(`unexpected frame type ${FrameType[type]} from the listening side`);
  }
}

export const defaultLinkBounds: LinkBounds = {
  queueMessagesMax: 4096,
  queueBytesMax: 64 * 1024 * 1024,
  socketBufferedBytesMax: 1024 * 1024,
  reconnectDelayMsMin: 50,
  reconnectDelayMsMax: 2000,
};

if (defaultLinkBounds.queueBytesMax < frameBytesMax) {
  throw new Error(`queueBytesMax ${defaultLinkBounds.queueBytesMax} must hold at least one largest frame (${frameBytesMax})`);
}
