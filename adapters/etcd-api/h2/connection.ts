// One server-side HTTP/2 connection on a raw socket (plain TCP or TLS after ALPN "h2"), just
// the part of RFC 9113 that gRPC needs: the preface and SETTINGS, HEADERS + CONTINUATION with
// HPACK (../hpack.ts), DATA with connection and stream flow control, WINDOW_UPDATE, PING,
// RST_STREAM and GOAWAY. PRIORITY is read and ignored; server push is never used.
//
// Why it exists: on node:http2 every response message is a stream.write of its own (a JS
// Writable, a WriteWrap and an nghttp2 submit), and a watch event for 100 watchers on one
// connection was 100 of them — the largest share of the leader's CPU (docs/benchmarks.md).
// Here every frame a turn produces for a connection, for all of its streams, is gathered and
// goes to the socket in one write at the end of the turn.
//
// Bad input never throws out of here: a connection error sends GOAWAY with its error code and
// closes this connection only; a stream error resets that stream with RST_STREAM.

import type { Duplex } from 'node:stream';
import { encodeLiterals, HpackDecoder, HpackError, type HeaderField } from '../hpack.ts';
import {
  clientPreface,
  defaultFrameBytes,
  defaultWindowBytes,
  ErrorCode,
  Flag,
  frame,
  frameBytesLimitMax,
  frameHeaderBytes,
  FrameType,
  goawayFrame,
  rstStreamFrame,
  Setting,
  settingsFrame,
  windowBytesMax,
  windowUpdateFrame,
  writeFrameHeader,
} from './frames.ts';

export type IncomingHeaders = Record<string, string | string[] | undefined>;
export type OutgoingHeaders = Record<string, string | number | undefined>;

export interface H2Limits {
  /** Receive window of each stream (our SETTINGS_INITIAL_WINDOW_SIZE), and of the connection. */
  streamWindowBytes: number;
  connectionWindowBytes: number;
  /** The largest decoded header list accepted (SETTINGS_MAX_HEADER_LIST_SIZE, RFC 7541 sizes). */
  headerListBytesMax: number;
  /** Response bytes a stream may have queued behind flow control before write() says wait. */
  streamQueueBytesHigh: number;
}

export const defaultH2Limits: H2Limits = {
  streamWindowBytes: 1 << 20,
  connectionWindowBytes: 16 << 20,
  headerListBytesMax: 64 << 10,
  streamQueueBytesHigh: 16 << 10,
};

/** How long a connection ended with GOAWAY waits for the client to close before it is cut. */
const closeGraceMs = 2000;

/** A connection error: GOAWAY with `code`, then the connection closes. */
class ConnectionError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/** A queue's first buffer is at least this big, and at most this big by the last write's size. */
const queueBytesMin = 256;
const queueHintBytesMax = 64 << 10;

/**
 * Frames waiting for one socket write, copied into one buffer as they are queued: a DATA frame's
 * 9-byte header is written in place, not allocated, and the write needs no gathering. A watch
 * event for 100 streams was 200 small buffers (a header and the shared message per stream) and
 * a Buffer.concat of them (docs/benchmarks.md, "watch4, session 14").
 */
class FrameQueue {
  private buf: Buffer | null = null;
  private used = 0;
  /** The last write's size: a turn's frames for a connection look much like the last turn's. */
  private sizeHint = 0;

  get empty(): boolean {
    return this.used === 0;
  }

  /** Room for `bytes` more: the buffer grows to at least twice its size, keeping what it holds. */
  private reserve(bytes: number): Buffer {
    const buf = this.buf;
    const needed = this.used + bytes;
    if (buf !== null && needed <= buf.length) return buf;
    const grown = Buffer.allocUnsafe(Math.max(needed, queueBytesMin, this.sizeHint, buf === null ? 0 : 2 * buf.length));
    if (buf !== null) buf.copy(grown, 0, 0, this.used);
    this.buf = grown;
    return grown;
  }

  push(bytes: Uint8Array): void {
    const buf = this.reserve(bytes.length);
    buf.set(bytes, this.used);
    this.used += bytes.length;
  }

