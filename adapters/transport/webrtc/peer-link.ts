// One member's link to one peer over WebRTC: an RtcSession (rtc-session.ts) set up through
// signaling, a bounded queue in front of its data channel, and reconnection with capped
// backoff. The lower member id initiates, so two members never offer to each other at once;
// the higher one knocks (a signal asking for an offer) when it wants a link and has none.
// Every connection attempt has a session id that its signals carry, so signals of an
// abandoned attempt are told apart and dropped.

import { MessageDecodeError, decodeMessage, describeDecoded } from '../../../src/codec/message.ts';
import type { MemberId, Message } from '../../../src/raft/types.ts';
import { SizedQueue } from '../sized-queue.ts';
import {
  FrameError,
  FrameType,
  batchedBytes,
  batchedMessageBytesMax,
  decodeFrame,
  encodeBatch,
  encodeMore,
  encodeStart,
  frameBytesMax,
} from './frame.ts';
import { RtcSession, type SessionSignal, type WebRtcImplementation } from './rtc-session.ts';

export type LogFn = (level: 'debug' | 'info' | 'warn', msg: string) => void;
export type { WebRtcImplementation } from './rtc-session.ts';

export interface WebRtcBounds {
  /** Messages waiting for the data channel, per peer; beyond it the oldest are dropped (Raft resends). */
  queueMessagesMax: number;
  /** Encoded bytes waiting, per peer. */
  queueBytesMax: number;
  /** Stop handing frames to the data channel while its bufferedAmount is above this; resume on bufferedamountlow. */
  channelBufferedBytesMax: number;
  /** A connection attempt that has not opened its data channel by then is abandoned and retried. */
  connectTimeoutMs: number;
  reconnectDelayMsMin: number;
  reconnectDelayMsMax: number;
}

/** What the transport counts: garbage is dropped and counted, never delivered. */
export interface WebRtcStats {
  /** Frames that did not parse, or broke the Start/More sequence. */
  framesDropped: number;
  /** Message bytes that did not decode, or claimed another sender or recipient. */
  messagesRejected: number;
  /** Messages dropped from a full queue. */
  messagesDroppedQueueFull: number;
  /** Messages from a peer the transport's `admits` turned away (not in the configuration). */
  messagesUnadmitted: number;
}

/** A signal as it travels between two links: a session id and an RtcSession's signal, or a knock. */
export interface Envelope {
  session: string;
  signal?: SessionSignal;
  knock?: true;
}

export interface LinkOptions {
  selfId: MemberId;
  peerId: MemberId;
  wrtc: WebRtcImplementation;
  rtcConfig: RTCConfiguration;
  bounds: WebRtcBounds;
  log: LogFn;
  stats: WebRtcStats;
  signal: (e: Envelope) => void;
  newSession: () => string;
  isBlockedOut: () => boolean;
  isBlockedIn: () => boolean;
  deliver: (m: Message) => void;
  /** An open data channel went down: what was sent on it may be lost (a snapshot stream's chunks among it). */
  onDown: () => void;
}

/** A message being received in parts. Invariant: receivedBytes = Σ parts' lengths ≤ totalBytes. */
interface Assembly {
  parts: Uint8Array[];
  receivedBytes: number;
  totalBytes: number;
}

export class PeerLink {
  readonly initiator: boolean;
  private peer: RtcSession | null = null;
  /** The session of `peer`; null when there is none. */
  private session: string | null = null;
  private sessionStartedMs = 0;
  /** Non-initiator: the session of the last connection that failed here, named in knocks. */
  private failedSession = '';
  private connected = false;
  /** Date.now() when the data channel opened; null while it is not open. */
  private connectedSinceMs: number | null = null;
  private present = false;
  private closed = false;
  /** The next connection attempt or knock. */
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  /** Abandons the current attempt if its data channel does not open in time. */
  private connectTimer: ReturnType<typeof setTimeout> | null = null;
  private retryDelayMs: number;
  /** Encoded messages waiting to be sent. */
  private readonly queue: SizedQueue<Uint8Array>;
  /** A message too big for a batch, partly sent. */
  private stream: { bytes: Uint8Array; offset: number } | null = null;
  private assembly: Assembly | null = null;
  private flushScheduled = false;
  /** Messages dropped from the full queue in the current episode (logged once, then counted). */
  private droppedEpisode = 0;

  constructor(private readonly o: LinkOptions) {
    this.initiator = o.selfId < o.peerId;
    this.queue = new SizedQueue<Uint8Array>((m) => m.length, `queue to member ${o.peerId}`);
    this.retryDelayMs = o.bounds.reconnectDelayMsMin;
  }

