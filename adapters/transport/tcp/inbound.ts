// The listening side of one TCP connection: checks the Hello (cluster token, admission proof,
// addressee), then validates every frame before a message reaches Raft, and reassembles
// streamed snapshots. A chunk stream cut by a disconnect is discarded with the connection.
// Until the Hello is accepted frames are tiny (helloFrameBytesMax); after it, at most the
// transport's frame limit, and a connection that stops in the middle of a frame or of a
// snapshot stream for stallTimeoutMs is closed, so nobody holds a partial frame's buffer open.
// A connection idle between frames holds no buffer and stays: members that do not talk to each
// other for a while (two followers) keep their links, and the transport's cap bounds them.

import type net from 'node:net';
import { MessageDecodeError, decodeMessage, describeDecoded } from '../../../src/codec/message.ts';
import { MessageType, type MemberId, type Message } from '../../../src/raft/types.ts';
import {
  FrameReader,
  FrameType,
  FramingError,
  clusterTokenBytesMax,
  decodeHello,
  decodeStreamChunk,
  decodeSnapshotHead,
  encodeFrame,
  frameHeader,
  removedReason,
  snapshotBytesMax,
} from './frame.ts';
import type { LogFn } from './peer-link.ts';
import { helloProofValid } from './admission.ts';
import { pauseAwareTimeout, timerLateMsPaused } from '../../clock/pause-aware-timeout.ts';

/** How long a refused connection stays open for the Refuse frame to reach the peer. */
const refusedLingerMs = 1000;
export interface InboundOptions {
  selfId: MemberId;
  clusterToken: string;
  /** A Hello must prove knowledge of it (./admission.ts). */
  admissionSecret: string;
  log: LogFn;
  handshakeTimeoutMs: number;
  /** An accepted connection that stops mid-frame or mid-snapshot for this long is closed. */
  stallTimeoutMs: number;
  /** The largest frame accepted after the Hello. */
  frameBytesMax: number;
  /** Whether a message from `peer` may reach Raft (a member of the configuration, or one being admitted). */
  admits: (peer: MemberId) => boolean;
  isBlocked: (peer: MemberId) => boolean;
  /** The member table removed `peer`: its connection is refused with removedReason. */
  isRemoved: (peer: MemberId) => boolean;
  deliver: (m: Message) => void;
}

/** A snapshot being received: the message it belongs to and the chunks so far. */
interface Assembly {
  message: Message;
  dataBytes: number;
  chunks: Uint8Array[];
  receivedBytes: number;
}

export class InboundConnection {
  /** The peer's id once its Hello is accepted; 0 before. */
  private peer: MemberId = 0;
  /** Set once a Refuse is sent: nothing more from this connection is looked at. */
  private refused = false;
  private assembly: Assembly | null = null;
  private readonly reader = new FrameReader();
  private readonly remote: string;
  /** Cancels the Hello deadline (pause-aware: ../../clock/pause-aware-timeout.ts); null once the Hello came. */
  private cancelHandshakeTimer: (() => void) | null;
  private stallTimer: ReturnType<typeof setTimeout> | null = null;
  /** When (performance.now()) the stall timer is due: it is refreshed by every chunk read. */
  private stallDueMs = 0;
  /** Messages from a peer the transport does not admit, dropped since the last log line. */
  private unadmittedDropped = 0;

