// gRPC's wire protocol for etcd's services, served straight on node:http2. grpc-js's server
// wraps every call in several stream objects, metadata copies and per-message event hops; the
// leader's profile had Node's HTTP/2 layer plus grpc-js at about 40 % of its CPU
// (docs/benchmarks.md). etcd's subset needs far less: POST requests with
// `content-type: application/grpc`, 5-byte length-prefixed messages, unary calls, server
// streams and bidirectional streams, status in the trailers. This file is that transport and
// nothing else: the services (grpc-server.ts) register methods with a decoder, an encoder and
// a handler, and never see HTTP/2.
//
// What is deliberately left out: compression (etcdctl and the etcd3 client send identity
// messages; a compressed one gets UNIMPLEMENTED, as grpc-go answers an encoding it has no
// decompressor for), binary (-bin) metadata (etcd reads only text keys), and server push.
//
// Errors keep grpc-go's wording, which is what etcd's clients see from etcd itself.

import type * as http2 from 'node:http2';
import type { Duplex } from 'node:stream';
import { Status, toApiError } from './errors.ts';
import { H2Server, type StreamSink } from './h2/connection.ts';

/** Each gRPC message on the wire: 1 byte compressed flag, 4 bytes big-endian length. */
const prefixBytes = 5;
/** grpc-timeout's value: up to 8 digits and a unit (gRPC over HTTP/2 spec). */
const timeoutPattern = /^(\d{1,8})([HMSmun])$/;
const timeoutUnitMs: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 };
/** setTimeout's largest delay; longer deadlines are as good as none. */
const timerDelayMsMax = 2 ** 31 - 1;
/** What `decode` returns for bytes that are not the request (a request may itself decode to anything). */
const undecodable: unique symbol = Symbol('undecodable');

export type Headers = http2.IncomingHttpHeaders;

/**
 * The part of an HTTP/2 request stream a call uses: meshkv's own server's stream
 * (h2/connection.ts) has it, and node:http2's ServerHttp2Stream gets it from NodeStream below.
 * Its events go to one StreamSink (the call), not to listeners.
 */
export interface GrpcStream {
  readonly destroyed: boolean;
  readonly writableNeedDrain: boolean;
  respond(headers: http2.OutgoingHttpHeaders, options: { endStream?: boolean; waitForTrailers?: boolean }): void;
  write(bytes: Buffer): boolean;
  end(bytes?: Buffer): void;
  sendTrailers(trailers: http2.OutgoingHttpHeaders): void;
  /** Tells `sink` of the stream's data (after resume), end, drain, trailers and close. */
  attach(sink: StreamSink): void;
  /** Starts reading the request's bytes; until then they wait in flow control. */
  resume(): void;
  /** meshkv's server only: this stream's frames go after the turn's other frames (h2/connection.ts). */
  deferWrites?(): void;
}

/** node:http2's stream as a GrpcStream: its events become the sink's calls. */
class NodeStream implements GrpcStream {
  constructor(private readonly stream: http2.ServerHttp2Stream) {
    // Stream errors (a reset mid-write) end the stream; its 'close' tells the call.
    stream.on('error', () => {});
  }
  get destroyed(): boolean {
    return this.stream.destroyed;
  }
  get writableNeedDrain(): boolean {
    return this.stream.writableNeedDrain;
  }
  respond(headers: http2.OutgoingHttpHeaders, options: { endStream?: boolean; waitForTrailers?: boolean }): void {
    // A copy: node:http2 may add to the headers it is given (date), and ours are shared.
    this.stream.respond({ ...headers }, options);
  }
  write(bytes: Buffer): boolean {
    return this.stream.write(bytes);
  }
  end(bytes?: Buffer): void {
    if (bytes === undefined) this.stream.end();
    else this.stream.end(bytes);
  }
  sendTrailers(trailers: http2.OutgoingHttpHeaders): void {
    this.stream.sendTrailers(trailers);
  }
  attach(sink: StreamSink): void {
    this.stream.on('close', () => sink.streamClosed());
    this.stream.on('drain', () => sink.streamDrain());
    this.stream.on('wantTrailers', () => sink.streamWantsTrailers());
    this.stream.on('end', () => sink.streamEnd());
    this.sink = sink;
  }
  private sink: StreamSink | null = null;
  resume(): void {
    const sink = this.sink;
    if (sink !== null) this.stream.on('data', (chunk: Buffer) => sink.streamData(chunk));
  }
}