  /** A frame's header and its payload. */
  frame(type: number, flags: number, streamId: number, payload: Uint8Array): void {
    const buf = this.reserve(frameHeaderBytes + payload.length);
    writeFrameHeader(buf, this.used, payload.length, type, flags, streamId);
    buf.set(payload, this.used + frameHeaderBytes);
    this.used += frameHeaderBytes + payload.length;
  }

  /** What is queued, as one buffer the queue no longer touches; the queue is empty after. */
  take(): Buffer {
    if (this.buf === null) throw new Error('FrameQueue.take: nothing queued');
    const out = this.buf.subarray(0, this.used);
    this.sizeHint = Math.min(this.used, queueHintBytesMax);
    this.buf = null;
    this.used = 0;
    return out;
  }
}

/** The server's HEADERS for a gRPC response, and the usual trailers, encoded once. */
const okResponseBlock = encodeLiterals([
  { name: ':status', value: '200', sensitive: false },
  { name: 'content-type', value: 'application/grpc', sensitive: false },
]);
const okTrailersBlock = encodeLiterals([{ name: 'grpc-status', value: '0', sensitive: false }]);

function headerBlock(headers: OutgoingHeaders): Buffer {
  if (headers[':status'] === 200 && headers['content-type'] === 'application/grpc' && Object.keys(headers).length === 2) return okResponseBlock;
  if (headers['grpc-status'] === '0' && Object.keys(headers).length === 1) return okTrailersBlock;
  const fields: HeaderField[] = [];
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) fields.push({ name, value: String(value), sensitive: false });
  }
  return encodeLiterals(fields);
}

/**
 * What reads a stream and hears of its progress: the gRPC call (../grpc-h2.ts). Methods of one
 * object rather than event listeners, so that a request waiting for its answer holds no
 * closures and no listener table (docs/benchmarks.md, "reqpool, session 13").
 */
export interface StreamSink {
  /** A chunk of the request's body, once resume() has been called. */
  streamData(chunk: Buffer): void;
  /** The client has half-closed, after every chunk before it. */
  streamEnd(): void;
  /** write() said wait, and the queue now has room. */
  streamDrain(): void;
  /** end() of a response begun with waitForTrailers: the trailers go now (sendTrailers). */
  streamWantsTrailers(): void;
  /** Gone for good: reset, the connection's end, or both halves closed. Once. */
  streamClosed(): void;
}

/** DATA (then the trailers) waiting for flow-control window. */
interface Queued {
  data: Buffer;
  endStream: boolean;
  trailers: Buffer | null;
}

/**
 * One request stream: the part of node:http2's ServerHttp2Stream that the gRPC layer
 * (../grpc-h2.ts) uses — respond / write / end / sendTrailers, `destroyed` and
 * `writableNeedDrain` — with its events told to one StreamSink.
 */
export class H2Stream {
  destroyed = false;
  /** The client has sent END_STREAM. */
  remoteEnded = false;
  /** No more may be written: END_STREAM is queued or sent. */
  private localEnded = false;
  /** END_STREAM has gone to the connection. */
  private sentEnd = false;
  /** write() has said wait: streamDrain follows once the queue has room. */
  private reportedFull = false;
  private waitForTrailers = false;
  /** This stream's frames go out after the turn's other frames (see deferWrites). */
  private deferred = false;
  /** The reader has called resume(): bytes go to it as they arrive. */
  private reading = false;
  /** The client's end arrived before the reader: streamEnd follows the bytes held. */
  private endPending = false;
  private sink: StreamSink | null = null;
  /** Frames waiting for flow-control window, in order (null while none has waited). */
  private queue: Queued[] | null = null;
  private queuedBytes = 0;
  /** Bytes received before resume(), in order (null while there are none). */
  private inbound: Buffer[] | null = null;
  sendWindow: number;
  recvWindow: number;
  /** Received bytes handed to the reader but not yet returned to the client as window. */
  private consumed = 0;

  constructor(
    private readonly conn: H2Connection,
    readonly id: number,
  ) {
    this.sendWindow = conn.peerInitialWindow;
    this.recvWindow = conn.limits.streamWindowBytes;
  }

  /** Tells `sink` of this stream's data, end, drain, trailers and close from now on. */
  attach(sink: StreamSink): void {
    this.sink = sink;
  }