  constructor(
    private readonly socket: net.Socket,
    private readonly o: InboundOptions,
  ) {
    this.remote = `${socket.remoteAddress}:${socket.remotePort}`;
    socket.setNoDelay(true);
    this.cancelHandshakeTimer = pauseAwareTimeout(
      o.handshakeTimeoutMs,
      () => this.refuse(`no hello within ${o.handshakeTimeoutMs} ms`),
      (lateMs) => this.o.log('debug', `tcp transport ${o.selfId}: the handshake timer of ${this.who()} fired ${Math.round(lateMs)} ms late (this process was paused): waiting another ${o.handshakeTimeoutMs} ms`),
    );
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err: NodeJS.ErrnoException) => this.o.log('debug', `tcp transport ${o.selfId}: inbound ${this.who()}: ${err.code ?? err.message}`));
    socket.on('close', () => {
      this.cancelHandshakeTimer?.();
      if (this.stallTimer) clearTimeout(this.stallTimer);
      if (this.assembly) {
        const a = this.assembly;
        this.o.log('info', `tcp transport ${o.selfId}: snapshot stream from ${this.who()} interrupted at ${a.receivedBytes}/${a.dataBytes} bytes; discarded`);
        this.assembly = null;
      }
    });
  }

  /** The peer's id once its Hello is accepted; 0 before. */
  get peerId(): MemberId {
    return this.peer;
  }

  close(): void {
    this.socket.destroy();
  }

  private who(): string {
    return this.peer === 0 ? this.remote : `peer ${this.peer} (${this.remote})`;
  }

  private onData(chunk: Buffer): void {
    if (this.refused || this.socket.destroyed) return;
    if (this.stallTimer) this.refreshStallTimer();
    try {
      for (const f of this.reader.push(chunk)) {
        this.onFrame(f.type, f.payload, f.pairs);
        if (this.refused || this.socket.destroyed) return;
      }
    } catch (err) {
      if (!(err instanceof FramingError)) throw err;
      this.o.log('warn', `tcp transport ${this.o.selfId}: closing connection from ${this.who()}: ${err.message}`);
      this.socket.destroy();
    }
  }

  private onFrame(type: FrameType, payload: Uint8Array, pairs: Uint8Array | undefined): void {
    if (this.peer === 0) {
      if (type !== FrameType.Hello) throw new FramingError(`first frame is ${FrameType[type]}, not Hello`);
      this.onHello(payload);
      return;
    }
    switch (type) {
      case FrameType.Message: {
        const m = this.decode(payload, 'message');
        if (m) this.maybeDeliver(m);
        return;
      }
      case FrameType.SnapshotHead:
        return this.onSnapshotHead(payload);
      case FrameType.SnapshotChunk:
        return this.onSnapshotChunk(payload);
      case FrameType.StreamChunk: {
        const m = decodeStreamChunk(payload, pairs ?? new Uint8Array(0));
        if (typeof m === 'string') this.o.log('warn', `tcp transport ${this.o.selfId}: dropped snapshot stream chunk from ${this.who()}: ${m}`);
        else this.maybeDeliver(m);
        return;
      }
      default:
        throw new FramingError(`unexpected ${FrameType[type]} frame after the handshake`);
    }
  }

  private onHello(payload: Uint8Array): void {
    this.cancelHandshakeTimer?.();
    this.cancelHandshakeTimer = null;
    const hello = decodeHello(payload);
    if (typeof hello === 'string') return this.refuse(hello);
    if (new TextEncoder().encode(hello.clusterToken).length > clusterTokenBytesMax) return this.refuse(`cluster token longer than ${clusterTokenBytesMax} bytes`);
    // Neither token is quoted: the refusal goes to whoever connected.
    if (hello.clusterToken !== this.o.clusterToken) return this.refuse(`cluster token mismatch: member ${hello.from} has another --initial-cluster-token than member ${this.o.selfId}`);
    if (!helloProofValid(this.o.admissionSecret, hello, hello.proof)) return this.refuse(`admission refused: member ${hello.from} does not prove the cluster's admission secret`);
    if (hello.to !== this.o.selfId) return this.refuse(`member ${hello.from} expected member ${hello.to} at this address, but this is member ${this.o.selfId}`);
    if (this.o.isRemoved(hello.from)) return this.refuse(removedReason);
    this.peer = hello.from;
    this.reader.frameBytesLimit = this.o.frameBytesMax;
    const onQuiet = () => {
      if (this.reader.pendingBytes === 0 && this.assembly === null) return this.refreshStallTimer();
      const lateMs = performance.now() - this.stallDueMs;
      if (lateMs >= timerLateMsPaused) {
        this.o.log('debug', `tcp transport ${this.o.selfId}: the stall timer of ${this.who()} fired ${Math.round(lateMs)} ms late (this process was paused): waiting another ${this.o.stallTimeoutMs} ms`);
        return this.refreshStallTimer();
      }
      const what = this.assembly ? `a snapshot stream at ${this.assembly.receivedBytes}/${this.assembly.dataBytes} bytes` : `a frame with ${this.reader.pendingBytes} bytes received`;
      this.o.log('warn', `tcp transport ${this.o.selfId}: closing connection from ${this.who()}: stalled for ${this.o.stallTimeoutMs} ms in ${what}`);
      this.socket.destroy();
    };
    this.stallTimer = setTimeout(onQuiet, this.o.stallTimeoutMs);
    this.stallDueMs = performance.now() + this.o.stallTimeoutMs;
    this.socket.write(frameHeader(FrameType.Accept, 0));
    this.o.log('debug', `tcp transport ${this.o.selfId}: accepted ${this.who()}`);
  }

  private refreshStallTimer(): void {
    this.stallTimer?.refresh();
    this.stallDueMs = performance.now() + this.o.stallTimeoutMs;
  }

  private refuse(reason: string): void {
    this.refused = true;
    this.o.log('warn', `tcp transport ${this.o.selfId}: refused connection from ${this.who()}: ${reason}`);
    this.socket.end(encodeFrame(FrameType.Refuse, new TextEncoder().encode(reason)));
    // Nothing more from this connection is looked at; a peer that never closes is cut off.
    this.socket.pause();
    this.socket.removeAllListeners('data');
    setTimeout(() => this.socket.destroy(), refusedLingerMs).unref();
  }

  /** A message frame that does not decode is dropped; the framing around it is intact. */
  private decode(payload: Uint8Array, what: string): Message | null {
    try {
      return decodeMessage(payload);
    } catch (err) {
      // Anything else is a codec bug, but a peer's bytes must not take the member down with it.
      const reason = err instanceof MessageDecodeError ? err.reason : `codec failure (a bug): ${err instanceof Error ? err.stack : describeDecoded(err)}`;
      this.o.log('warn', `tcp transport ${this.o.selfId}: dropped ${what} from ${this.who()}: ${reason}`);
      return null;
    }
  }

  private maybeDeliver(m: Message): void {
    if (m.from !== this.peer) {
      this.o.log('warn', `tcp transport ${this.o.selfId}: dropped message from ${this.who()} claiming to be from member ${m.from}`);
      return;
    }
    if (m.to !== this.o.selfId) {
      this.o.log('warn', `tcp transport ${this.o.selfId}: dropped message from ${this.who()} addressed to member ${m.to}`);
      return;
    }
    if (this.o.isBlocked(m.from)) return;
    if (!this.o.admits(m.from)) {
      // Logged once per run of drops: a member added a moment ago may be unknown here for a while.
      if (this.unadmittedDropped++ === 0) this.o.log('warn', `tcp transport ${this.o.selfId}: dropping messages from ${this.who()}: not a member of the configuration`);
      return;
    }
    if (this.unadmittedDropped > 0) {
      this.o.log('info', `tcp transport ${this.o.selfId}: ${this.who()} admitted after ${this.unadmittedDropped} dropped messages`);
      this.unadmittedDropped = 0;
    }
    this.o.deliver(m);
  }

  private onSnapshotHead(payload: Uint8Array): void {
    if (this.assembly) throw new FramingError(`snapshot head while ${this.assembly.receivedBytes}/${this.assembly.dataBytes} bytes of the previous snapshot arrived`);
    const head = decodeSnapshotHead(payload);
    if (typeof head === 'string') throw new FramingError(head);
    if (head.dataBytes > snapshotBytesMax) throw new FramingError(`snapshot of ${head.dataBytes} bytes exceeds snapshotBytesMax ${snapshotBytesMax}`);
    const m = this.decode(head.message, 'snapshot head');
    if (!m) throw new FramingError('snapshot head without a valid message: its chunks cannot be framed');
    if (m.type !== MessageType.Snap || m.snapshot!.data.length !== 0) {
      throw new FramingError(`snapshot head carries a type ${m.type} message with ${m.snapshot?.data.length ?? 0} data bytes`);
    }
    if (head.dataBytes === 0) return this.maybeDeliver(m);
    this.assembly = { message: m, dataBytes: head.dataBytes, chunks: [], receivedBytes: 0 };
  }

  private onSnapshotChunk(payload: Uint8Array): void {
    const a = this.assembly;
    if (!a) throw new FramingError('snapshot chunk without a snapshot head');
    if (a.receivedBytes + payload.length > a.dataBytes) {
      throw new FramingError(`snapshot chunk overruns the announced ${a.dataBytes} bytes (${a.receivedBytes} received, chunk of ${payload.length})`);
    }
    a.chunks.push(payload);
    a.receivedBytes += payload.length;
    if (a.receivedBytes < a.dataBytes) return;
    this.assembly = null;
    let data: Uint8Array;
    if (a.chunks.length === 1) {
      data = a.chunks[0];
    } else {
      data = new Uint8Array(a.dataBytes);
      let at = 0;
      for (const c of a.chunks) {
        data.set(c, at);
        at += c.length;
      }
    }
    const m = a.message;
    this.maybeDeliver({ ...m, snapshot: { metadata: m.snapshot!.metadata, data } });
  }
}