/** The trailers of a call that ends well: one object for every call (never changed). */
const okTrailers: http2.OutgoingHttpHeaders = { 'grpc-status': '0' };

/** One registered method: how its messages are read and written, and what answers it. */
export type Method =
  /**
   * A unary method's handler answers the call itself (call.reply or call.fail) and never
   * rejects: no reaction of the transport's waits on it (a waiting call holds less).
   */
  | { kind: 'unary'; decode(bytes: Buffer): unknown; encode(res: any): Buffer; handle(req: any, call: Call): void | Promise<void> }
  | { kind: 'serverStream'; decode(bytes: Buffer): unknown; encode(res: any): Buffer; handle(req: any, call: Call): void }
  | { kind: 'bidi'; decode(bytes: Buffer): unknown; encode(res: any): Buffer; handle(call: Call): void };

/** A status carried in the trailers: grpc-status and grpc-message. */
export class GrpcStatusError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * grpc-message is percent-encoded: printable ASCII but '%' stays, every other byte of the
 * UTF-8 text becomes %XX (gRPC over HTTP/2 spec).
 */
export function encodeGrpcMessage(message: string): string {
  if (/^[\x20-\x24\x26-\x7e]*$/.test(message)) return message;
  let out = '';
  for (const byte of Buffer.from(message, 'utf8')) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** Milliseconds from a grpc-timeout header, undefined for none; malformed values are refused. */
export function parseGrpcTimeout(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const m = timeoutPattern.exec(value);
  if (m === null) throw new GrpcStatusError(Status.Internal, `transport: malformed grpc-timeout: ${JSON.stringify(value)}`);
  return Number(m[1]) * timeoutUnitMs[m[2]!]!;
}

/**
 * One call on one HTTP/2 stream. Handlers read its metadata, write responses, end or fail it,
 * and learn when it is gone (client cancel, RST_STREAM, deadline, connection lost).
 */
export class Call implements StreamSink {
  /** Set once the call has its status or its stream is gone: nothing more is sent. */
  private done = false;
  private headersSent = false;
  private trailers: http2.OutgoingHttpHeaders = okTrailers;
  private closeHandlers: (() => void)[] | null = null;
  private drainWaiters: (() => void)[] | null = null;
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** Bytes of a message not yet complete (prefix included), carried across DATA frames. */
  private pending: Buffer | null = null;
  /** The reader: read()'s callbacks, or readOne()'s (`onMessage` null, the message kept in `message`). */
  private onMessage: ((req: any) => void) | null = null;
  private onEnd: ((req: unknown) => void) | null = null;
  private readingOne = false;
  /** readOne's request goes to answer() (answerOne). */
  private answering = false;
  private message: Buffer | null = null;

  constructor(
    private readonly stream: GrpcStream,
    readonly headers: Headers,
    private readonly method: Method,
    private readonly receiveBytesMax: number,
  ) {
    stream.attach(this);
  }

  /** A text metadata value (lower-case key); the first when repeated. */
  header(name: string): string | undefined {
    const v = this.headers[name];
    return Array.isArray(v) ? v[0] : v;
  }

  /** True once nothing more can be sent: the call has ended or failed, or its stream is gone. */
  get gone(): boolean {
    return this.done || this.stream.destroyed;
  }

  /** True while the client is not taking responses as fast as they are written (flow control). */
  get needsDrain(): boolean {
    return this.stream.writableNeedDrain;
  }

  /** Runs `fn` once when the call is over for any reason (at once if it already is). */
  onClose(fn: () => void): void {
    if (this.done || this.stream.destroyed) {
      fn();
      return;
    }
    (this.closeHandlers ??= []).push(fn);
  }

  /** Resolves when written responses have drained to the client, or the call is gone. */
  drained(): Promise<void> {
    return new Promise((resolve) => {
      if (this.gone || !this.stream.writableNeedDrain) return resolve();
      (this.drainWaiters ??= []).push(resolve);
    });
  }

  /** StreamSink: the stream's queue has room again. */
  streamDrain(): void {
    this.wakeDrainWaiters();
  }

  private wakeDrainWaiters(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = null;
    if (waiters !== null) for (const resolve of waiters) resolve();
  }

  /** Sends one response message; false when the client's buffer is full (wait for drained()). */
  write(res: unknown): boolean {
    if (this.gone) return false;
    this.sendHeaders();
    return this.stream.write(frame(this.method.encode(res)));
  }

  /**
   * Sends one response message already in gRPC's framing (`framedMessage`): the same bytes may
   * go to many calls. False when the client's buffer is full (wait for drained()).
   */
  writeFramed(framed: Buffer): boolean {
    if (this.gone) return false;
    this.sendHeaders();
    return this.stream.write(framed);
  }

  /** Ends the call with status OK, after the messages written so far. */
  end(): void {
    if (this.gone) return;
    this.finish();
    if (!this.headersSent) {
      this.stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '0' }, { endStream: true });
      return;
    }
    this.stream.end();
  }

  /** Ends the call with etcd's status for `err` (trailers-only when nothing was sent yet). */
  fail(err: unknown): void {
    if (this.gone) return;
    const { code, message } = err instanceof GrpcStatusError ? err : toApiError(err);
    this.finish();
    const status = { 'grpc-status': String(code), 'grpc-message': encodeGrpcMessage(message) };
    if (!this.headersSent) {
      this.stream.respond({ ':status': 200, 'content-type': 'application/grpc', ...status }, { endStream: true });
      return;
    }
    this.trailers = status;
    this.stream.end();
  }

  /** Answers a unary call: its one response and status OK. */
  reply(res: unknown): void {
    if (this.gone) return;
    this.sendHeaders();
    this.finish();
    this.stream.end(frame(this.method.encode(res)));
  }

  /**
   * Reads the client's messages: `onMessage` for each, decoded, then `onEnd` when the client
   * half-closes. Until this is called, the stream's bytes wait in HTTP/2's flow-control window.
   */
  read(onMessage: (req: any) => void, onEnd: () => void): void {
    this.onMessage = onMessage;
    this.onEnd = onEnd;
    this.stream.resume();
  }

  /** StreamSink: request bytes, cut into messages for read() or readOne(). */
  streamData(chunk: Buffer): void {
    if (this.done) return;
    if (this.readingOne) {
      try {
        this.split(chunk, (bytes) => {
          if (this.message !== null) throw new GrpcStatusError(Status.Internal, 'grpc: client streaming protocol violation: get <nil>, want <EOF>');
          this.message = bytes;
        });
      } catch (err) {
        this.fail(err);
      }
      return;
    }
    const onMessage = this.onMessage;
    if (onMessage === null) return;
    const messages: Buffer[] = [];
    try {
      this.split(chunk, (bytes) => messages.push(bytes));
    } catch (err) {
      return this.fail(err);
    }
    for (const bytes of messages) {
      if (this.done) return;
      const req = this.decode(bytes);
      if (req === undecodable) return;
      onMessage(req);
    }
  }

  /** StreamSink: the client has half-closed. */
  streamEnd(): void {
    const onEnd = this.onEnd;
    if (this.done || (onEnd === null && !this.answering)) return;
    if (this.pending !== null) return this.fail(truncated(this.pending));
    if (!this.readingOne) return onEnd!(undefined);
    const message = this.message;
    this.message = null;
    if (message === null) return this.fail(new GrpcStatusError(Status.Internal, 'grpc: client sent no request message on a unary call'));
    const req = this.decode(message);
    if (req === undecodable) return;
    if (this.answering) this.answer(req);
    else onEnd!(req);
  }

  /** One request message decoded, or `undecodable` once the call has failed with grpc-go's unmarshalling error. */
  private decode(bytes: Buffer): unknown {
    try {
      return this.method.decode(bytes);
    } catch (err) {
      this.fail(unmarshalError(err));
      return undecodable;
    }
  }

  /** Reads a unary or server-streaming call's single request message. */
  readOne(onRequest: (req: unknown) => void): void {
    this.readingOne = true;
    this.onEnd = onRequest;
    this.stream.resume();
  }

  /** Serves a unary call: its one request goes to the method's handler, which answers it. */
  answerOne(): void {
    this.readingOne = true;
    this.answering = true;
    this.stream.resume();
  }

  private answer(req: unknown): void {
    void (this.method as Extract<Method, { kind: 'unary' }>).handle(req, this);
  }

  /** Fails the call with DEADLINE_EXCEEDED after `ms` unless it ends first. */
  deadline(ms: number): void {
    if (ms > timerDelayMsMax) return;
    this.timer = setTimeout(() => this.fail(new GrpcStatusError(Status.DeadlineExceeded, 'context deadline exceeded')), ms);
  }

  /** Cuts `chunk` into messages (calling `onMessage` with each body), keeping a partial one. */
  private split(chunk: Buffer, onMessage: (bytes: Buffer) => void): void {
    let buf = this.pending === null ? chunk : Buffer.concat([this.pending, chunk]);
    this.pending = null;
    while (buf.length > 0) {
      if (buf.length < prefixBytes) {
        this.pending = buf;
        return;
      }
      const flag = buf[0]!;
      const length = buf.readUInt32BE(1);
      if (flag === 1) {
        const encoding = this.header('grpc-encoding') ?? 'identity';
        throw new GrpcStatusError(Status.Unimplemented, `grpc: Decompressor is not installed for grpc-encoding ${JSON.stringify(encoding)}`);
      }
      if (flag !== 0) throw new GrpcStatusError(Status.Internal, `grpc: received unexpected payload format ${flag}`);
      if (length > this.receiveBytesMax) {
        throw new GrpcStatusError(Status.ResourceExhausted, `grpc: received message larger than max (${length} vs. ${this.receiveBytesMax})`);
      }
      if (buf.length < prefixBytes + length) {
        this.pending = buf;
        return;
      }
      onMessage(buf.subarray(prefixBytes, prefixBytes + length));
      if (this.done) return;
      buf = buf.subarray(prefixBytes + length);
    }
  }

  private sendHeaders(): void {
    if (this.headersSent) return;
    this.headersSent = true;
    this.stream.respond(okResponseHeaders, waitForTrailers);
  }

  /** StreamSink: the response's messages are out; its status follows. */
  streamWantsTrailers(): void {
    this.stream.sendTrailers(this.trailers);
  }

  /** StreamSink: the stream is gone. */
  streamClosed(): void {
    this.closed();
  }

  /**
   * The call has its status: its handler's state (a watch, a keep-alive chain, a snapshot
   * reader) is freed now, as on a client cancel, even if the client never closes its half.
   */
  private finish(): void {
    this.closed();
  }

  private closed(): void {
    this.done = true;
    clearTimeout(this.timer);
    this.onMessage = null;
    this.onEnd = null;
    this.message = null;
    const handlers = this.closeHandlers;
    this.closeHandlers = null;
    if (handlers) for (const fn of handlers) fn();
    this.wakeDrainWaiters();
  }
}