  /**
   * Starts handing the request's bytes to the sink. Like a paused Readable: until then they
   * wait (in HTTP/2's flow-control window). What waited goes on the next tick, not inside this call.
   */
  resume(): void {
    if (this.reading) return;
    this.reading = true;
    if (this.inbound !== null || this.endPending) process.nextTick(() => this.deliverHeld());
  }

  private deliverHeld(): void {
    const inbound = this.inbound;
    this.inbound = null;
    if (inbound !== null) for (const chunk of inbound) this.deliver(chunk);
    if (this.endPending) {
      this.endPending = false;
      if (!this.destroyed) this.sink?.streamEnd();
    }
  }

  /**
   * Sends this stream's frames after the frames other streams queue in the same turn, in a
   * write of their own: for streams of many messages (watch), so that the answers to unary
   * calls queued alongside — a put whose events the watch streams carry — reach the client
   * first. Order within the stream is kept. Called before the stream sends anything.
   */
  deferWrites(): void {
    this.deferred = true;
  }

  get writableNeedDrain(): boolean {
    return this.queuedBytes >= this.conn.limits.streamQueueBytesHigh;
  }

  /** A DATA payload from the client. */
  received(chunk: Buffer, endStream: boolean): void {
    if (chunk.length > 0) {
      if (this.reading && this.inbound === null) this.deliver(chunk);
      else (this.inbound ??= []).push(chunk);
    }
    if (endStream) this.remoteClosed();
  }

  remoteClosed(): void {
    if (this.destroyed) return;
    this.remoteEnded = true;
    this.signalEnd();
    if (this.sentEnd) this.close();
  }

  /** streamEnd for the reader, after the bytes it has not read yet. */
  signalEnd(): void {
    if (!this.reading || this.inbound !== null) this.endPending = true;
    else this.sink?.streamEnd();
  }

  private deliver(chunk: Buffer): void {
    if (this.destroyed) return;
    this.consumed += chunk.length;
    // Window goes back once half of it has been read, not per frame.
    if (this.consumed >= this.conn.limits.streamWindowBytes / 2 && !this.remoteEnded) {
      this.recvWindow += this.consumed;
      this.conn.send(windowUpdateFrame(this.id, this.consumed));
      this.consumed = 0;
    }
    this.sink?.streamData(chunk);
  }

  respond(headers: OutgoingHeaders, options: { endStream?: boolean; waitForTrailers?: boolean } = {}): void {
    if (this.destroyed || this.localEnded) return;
    this.waitForTrailers = options.waitForTrailers === true;
    this.conn.sendHeaders(this.id, headerBlock(headers), options.endStream === true, this.deferred);
    if (options.endStream) this.localClosed();
  }

  write(data: Buffer): boolean {
    if (this.destroyed || this.localEnded) return false;
    this.push(data, false, null);
    if (!this.writableNeedDrain) return true;
    this.reportedFull = true;
    return false;
  }

  end(data?: Buffer): void {
    if (this.destroyed || this.localEnded) return;
    if (this.waitForTrailers) {
      if (data !== undefined) this.push(data, false, null);
      this.waitForTrailers = false;
      this.sink?.streamWantsTrailers();
      return;
    }
    this.push(data ?? Buffer.alloc(0), true, null);
  }

  sendTrailers(trailers: OutgoingHeaders): void {
    if (this.destroyed || this.localEnded) return;
    this.push(Buffer.alloc(0), true, headerBlock(trailers));
  }

  /** Queues DATA (and trailers) behind what is queued already, then sends what the windows allow. */
  private push(data: Buffer, endStream: boolean, trailers: Buffer | null): void {
    if (endStream) this.localEnded = true;
    if ((this.queue === null || this.queue.length === 0) && this.trySend(data, endStream, trailers)) return;
    (this.queue ??= []).push({ data, endStream, trailers });
    this.queuedBytes += data.length;
    // What the windows allow goes now, in pieces: the client opens them only after receiving.
    if (!this.flushQueue()) this.conn.blocked.add(this);
  }