  get queuedMessages(): number {
    return this.queue.length;
  }

  get isConnected(): boolean {
    return this.connected;
  }

  /** Since when (Date.now()) the data channel has been open, or null while it is not. */
  get activeSince(): number | null {
    return this.connectedSinceMs;
  }

  enqueue(encoded: Uint8Array): void {
    if (this.closed) return;
    this.queue.push(encoded);
    this.enforceBounds();
    if (!this.flushScheduled) {
      // One flush per tick, so the messages of one send() share frames.
      this.flushScheduled = true;
      queueMicrotask(() => {
        this.flushScheduled = false;
        this.flush();
      });
    }
  }

  /** The peer is in the cluster's signaling: connect now if there is no link. */
  onPresent(): void {
    this.present = true;
    if (this.peer || this.closed) return;
    this.clearRetryTimer();
    this.retryDelayMs = this.o.bounds.reconnectDelayMsMin;
    this.wake();
  }

  /** The peer left signaling: drop the connection and wait for it to come back. The queue stays (bounded). */
  onAbsent(): void {
    this.present = false;
    this.clearRetryTimer();
    this.dropPeer('it left signaling');
  }

  onSignal(e: Envelope): void {
    if (this.closed) return;
    this.present = true;
    if (e.knock) return this.onKnock(e.session);
    const s = e.signal!;
    if (this.initiator && s.type === 'offer') {
      this.o.log('warn', `webrtc transport ${this.o.selfId}: ignored an offer from member ${this.o.peerId}: the lower id (this member) offers`);
      return;
    }
    // The initiator's first signal of a new session (its candidates may overtake its offer)
    // replaces whatever attempt this side had.
    if (!this.initiator && e.session !== this.session && !isOlderSession(e.session, this.session)) {
      this.dropPeer(null);
      this.clearRetryTimer();
      this.startPeer(e.session);
    }
    if (e.session !== this.session || !this.peer) {
      this.o.log('debug', `webrtc transport ${this.o.selfId}: dropped a signal of an old session from member ${this.o.peerId}`);
      return;
    }
    this.peer.signal(s);
  }

  /** Destroys the connection, the queue and every timer; the link is not used again. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.clearRetryTimer();
    this.dropPeer(null);
    this.queue.clear();
  }

  /** Closes the connection as a network failure would; it is re-established as after any drop. */
  cut(): void {
    if (!this.peer) return;
    this.dropPeer('it was cut');
    this.scheduleRetry();
  }

  /** Test hook: hands raw bytes to the data channel as one frame, as a misbehaving peer would. */
  sendRawFrame(bytes: Uint8Array): void {
    if (!this.peer || !this.connected) throw new Error(`webrtc transport ${this.o.selfId}: no open data channel to member ${this.o.peerId}`);
    this.peer.send(bytes);
  }

  /** `failed` is the session the knocking side saw fail, or '' when it had none. */
  private onKnock(failed: string): void {
    if (!this.initiator) return;
    // A knock while an attempt is young is the peer asking before our offer reached it,
    // unless it names that very attempt as failed on its side.
    const young = this.peer && !this.connected && Date.now() - this.sessionStartedMs < this.o.bounds.connectTimeoutMs;
    if (young && failed !== this.session) return;
    if (this.peer) this.o.log('info', `webrtc transport ${this.o.selfId}: member ${this.o.peerId} asks for a new connection; replacing the old one`);
    this.dropPeer(null);
    this.clearRetryTimer();
    this.retryDelayMs = this.o.bounds.reconnectDelayMsMin;
    this.wake();
  }

  /** Starts a connection attempt (initiator) or knocks (the other side), if none is under way. */
  private wake(): void {
    this.retryTimer = null;
    if (this.closed || !this.present || this.peer) return;
    if (this.initiator) {
      this.startPeer(this.o.newSession());
    } else {
      this.o.signal({ session: this.failedSession, knock: true });
      this.scheduleRetry();
    }
  }

