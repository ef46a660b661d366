// One WebRTC connection attempt between two members, over the standard RTCPeerConnection: one
// in-band, ordered, binary data channel that the initiator opens, offer/answer and trickled
// ICE candidates handed out as signals (which the caller carries through signaling), and one
// `close` however the connection ends. It keeps no timers and never reconnects: peer-link.ts
// decides when an attempt has failed and starts the next.
//
// Browsers use their global RTCPeerConnection; Node passes node-datachannel's (node-wrtc.ts).
// The class comes in through the constructor, never from a global at import time, so this
// module loads in any runtime.

/** The WebRTC classes a transport uses; browsers default to their own. */
export interface WebRtcImplementation {
  RTCPeerConnection: new (config: RTCConfiguration) => RTCPeerConnection;
}

/** What one side of a session sends the other through signaling. */
export type SessionSignal =
  | { type: 'offer' | 'answer'; sdp: string }
  | { type: 'candidate'; candidate: { candidate: string; sdpMid: string | null; sdpMLineIndex: number | null } };

export interface SessionEvents {
  signal: (s: SessionSignal) => void;
  /** The data channel is open: send() works from now on. */
  open: () => void;
  /** A message arrived; a string is a text message, which a peer of ours never sends. */
  data: (bytes: Uint8Array | string) => void;
  /** The channel's bufferedAmount fell to `bufferedAmountLowThreshold`. */
  drain: () => void;
  /** Something went wrong; `close` follows when the connection cannot go on. */
  error: (err: Error) => void;
  /** The connection ended (either side, or a failure); fires once, and never after destroy(). */
  close: (why: string) => void;
}

export interface SessionOptions {
  initiator: boolean;
  impl: WebRtcImplementation;
  config: RTCConfiguration;
  bufferedAmountLowThreshold: number;
  on: SessionEvents;
}

const channelLabel = 'meshkv';

export class RtcSession {
  private readonly pc: RTCPeerConnection;
  private channel: RTCDataChannel | null = null;
  private ended = false;
  /** Remote signals are applied one at a time, in arrival order (each waits for the one before). */
  private applying: Promise<void> = Promise.resolve();
  /** Candidates that came before the remote description; added once it is set. */
  private pendingCandidates: SessionSignal[] | null = [];

  constructor(private readonly o: SessionOptions) {
    this.pc = new o.impl.RTCPeerConnection(o.config);
    this.pc.onicecandidate = (e) => {
      // A null or empty candidate marks the end of gathering, which the other side does not need.
      const c = e.candidate;
      if (this.ended || !c || !c.candidate) return;
      this.o.on.signal({
        type: 'candidate',
        candidate: { candidate: standardCandidate(c.candidate), sdpMid: c.sdpMid ?? null, sdpMLineIndex: c.sdpMLineIndex ?? null },
      });
    };
    this.pc.onconnectionstatechange = () => {
      const state = this.pc.connectionState;
      if (state === 'failed' || state === 'closed') this.end(`connection ${state}`);
    };
    this.pc.oniceconnectionstatechange = () => {
      const state = this.pc.iceConnectionState;
      if (state === 'failed' || state === 'closed') this.end(`ICE connection ${state}`);
    };
    if (o.initiator) {
      this.useChannel(this.pc.createDataChannel(channelLabel, { ordered: true }));
      void this.run('offer', async () => {
        const offer = await this.pc.createOffer();
        await this.pc.setLocalDescription(offer);
        if (!this.ended) this.o.on.signal({ type: 'offer', sdp: offer.sdp ?? '' });
      });
    } else {
      this.pc.ondatachannel = (e) => {
        if (this.channel) {
          e.channel.close();
          return this.fail(new Error(`a second data channel "${e.channel.label}" was offered`));
        }
        this.useChannel(e.channel);
      };
    }
  }

  /** Bytes handed to send() that the channel has not passed on yet. */
  get bufferedAmount(): number {
    return this.channel?.bufferedAmount ?? 0;
  }