const okResponseHeaders: http2.OutgoingHttpHeaders = { ':status': 200, 'content-type': 'application/grpc' };
const waitForTrailers = { waitForTrailers: true };

/** Bytes before each message: the compressed flag and the message's length. */
export const grpcPrefixBytes = prefixBytes;

/**
 * Writes the gRPC prefix into the first grpcPrefixBytes of `buf`, whose rest is one message
 * (never compressed), and returns `buf`.
 */
export function framedMessage(buf: Buffer): Buffer {
  buf[0] = 0;
  buf.writeUInt32BE(buf.length - prefixBytes, 1);
  return buf;
}

function frame(message: Buffer): Buffer {
  const out = Buffer.allocUnsafe(prefixBytes + message.length);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  message.copy(out, prefixBytes);
  return out;
}

/** grpc-go's status for request bytes that are not the method's message. */
export function unmarshalError(err: unknown): GrpcStatusError {
  return new GrpcStatusError(Status.Internal, `grpc: error unmarshalling request: ${err instanceof Error ? err.message : String(err)}`);
}

function truncated(pending: Buffer): GrpcStatusError {
  const want = pending.length >= prefixBytes ? `${pending.readUInt32BE(1)} bytes` : `a ${prefixBytes}-byte prefix`;
  return new GrpcStatusError(Status.Internal, `grpc: request ended inside a message: ${pending.length >= prefixBytes ? pending.length - prefixBytes : pending.length} bytes received of ${want}`);
}