  private startPeer(session: string): void {
    const p: RtcSession = new RtcSession({
      initiator: this.initiator,
      impl: this.o.wrtc,
      config: this.o.rtcConfig,
      // The channel's drain event fires when its buffer falls back to where flush() stopped.
      bufferedAmountLowThreshold: this.o.bounds.channelBufferedBytesMax,
      on: {
        signal: (signal) => {
          if (this.peer === p) this.o.signal({ session, signal });
        },
        open: () => {
          if (this.peer !== p) return;
          this.connected = true;
          this.connectedSinceMs = Date.now();
          this.clearConnectTimer();
          this.retryDelayMs = this.o.bounds.reconnectDelayMsMin;
          this.o.log('info', `webrtc transport ${this.o.selfId}: connected to member ${this.o.peerId}`);
          this.flush();
        },
        data: (bytes) => {
          if (this.peer !== p) return;
          if (typeof bytes === 'string') this.dropFrame('a text message, not a binary frame');
          else this.onFrame(bytes);
        },
        drain: () => {
          if (this.peer === p) this.flush();
        },
        error: (err) => {
          if (this.peer === p) this.o.log('info', `webrtc transport ${this.o.selfId}: connection to member ${this.o.peerId}: ${err.message}`);
        },
        close: (why) => {
          if (this.peer !== p) return;
          this.dropPeer(`its connection closed (${why})`);
          this.scheduleRetry();
        },
      },
    });
    this.peer = p;
    this.session = session;
    this.sessionStartedMs = Date.now();
    this.connected = false;
    this.connectedSinceMs = null;
    this.connectTimer = setTimeout(() => {
      this.connectTimer = null;
      this.o.log('info', `webrtc transport ${this.o.selfId}: no data channel to member ${this.o.peerId} after ${this.o.bounds.connectTimeoutMs} ms; retrying`);
      this.dropPeer(null);
      this.scheduleRetry();
    }, this.o.bounds.connectTimeoutMs);
  }

  /** Forgets the current connection, if any; `why` (when given) is logged. */
  private dropPeer(why: string | null): void {
    const p = this.peer;
    if (!p) return;
    if (why) this.o.log('info', `webrtc transport ${this.o.selfId}: link to member ${this.o.peerId} down: ${why}`);
    const wasUp = this.connected;
    if (!this.initiator && this.session !== null) this.failedSession = this.session;
    this.peer = null;
    this.session = null;
    this.connected = false;
    this.connectedSinceMs = null;
    this.clearConnectTimer();
    if (this.stream) {
      this.o.log('info', `webrtc transport ${this.o.selfId}: streamed message to member ${this.o.peerId} cut at ${this.stream.offset}/${this.stream.bytes.length} bytes`);
      this.stream = null;
    }
    this.assembly = null;
    p.destroy();
    if (wasUp && !this.closed) this.o.onDown();
  }

  private scheduleRetry(): void {
    if (this.closed || !this.present || this.retryTimer) return;
    this.retryTimer = setTimeout(() => this.wake(), this.retryDelayMs);
    this.retryDelayMs = Math.min(this.retryDelayMs * 2, this.o.bounds.reconnectDelayMsMax);
  }