  /** Throws if the channel is not open (the caller waits for `open`, and `close` follows a failure). */
  send(bytes: Uint8Array): void {
    if (!this.channel || this.channel.readyState !== 'open') throw new Error('the data channel is not open');
    // The DOM typings want an ArrayBuffer-backed view; every Uint8Array we make is one.
    this.channel.send(bytes as Uint8Array<ArrayBuffer>);
  }

  /**
   * Applies a signal from the other side. Failures are reported as `error`; a failed offer or
   * answer also ends the session, a failed candidate does not (see run()).
   */
  signal(s: SessionSignal): void {
    if (this.ended) return;
    if (s.type === 'candidate' && this.pendingCandidates) {
      this.pendingCandidates.push(s);
      return;
    }
    void this.run(s.type, () => this.apply(s));
  }

  /** Closes the connection without firing `close`. */
  destroy(): void {
    if (this.ended) return;
    this.ended = true;
    this.channel?.close();
    this.pc.close();
  }

  private async apply(s: SessionSignal): Promise<void> {
    if (s.type === 'candidate') {
      await this.pc.addIceCandidate({ ...s.candidate, candidate: standardCandidate(s.candidate.candidate) });
      return;
    }
    if (s.type === 'offer' && this.o.initiator) throw new Error('an offer reached the side that offers');
    if (s.type === 'answer' && !this.o.initiator) throw new Error('an answer reached the side that answers');
    await this.pc.setRemoteDescription({ type: s.type, sdp: s.sdp });
    if (s.type === 'offer') {
      const answer = await this.pc.createAnswer();
      await this.pc.setLocalDescription(answer);
      if (!this.ended) this.o.on.signal({ type: 'answer', sdp: answer.sdp ?? '' });
    }
    const pending = this.pendingCandidates ?? [];
    this.pendingCandidates = null;
    for (const c of pending) await this.apply(c);
  }

  /** Runs `step` after the steps before it; a failure ends the session. */
  private run(what: string, step: () => Promise<void>): Promise<void> {
    this.applying = this.applying.then(async () => {
      if (this.ended) return;
      try {
        await step();
      } catch (err) {
        if (this.ended) return;
        // A bad candidate costs one path, not the connection: others may still work, and the
        // link's connect timeout catches an attempt that gets nowhere.
        const e = new Error(`${what}: ${err instanceof Error ? err.message : String(err)}`);
        if (what === 'candidate') this.o.on.error(e);
        else this.fail(e);
      }
    });
    return this.applying;
  }

  private useChannel(ch: RTCDataChannel): void {
    this.channel = ch;
    ch.binaryType = 'arraybuffer';
    ch.bufferedAmountLowThreshold = this.o.bufferedAmountLowThreshold;
    ch.onopen = () => {
      // Reported a task later: Chromium may never fire bufferedamountlow for what the answering
      // side sends while its channel's open event is being dispatched (its bufferedAmount stays
      // up although the bytes arrive), which would stall the link for good.
      setTimeout(() => {
        if (!this.ended) this.o.on.open();
      }, 0);
    };
    ch.onmessage = (e: MessageEvent) => {
      if (this.ended) return;
      const d: unknown = e.data;
      if (typeof d === 'string') this.o.on.data(d);
      else if (d instanceof ArrayBuffer) this.o.on.data(new Uint8Array(d));
      else if (ArrayBuffer.isView(d)) this.o.on.data(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
      else this.o.on.data(String(d));
    };
    ch.onbufferedamountlow = () => {
      if (!this.ended) this.o.on.drain();
    };
    ch.onerror = (e: Event) => {
      const err = (e as Event & { error?: unknown }).error;
      this.fail(new Error(`data channel error: ${err instanceof Error ? err.message : 'unknown'}`));
    };
    ch.onclose = () => this.end('data channel closed');
  }

  private fail(err: Error): void {
    if (this.ended) return;
    this.o.on.error(err);
    this.end(err.message);
  }

  private end(why: string): void {
    if (this.ended) return;
    this.destroy();
    this.o.on.close(why);
  }
}

/**
 * libdatachannel writes a trickled candidate as an SDP line (`a=candidate:...`), browsers as the
 * bare attribute (`candidate:...`): signals carry the bare form, and either is accepted.
 */
function standardCandidate(c: string): string {
  return c.startsWith('a=') ? c.slice(2) : c;
}