/** A refusal before any call exists (not gRPC at all, or no such method): trailers-only. */
function refuse(stream: GrpcStream, httpStatus: number, code: number, message: string): void {
  stream.respond({ ':status': httpStatus, 'content-type': 'application/grpc', 'grpc-status': String(code), 'grpc-message': encodeGrpcMessage(message) }, { endStream: true });
}

export interface GrpcH2Options {
  /** The largest request message accepted; larger ones get RESOURCE_EXHAUSTED. */
  receiveBytesMax: number;
  /**
   * Serve HTTP/2 with meshkv's own server (h2/connection.ts) instead of node:http2: one socket
   * write per turn for all of a connection's streams, and no :authority shim needed.
   */
  ownHttp2?: boolean;
}

/**
 * An HTTP/2 server for gRPC methods keyed by path (`/etcdserverpb.KV/Range`). It never listens:
 * connections are handed to inject() (listener.ts sniffs them off the shared client port).
 */
export class GrpcH2Server {
  private readonly methods = new Map<string, Method>();
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  /** Exactly one of the two serves: node:http2 is loaded only when asked for (a few MB of a member's memory). */
  private readonly server: http2.Http2Server | null;
  private readonly own: H2Server | null;

  constructor(private readonly options: GrpcH2Options) {
    this.own = options.ownHttp2 ? new H2Server((stream, headers) => this.serve(stream, headers as Headers)) : null;
    this.server = options.ownHttp2 ? null : this.nodeServer();
  }