  /** Sends a whole queued item if the windows allow (splitting into frames); false if not. */
  private trySend(data: Buffer, endStream: boolean, trailers: Buffer | null): boolean {
    if (data.length > 0 && (data.length > this.sendWindow || data.length > this.conn.sendWindow)) return false;
    this.sendWindow -= data.length;
    this.conn.sendWindow -= data.length;
    // No empty DATA frame ahead of trailers: Node counts those as invalid frames (an
    // empty-frame flood, CVE-2019-9518) and ends the connection after 1000.
    if (data.length > 0 || (endStream && trailers === null)) this.conn.sendData(this.id, data, endStream && trailers === null, this.deferred);
    if (trailers !== null) this.conn.sendHeaders(this.id, trailers, true, this.deferred);
    if (endStream) this.localClosed();
    return true;
  }

  /** Sends what the windows now allow; true when nothing is left queued. */
  flushQueue(): boolean {
    const queue = this.queue;
    while (queue !== null && queue.length > 0 && !this.destroyed) {
      const item = queue[0]!;
      // A message larger than what the windows will ever open at once goes in pieces.
      const room = Math.min(this.sendWindow, this.conn.sendWindow);
      if (item.data.length > 0 && item.data.length > room) {
        if (room <= 0) return false;
        const piece = item.data.subarray(0, room);
        item.data = item.data.subarray(room);
        this.queuedBytes -= room;
        this.trySend(piece, false, null);
        continue;
      }
      queue.shift();
      this.queuedBytes -= item.data.length;
      this.trySend(item.data, item.endStream, item.trailers);
    }
    if (this.reportedFull && !this.writableNeedDrain) {
      this.reportedFull = false;
      this.sink?.streamDrain();
    }
    return this.queue === null || this.queue.length === 0;
  }

  private localClosed(): void {
    this.localEnded = true;
    this.sentEnd = true;
    if (this.remoteEnded) return this.close();
    // The response is complete while the client may still be sending (a call that failed
    // early): tell it to stop, as gRPC servers do (RFC 9113 §8.1).
    this.conn.send(rstStreamFrame(this.id, ErrorCode.NO_ERROR), this.deferred);
    this.close();
  }

  /** Resets the stream with `code` (a stream error, or the server abandoning it). */
  reset(code: number): void {
    if (this.destroyed) return;
    this.conn.send(rstStreamFrame(this.id, code), this.deferred);
    this.close();
  }

  /** Gone for good: the reset or the connection's end, or both halves closed. */
  close(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.localEnded = true;
    this.queue = null;
    this.queuedBytes = 0;
    this.inbound = null;
    this.conn.forget(this);
    this.sink?.streamClosed();
  }
}

/** What the server does with each new request stream. */
export type StreamHandler = (stream: H2Stream, headers: IncomingHeaders) => void;

export class H2Connection {
  readonly streams = new Map<number, H2Stream>();
  /** Streams with DATA waiting for window. */
  readonly blocked = new Set<H2Stream>();
  peerInitialWindow = defaultWindowBytes;
  sendWindow = defaultWindowBytes;
  private peerFrameBytesMax = defaultFrameBytes;
  private recvWindow = defaultWindowBytes;
  private consumed = 0;
  private readonly decoder: HpackDecoder;
  private lastStreamId = 0;
  private buf: Buffer = Buffer.alloc(0);
  private prefaceSeen = false;
  private sawSettings = false;
  /** A header block being read across CONTINUATION frames. */
  private headerBlock: { streamId: number; endStream: boolean; parts: Buffer[]; bytes: number } | null = null;
  private out = new FrameQueue();
  private flushScheduled = false;
  /** Frames of deferred streams (H2Stream.deferWrites), written after `out` in a later phase. */
  private later = new FrameQueue();
  private laterScheduled = false;
  private closed = false;