  private clearRetryTimer(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  private clearConnectTimer(): void {
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.connectTimer = null;
  }

  /** Drops the oldest messages while over a bound; the newest always stays. */
  private enforceBounds(): void {
    const { queueMessagesMax, queueBytesMax } = this.o.bounds;
    let dropped = 0;
    while (this.queue.length > 1 && (this.queue.length > queueMessagesMax || this.queue.bytes > queueBytesMax)) {
      this.queue.shift();
      dropped++;
    }
    if (dropped === 0) return;
    if (this.droppedEpisode === 0) {
      this.o.log(
        'warn',
        `webrtc transport ${this.o.selfId}: queue to member ${this.o.peerId} is full (queueMessagesMax ${queueMessagesMax}, queueBytesMax ${queueBytesMax}): dropping the oldest messages`,
      );
    }
    this.droppedEpisode += dropped;
    this.o.stats.messagesDroppedQueueFull += dropped;
  }


  /**
   * Hands frames to the data channel while its buffer is at most channelBufferedBytesMax
   * (above it SCTP stalls), queued batches before the parts of a streamed message, so small
   * messages (heartbeats) are not held up behind a snapshot.
   */
  private flush(): void {
    const p = this.peer;
    if (!p || !this.connected || this.closed) return;
    try {
      while (p.bufferedAmount <= this.o.bounds.channelBufferedBytesMax) {
        const next = this.queue.length > 0 ? this.queue.at(0) : null;
        if (next && next.length <= batchedMessageBytesMax) {
          this.sendBatch(p);
        } else if (this.stream) {
          const { frame, carried } = encodeMore(this.stream.bytes, this.stream.offset);
          p.send(frame);
          this.stream.offset += carried;
          if (this.stream.offset === this.stream.bytes.length) this.stream = null;
        } else if (next) {
          this.queue.shift();
          if (this.o.isBlockedOut()) continue;
          const { frame, carried } = encodeStart(next);
          p.send(frame);
          if (carried < next.length) this.stream = { bytes: next, offset: carried };
        } else {
          break;
        }
      }
    } catch (err) {
      // The channel closed under us; 'close' follows and reconnects.
      this.o.log('info', `webrtc transport ${this.o.selfId}: send to member ${this.o.peerId} failed: ${err instanceof Error ? err.message : describeDecoded(err)}`);
      return;
    }
    if (this.queuedMessages === 0 && this.droppedEpisode > 0) {
      this.o.log('info', `webrtc transport ${this.o.selfId}: dropped ${this.droppedEpisode} messages to member ${this.o.peerId} while its queue was full`);
      this.droppedEpisode = 0;
    }
  }

  /** Sends the queued small messages, up to the next big one, in one frame of at most frameBytesMax. */
  private sendBatch(p: RtcSession): void {
    const batch: Uint8Array[] = [];
    let bytes = 1;
    while (this.queue.length > 0) {
      const next = this.queue.at(0);
      if (next.length > batchedMessageBytesMax || bytes + batchedBytes(next) > frameBytesMax) break;
      batch.push(this.queue.shift());
      bytes += batchedBytes(next);
    }
    if (batch.length === 0) throw new Error(`sendBatch with no small message at the head of the queue to member ${this.o.peerId}`);
    if (!this.o.isBlockedOut()) p.send(encodeBatch(batch));
  }

  private onFrame(bytes: Uint8Array): void {
    let f;
    try {
      f = decodeFrame(bytes);
    } catch (err) {
      if (!(err instanceof FrameError)) throw err;
      return this.dropFrame(err.message);
    }
    switch (f.type) {
      case FrameType.Batch:
        // A message kept from a batch of several is copied, so it does not pin the whole frame.
        for (const m of f.messages) this.maybeDeliver(f.messages.length === 1 ? m : m.slice());
        return;
      case FrameType.Start:
        if (this.assembly) this.dropFrame(`a new streamed message began after ${this.assembly.receivedBytes}/${this.assembly.totalBytes} bytes of the last; discarded it`);
        this.assembly = { parts: [f.part], receivedBytes: f.part.length, totalBytes: f.totalBytes };
        return this.maybeComplete();
      case FrameType.More: {
        const a = this.assembly;
        if (!a) return this.dropFrame('a More frame without a Start');
        if (a.receivedBytes + f.part.length > a.totalBytes) {
          this.assembly = null;
          return this.dropFrame(`a More frame overruns the announced ${a.totalBytes} bytes; discarded the message`);
        }
        a.parts.push(f.part);
        a.receivedBytes += f.part.length;
        return this.maybeComplete();
      }
    }
  }

  private maybeComplete(): void {
    const a = this.assembly!;
    if (a.receivedBytes < a.totalBytes) return;
    this.assembly = null;
    const whole = new Uint8Array(a.totalBytes);
    let at = 0;
    for (const part of a.parts) {
      whole.set(part, at);
      at += part.length;
    }
    this.maybeDeliver(whole);
  }

  private dropFrame(reason: string): void {
    this.o.stats.framesDropped++;
    this.o.log('warn', `webrtc transport ${this.o.selfId}: dropped a frame from member ${this.o.peerId}: ${reason}`);
  }

  private maybeDeliver(bytes: Uint8Array): void {
    let m: Message;
    try {
      m = decodeMessage(bytes);
    } catch (err) {
      this.o.stats.messagesRejected++;
      const reason = err instanceof MessageDecodeError ? err.reason : `codec failure (a bug): ${err instanceof Error ? err.stack : describeDecoded(err)}`;
      this.o.log('warn', `webrtc transport ${this.o.selfId}: dropped a message from member ${this.o.peerId}: ${reason}`);
      return;
    }
    if (m.from !== this.o.peerId || m.to !== this.o.selfId) {
      this.o.stats.messagesRejected++;
      this.o.log('warn', `webrtc transport ${this.o.selfId}: dropped a message from member ${this.o.peerId} claiming to be ${m.from} -> ${m.to}`);
      return;
    }
    if (this.o.isBlockedIn()) return;
    this.o.deliver(m);
  }
}

/** Sessions are `prefix.n`, n counting up per run of the initiator; a late signal of an earlier one is stale. */
function isOlderSession(a: string, b: string | null): boolean {
  if (b === null) return false;
  const [pa, na] = a.split('.');
  const [pb, nb] = b.split('.');
  return pa === pb && Number(na) < Number(nb);
}