  private nodeServer(): http2.Http2Server {
    const server = process.getBuiltinModule('node:http2').createServer({
      // Many watch streams share one connection; nghttp2's default budget (10 MB) would refuse
      // new streams with ENHANCE_YOUR_CALM under a large fan-out.
      maxSessionMemory: 1024,
      settings: { maxConcurrentStreams: 2 ** 31 - 1 },
    });
    server.on('session', (session) => {
      this.sessions.add(session);
      session.on('close', () => this.sessions.delete(session));
      // A protocol error ends that connection only; Node reports it here, and it must not throw.
      session.on('error', () => session.destroy());
    });
    server.on('stream', (stream, headers) => this.serve(new NodeStream(stream), headers));
    return server;
  }

  /** True when connections go to meshkv's own HTTP/2 server (they need no :authority shim). */
  get ownHttp2(): boolean {
    return this.own !== null;
  }

  /** Registers `method` at `path`; each path once. */
  add(path: string, method: Method): void {
    if (this.methods.has(path)) throw new Error(`grpc-h2: ${path} registered twice`);
    this.methods.set(path, method);
  }

  /** Serves gRPC on a connection whose HTTP/2 preface has not been consumed. */
  inject(connection: Duplex): void {
    if (this.own !== null) this.own.inject(connection);
    else this.server!.emit('connection', connection);
  }

  /** Ends every connection (and so every call) at once. */
  close(): void {
    this.own?.close();
    for (const s of this.sessions) s.destroy();
    this.sessions.clear();
  }

  private serve(stream: GrpcStream, headers: Headers): void {
    if (headers[':method'] !== 'POST') return refuse(stream, 405, Status.Internal, `invalid gRPC request method ${JSON.stringify(headers[':method'])}`);
    const type = headers['content-type'];
    if (type === undefined || !/^application\/grpc($|[+;])/.test(type)) {
      return refuse(stream, 415, Status.Internal, `invalid gRPC request content-type ${JSON.stringify(type ?? '')}`);
    }
    const path = headers[':path'] ?? '';
    const method = this.methods.get(path);
    if (method === undefined) {
      const slash = path.lastIndexOf('/');
      const service = path.slice(1, slash);
      const known = slash > 0 && [...this.methods.keys()].some((p) => p.startsWith(`/${service}/`));
      return refuse(stream, 200, Status.Unimplemented, known ? `unknown method ${path.slice(slash + 1)} for service ${service}` : `unknown service ${service}`);
    }
    // A streaming call's messages (watch events) wait for the unary answers of the same turn.
    if (method.kind !== 'unary') stream.deferWrites?.();
    const call = new Call(stream, headers, method, this.options.receiveBytesMax);
    let timeoutMs: number | undefined;
    try {
      timeoutMs = parseGrpcTimeout(call.header('grpc-timeout'));
    } catch (err) {
      return call.fail(err);
    }
    if (timeoutMs !== undefined) call.deadline(timeoutMs);
    switch (method.kind) {
      case 'unary':
        call.answerOne();
        return;
      case 'serverStream':
        call.readOne((req) => method.handle(req, call));
        return;
      case 'bidi':
        method.handle(call);
    }
  }
}