  constructor(
    private readonly socket: Duplex,
    readonly limits: H2Limits,
    private readonly onStream: StreamHandler,
    private readonly onClose: () => void,
  ) {
    this.decoder = new HpackDecoder(4096);
    this.send(
      settingsFrame([
        [Setting.ENABLE_PUSH, 0],
        [Setting.INITIAL_WINDOW_SIZE, limits.streamWindowBytes],
        [Setting.MAX_HEADER_LIST_SIZE, limits.headerListBytesMax],
      ]),
    );
    if (limits.connectionWindowBytes > defaultWindowBytes) {
      this.send(windowUpdateFrame(0, limits.connectionWindowBytes - defaultWindowBytes));
      this.recvWindow = limits.connectionWindowBytes;
    }
    socket.on('data', (chunk: Buffer) => this.read(chunk));
    socket.on('error', () => this.destroy());
    socket.on('close', () => this.destroy());
    socket.on('end', () => this.destroy());
  }

  /**
   * Queues bytes for the socket; all of a turn's frames go out in one write, at the end of the
   * turn's microtasks. `deferred` bytes go in a second write once the turn's I/O callbacks are
   * done (setImmediate), after every frame queued before it.
   */
  send(bytes: Buffer, deferred = false): void {
    if (this.closed) return;
    this.queueFor(deferred).push(bytes);
  }

  /** Queues one frame, its header written in place. */
  private sendFrame(type: number, flags: number, streamId: number, payload: Uint8Array, deferred: boolean): void {
    if (this.closed) return;
    this.queueFor(deferred).frame(type, flags, streamId, payload);
  }

  /** The queue for a frame, with its write scheduled. */
  private queueFor(deferred: boolean): FrameQueue {
    if (deferred) {
      if (!this.laterScheduled) {
        this.laterScheduled = true;
        setImmediate(() => this.flushLater());
      }
      return this.later;
    }
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(() => this.flush());
    }
    return this.out;
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.closed || this.out.empty) return;
    this.socket.write(this.out.take());
  }

  private flushLater(): void {
    this.laterScheduled = false;
    if (this.closed || this.later.empty) return;
    // Frames queued since the turn's end write go first; usually there are none and the
    // deferred frames are written as they were queued, without a copy.
    if (this.out.empty) {
      this.socket.write(this.later.take());
      return;
    }
    this.promoteLater();
    this.flush();
  }

  /** Moves the deferred frames into the next write, behind what it holds. */
  private promoteLater(): void {
    if (!this.later.empty) this.out.push(this.later.take());
  }

  sendHeaders(streamId: number, block: Buffer, endStream: boolean, deferred = false): void {
    const flags = endStream ? Flag.END_STREAM : 0;
    if (block.length <= this.peerFrameBytesMax) return this.sendFrame(FrameType.HEADERS, flags | Flag.END_HEADERS, streamId, block, deferred);
    let at = 0;
    let type: number = FrameType.HEADERS;
    while (at < block.length) {
      const piece = block.subarray(at, at + this.peerFrameBytesMax);
      at += piece.length;
      this.sendFrame(type, (type === FrameType.HEADERS ? flags : 0) | (at === block.length ? Flag.END_HEADERS : 0), streamId, piece, deferred);
      type = FrameType.CONTINUATION;
    }
  }

  /**
   * DATA frames for `data`, already within the windows; gRPC's small messages make one frame.
   * `data` is copied into the write's buffer and not kept: one watch message's bytes may be
   * queued for many streams.
   */
  sendData(streamId: number, data: Buffer, endStream: boolean, deferred = false): void {
    if (data.length <= this.peerFrameBytesMax) return this.sendFrame(FrameType.DATA, endStream ? Flag.END_STREAM : 0, streamId, data, deferred);
    for (let at = 0; at < data.length; at += this.peerFrameBytesMax) {
      const piece = data.subarray(at, at + this.peerFrameBytesMax);
      this.sendFrame(FrameType.DATA, endStream && at + piece.length === data.length ? Flag.END_STREAM : 0, streamId, piece, deferred);
    }
  }

  forget(stream: H2Stream): void {
    this.streams.delete(stream.id);
    this.blocked.delete(stream);
  }

  /** Ends the connection: GOAWAY with `code`, then the socket's end (cut after closeGraceMs). */
  goaway(code: number, debug: string): void {
    if (this.closed) return;
    this.promoteLater();
    this.send(goawayFrame(this.lastStreamId, code, debug));
    this.flush();
    this.shutDown();
    this.socket.end();
    setTimeout(() => this.socket.destroy(), closeGraceMs).unref();
  }

  destroy(): void {
    this.shutDown();
    this.socket.destroy();
  }

  private shutDown(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of [...this.streams.values()]) s.close();
    this.onClose();
  }

  private read(chunk: Buffer): void {
    if (this.closed) return;
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    try {
      if (!this.prefaceSeen) {
        const n = Math.min(this.buf.length, clientPreface.length);
        if (!this.buf.subarray(0, n).equals(clientPreface.subarray(0, n))) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'invalid connection preface');
        if (this.buf.length < clientPreface.length) return;
        this.buf = this.buf.subarray(clientPreface.length);
        this.prefaceSeen = true;
      }
      while (this.buf.length >= frameHeaderBytes && !this.closed) {
        const length = (this.buf[0]! << 16) | (this.buf[1]! << 8) | this.buf[2]!;
        // We never raise SETTINGS_MAX_FRAME_SIZE, so the default is the limit (RFC 9113 §4.2).
        if (length > defaultFrameBytes) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, `frame of ${length} bytes exceeds ${defaultFrameBytes}`);
        if (this.buf.length < frameHeaderBytes + length) return;
        const type = this.buf[3]!;
        const flags = this.buf[4]!;
        const streamId = this.buf.readUInt32BE(5) & 0x7fffffff;
        const payload = this.buf.subarray(frameHeaderBytes, frameHeaderBytes + length);
        this.buf = this.buf.subarray(frameHeaderBytes + length);
        this.frame(type, flags, streamId, payload);
      }
    } catch (err) {
      if (err instanceof ConnectionError) return this.goaway(err.code, err.message);
      // A bug of ours: this connection ends, the process and other connections go on.
      this.goaway(ErrorCode.INTERNAL_ERROR, err instanceof Error ? err.message : String(err));
    }
  }

  private frame(type: number, flags: number, streamId: number, payload: Buffer): void {
    if (!this.sawSettings && type !== FrameType.SETTINGS) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'first frame is not SETTINGS');
    if (this.headerBlock !== null && (type !== FrameType.CONTINUATION || streamId !== this.headerBlock.streamId)) {
      throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'expected CONTINUATION');
    }
    switch (type) {
      case FrameType.DATA:
        return this.data(flags, streamId, payload);
      case FrameType.HEADERS:
        return this.headers(flags, streamId, payload);
      case FrameType.CONTINUATION:
        if (this.headerBlock === null) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'CONTINUATION without HEADERS');
        return this.continuation(flags, payload);
      case FrameType.PRIORITY:
        if (streamId === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'PRIORITY on stream 0');
        if (payload.length !== 5) this.streamError(streamId, ErrorCode.FRAME_SIZE_ERROR);
        return;
      case FrameType.RST_STREAM:
        if (streamId === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'RST_STREAM on stream 0');
        if (payload.length !== 4) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'RST_STREAM payload is not 4 bytes');
        if (streamId > this.lastStreamId) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'RST_STREAM on an idle stream');
        this.streams.get(streamId)?.close();
        return;
      case FrameType.SETTINGS:
        return this.settings(flags, streamId, payload);
      case FrameType.PUSH_PROMISE:
        throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'PUSH_PROMISE from a client');
      case FrameType.PING:
        if (streamId !== 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'PING on a stream');
        if (payload.length !== 8) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'PING payload is not 8 bytes');
        if ((flags & Flag.ACK) === 0) this.send(frame(FrameType.PING, Flag.ACK, 0, payload));
        return;
      case FrameType.GOAWAY:
        if (streamId !== 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'GOAWAY on a stream');
        // The client opens no more streams; the ones open finish, then it closes the socket.
        return;
      case FrameType.WINDOW_UPDATE:
        return this.windowUpdate(streamId, payload);
      default:
      // Unknown frame types are ignored (RFC 9113 §4.1).
    }
  }

  private settings(flags: number, streamId: number, payload: Buffer): void {
    if (streamId !== 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'SETTINGS on a stream');
    if (flags & Flag.ACK) {
      if (payload.length !== 0) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'SETTINGS acknowledgement with a payload');
      return;
    }
    if (payload.length % 6 !== 0) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'SETTINGS payload is not a multiple of 6 bytes');
    this.sawSettings = true;
    for (let at = 0; at < payload.length; at += 6) {
      const id = payload.readUInt16BE(at);
      const value = payload.readUInt32BE(at + 2);
      switch (id) {
        case Setting.ENABLE_PUSH:
          if (value > 1) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'SETTINGS_ENABLE_PUSH is not 0 or 1');
          break;
        case Setting.INITIAL_WINDOW_SIZE: {
          if (value > windowBytesMax) throw new ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, 'SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1');
          const delta = value - this.peerInitialWindow;
          this.peerInitialWindow = value;
          for (const s of this.streams.values()) {
            s.sendWindow += delta;
            if (s.sendWindow > windowBytesMax) throw new ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, 'stream window above 2^31-1');
          }
          break;
        }
        case Setting.MAX_FRAME_SIZE:
          if (value < defaultFrameBytes || value > frameBytesLimitMax) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'SETTINGS_MAX_FRAME_SIZE out of range');
          this.peerFrameBytesMax = value;
          break;
        default:
        // HEADER_TABLE_SIZE: our encoder never uses the dynamic table. The rest bind the client.
      }
    }
    // DATA already queued was sized by the old settings: it goes ahead of the acknowledgement.
    this.promoteLater();
    this.send(frame(FrameType.SETTINGS, Flag.ACK, 0));
    this.resumeBlocked();
  }

  private windowUpdate(streamId: number, payload: Buffer): void {
    if (payload.length !== 4) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'WINDOW_UPDATE payload is not 4 bytes');
    const increment = payload.readUInt32BE(0) & 0x7fffffff;
    if (streamId === 0) {
      if (increment === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'WINDOW_UPDATE with increment 0');
      this.sendWindow += increment;
      if (this.sendWindow > windowBytesMax) throw new ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, 'connection window above 2^31-1');
      return this.resumeBlocked();
    }
    if (streamId > this.lastStreamId) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'WINDOW_UPDATE on an idle stream');
    const s = this.streams.get(streamId);
    if (s === undefined) return; // closed: may still be in flight (RFC 9113 §6.9)
    if (increment === 0) return this.streamError(streamId, ErrorCode.PROTOCOL_ERROR);
    s.sendWindow += increment;
    if (s.sendWindow > windowBytesMax) return this.streamError(streamId, ErrorCode.FLOW_CONTROL_ERROR);
    if (s.flushQueue()) this.blocked.delete(s);
  }

  private resumeBlocked(): void {
    for (const s of [...this.blocked]) {
      if (this.sendWindow <= 0) return;
      if (s.flushQueue()) this.blocked.delete(s);
    }
  }

  private data(flags: number, streamId: number, payload: Buffer): void {
    if (streamId === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'DATA on stream 0');
    if (streamId > this.lastStreamId) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'DATA on an idle stream');
    // The whole frame, padding included, counts against the windows (RFC 9113 §6.9.1).
    if (payload.length > this.recvWindow) throw new ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, 'DATA beyond the connection window');
    this.recvWindow -= payload.length;
    this.consumed += payload.length;
    if (this.consumed >= this.limits.connectionWindowBytes / 2) {
      this.recvWindow += this.consumed;
      this.send(windowUpdateFrame(0, this.consumed));
      this.consumed = 0;
    }
    const body = unpad(flags, payload);
    const s = this.streams.get(streamId);
    if (s === undefined || s.remoteEnded) return this.streamError(streamId, ErrorCode.STREAM_CLOSED);
    if (payload.length > s.recvWindow) return this.streamError(streamId, ErrorCode.FLOW_CONTROL_ERROR);
    s.recvWindow -= payload.length;
    s.received(body, (flags & Flag.END_STREAM) !== 0);
  }

  private headers(flags: number, streamId: number, payload: Buffer): void {
    if (streamId === 0 || streamId % 2 === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, `HEADERS on stream ${streamId}`);
    let body = unpad(flags, payload);
    if (flags & Flag.PRIORITY) {
      if (body.length < 5) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'HEADERS too short for its priority fields');
      body = body.subarray(5);
    }
    this.headerBlock = { streamId, endStream: (flags & Flag.END_STREAM) !== 0, parts: [body], bytes: body.length };
    if (flags & Flag.END_HEADERS) this.endHeaders();
    else this.checkBlockSize();
  }

  private continuation(flags: number, payload: Buffer): void {
    const block = this.headerBlock!;
    block.parts.push(payload);
    block.bytes += payload.length;
    if (flags & Flag.END_HEADERS) this.endHeaders();
    else this.checkBlockSize();
  }

  /** A header block still growing past the header list limit is cut off before it is decoded. */
  private checkBlockSize(): void {
    if (this.headerBlock!.bytes > this.limits.headerListBytesMax) {
      throw new ConnectionError(ErrorCode.ENHANCE_YOUR_CALM, `header block over ${this.limits.headerListBytesMax} bytes`);
    }
  }

  private endHeaders(): void {
    const { streamId, endStream, parts } = this.headerBlock!;
    this.headerBlock = null;
    let fields: HeaderField[];
    try {
      fields = this.decoder.decode(parts.length === 1 ? parts[0]! : Buffer.concat(parts));
    } catch (err) {
      if (err instanceof HpackError) throw new ConnectionError(ErrorCode.COMPRESSION_ERROR, `HPACK: ${err.message}`);
      throw err;
    }
    const existing = this.streams.get(streamId);
    if (existing !== undefined) {
      // Trailers from the client: they must end the stream.
      if (existing.remoteEnded) return this.streamError(streamId, ErrorCode.STREAM_CLOSED);
      if (!endStream) return this.streamError(streamId, ErrorCode.PROTOCOL_ERROR);
      return existing.remoteClosed();
    }
    if (streamId <= this.lastStreamId) throw new ConnectionError(ErrorCode.STREAM_CLOSED, `HEADERS on closed stream ${streamId}`);
    this.lastStreamId = streamId;
    const stream = new H2Stream(this, streamId);
    let listBytes = 0;
    const headers: IncomingHeaders = {};
    for (const { name, value } of fields) {
      listBytes += name.length + value.length + 32;
      if (name !== name.toLowerCase()) return stream.reset(ErrorCode.PROTOCOL_ERROR);
      const had = headers[name];
      headers[name] = had === undefined ? value : Array.isArray(had) ? [...had, value] : [had, value];
    }
    if (typeof headers[':method'] !== 'string' || typeof headers[':path'] !== 'string') return stream.reset(ErrorCode.PROTOCOL_ERROR);
    this.streams.set(streamId, stream);
    if (listBytes > this.limits.headerListBytesMax) {
      // HTTP's answer to an oversize header list (RFC 6585 431); the stream ends there.
      stream.respond({ ':status': 431 }, { endStream: true });
      return;
    }
    // A request without a body: the stream is half-closed before the handler sees it.
    stream.remoteEnded = endStream;
    this.onStream(stream, headers);
    if (endStream && !stream.destroyed) stream.signalEnd();
  }

  private streamError(streamId: number, code: number): void {
    const s = this.streams.get(streamId);
    if (s !== undefined) s.reset(code);
    else this.send(rstStreamFrame(streamId, code));
  }
}

/** A DATA or HEADERS payload without its padding (RFC 9113 §6.1). */
function unpad(flags: number, payload: Buffer): Buffer {
  if ((flags & Flag.PADDED) === 0) return payload;
  if (payload.length < 1) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'padded frame without a pad length');
  const pad = payload[0]!;
  if (pad >= payload.length) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'padding as long as the frame');
  return payload.subarray(1, payload.length - pad);
}

/** Serves HTTP/2 connections; `onStream` receives each request stream with its headers. */
export class H2Server {
  private readonly connections = new Set<H2Connection>();

  constructor(
    private readonly onStream: StreamHandler,
    private readonly limits: H2Limits = defaultH2Limits,
  ) {}

  /** Serves a connection whose first unread bytes are the client preface. */
  inject(socket: Duplex): void {
    const c: H2Connection = new H2Connection(socket, this.limits, this.onStream, () => this.connections.delete(c));
    this.connections.add(c);
  }

  close(): void {
    for (const c of [...this.connections]) c.goaway(ErrorCode.NO_ERROR, 'server closing');
    this.connections.clear();
  }
}
