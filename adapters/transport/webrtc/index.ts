// The WebRTC transport: a mesh of data channels between members (RTCPeerConnection, through
// rtc-session.ts), set up through a Signaling (adapters/signaling). Browsers use their own WebRTC; Node members pass
// `nodeWrtc` from ./node-wrtc.ts (node-datachannel), so tab <-> tab, tab <-> Node and
// Node <-> Node links all work. See ../README.md for frames, bounds and reconnection.

import { encodeMessage } from '../../../src/codec/message.ts';
import { MessageType, isLocalMessage, type MemberId, type Message } from '../../../src/raft/types.ts';
import type { DeliveryReport, DeliveryReports, Transport } from '../../../src/seams.ts';
import type { Signaling } from '../../signaling/types.ts';
import { isMemberId } from '../../signaling/types.ts';
import { PeerFaults } from '../fault-switch.ts';
import { UnreachableReports } from '../unreachable-reports.ts';
import { messageBytesMax } from './frame.ts';
import { PeerLink, type Envelope, type LogFn, type WebRtcBounds, type WebRtcImplementation, type WebRtcStats } from './peer-link.ts';

export type { LogFn, WebRtcBounds, WebRtcImplementation, WebRtcStats } from './peer-link.ts';
export { frameBytesMax, messageBytesMax } from './frame.ts';

export interface WebRtcTransportOptions {
  id: MemberId;
  /** Not yet joined: the transport joins it and closes it on close(). */
  signaling: Signaling;
  /** WebRTC classes; default the runtime's global RTCPeerConnection (browsers). Node passes `nodeWrtc` from ./node-wrtc.ts. */
  wrtc?: WebRtcImplementation;
  /** Default `{ iceServers: [] }` (no outside STUN server). Node tests add `bindAddress: '127.0.0.1'`. */
  rtcConfig?: RTCConfiguration & { bindAddress?: string };
  log?: LogFn;
  bounds?: Partial<WebRtcBounds>;
  /**
   * Whether a Raft message from `peer` may reach this member; default every peer signaling
   * admitted. A Node member passes "in its member table", so that a holder of the signaling
   * secret who was never added cannot take part in Raft.
   */
  admits?: (peer: MemberId) => boolean;
}

export const defaultWebRtcBounds: WebRtcBounds = {
  queueMessagesMax: 4096,
  queueBytesMax: 64 * 1024 * 1024,
  channelBufferedBytesMax: 64 * 1024,
  connectTimeoutMs: 10_000,
  reconnectDelayMsMin: 100,
  reconnectDelayMsMax: 5000,
};

/** A signal's session id is short; anything else is not ours. */
const sessionBytesMax = 64;

export class WebRtcTransport implements Transport, DeliveryReports {
  /** Peers reported unreachable: no open data channel to them, or a message too large to send (../unreachable-reports.ts). */
  readonly unreachable = new UnreachableReports();
  readonly reportsSnapshots = false;
  readonly faults = new PeerFaults();
  readonly stats: WebRtcStats = { framesDropped: 0, messagesRejected: 0, messagesDroppedQueueFull: 0, messagesUnadmitted: 0 };
  /** Peers whose messages are being dropped as not admitted (logged once each until admitted). */
  private readonly unadmitted = new Set<MemberId>();
  private onMessage: ((m: Message) => void) | null = null;
  private readonly links = new Map<MemberId, PeerLink>();
  /** Peers added by addPeer: the only ones messages are sent to. */
  private readonly added = new Set<MemberId>();
  private readonly present = new Set<MemberId>();
  private closed = false;
  private readonly log: LogFn;
  private readonly bounds: WebRtcBounds;
  private readonly wrtc: WebRtcImplementation;
  /** Distinguishes this transport's connection attempts from those of an earlier run of the member. */
  private readonly sessionPrefix = Math.random().toString(36).slice(2, 10);
  private sessionCount = 0;
  private readonly onPageHide = () => void this.close();

  private constructor(
    private readonly o: WebRtcTransportOptions,
    wrtc: WebRtcImplementation,
  ) {
    this.wrtc = wrtc;
    this.log = o.log ?? (() => {});
    // A bound given as undefined keeps its default.
    const given = Object.entries(o.bounds ?? {}).filter(([, v]) => v !== undefined);
    this.bounds = { ...defaultWebRtcBounds, ...Object.fromEntries(given) };
  }

  /** Joins signaling and returns the transport; rejects (SignalingError) if signaling refuses the member. */
  static async open(o: WebRtcTransportOptions): Promise<WebRtcTransport> {
    if (!isMemberId(o.id)) throw new Error(`webrtc transport: member id ${o.id} is not a positive safe integer`);
    if (o.signaling.id !== o.id) throw new Error(`webrtc transport ${o.id}: signaling joins as member ${o.signaling.id}`);
    // Read when a transport opens, not when this module loads: Node imports it too.
    const wrtc = o.wrtc ?? (typeof RTCPeerConnection === 'function' ? { RTCPeerConnection } : null);
    if (!wrtc) throw new Error(`webrtc transport ${o.id}: this runtime has no RTCPeerConnection; pass wrtc (in Node: nodeWrtc from adapters/transport/webrtc/node-wrtc.ts)`);
    const t = new WebRtcTransport(o, wrtc);
    for (const [name, v] of Object.entries(t.bounds)) {
      if (!Number.isSafeInteger(v) || v < 1) throw new Error(`webrtc transport ${o.id}: bound ${name} is ${v}, not a positive integer`);
    }
    if (t.bounds.reconnectDelayMsMin > t.bounds.reconnectDelayMsMax) {
      throw new Error(`webrtc transport ${o.id}: reconnectDelayMsMin ${t.bounds.reconnectDelayMsMin} exceeds reconnectDelayMsMax ${t.bounds.reconnectDelayMsMax}`);
    }
    await o.signaling.join({
      onSignal: (from, data) => t.onSignal(from, data),
      onPresence: (id, present) => t.onPresence(id, present),
      onClosed: (reason) => t.log('warn', `webrtc transport ${o.id}: signaling stopped: ${reason}; links up now stay, no new ones form`),
    });
    // A tab that goes away without telling is noticed by its peers only ~16 s later: tell them.
    if (typeof window !== 'undefined' && typeof window.addEventListener === 'function') window.addEventListener('pagehide', t.onPageHide);
    return t;
  }

  get id(): MemberId {
    return this.o.id;
  }

  start(onMessage: (message: Message) => void): void {
    if (this.onMessage) throw new Error(`webrtc transport ${this.o.id}: start() called twice`);
    this.onMessage = onMessage;
  }

  onDeliveryReport(fn: (report: DeliveryReport) => void): void {
    this.unreachable.onDeliveryReport(fn);
  }

  send(messages: readonly Message[]): void {
    if (this.closed) return;
    for (const m of messages) {
      if (isLocalMessage(m.type)) {
        this.log('warn', `webrtc transport ${this.o.id}: refused to send local message type ${MessageType[m.type]} to ${m.to}`);
        continue;
      }
      // A test's cut link drops silently, as a lossy network does: the sender cannot tell.
      if (this.faults.isBlocked(m.to, 'out')) continue;
      const link = this.links.get(m.to);
      if (!link || !this.added.has(m.to)) {
        this.unreachable.note(m.to);
        continue;
      }
      const encoded = encodeMessage(m);
      if (encoded.length > messageBytesMax) {
        this.log('warn', `webrtc transport ${this.o.id}: dropped a ${MessageType[m.type]} message of ${encoded.length} bytes to ${m.to}: exceeds messageBytesMax ${messageBytesMax}`);
        this.unreachable.note(m.to);
        continue;
      }
      // Queued still (sent once the channel opens), but Raft stops pipelining to it.
      if (link.activeSince === null) this.unreachable.note(m.to);
      link.enqueue(encoded);
    }
  }

  /** `address` is not used: members find each other through signaling by id. */
  addPeer(id: MemberId, _address: string): void {
    if (this.closed) return;
    if (!isMemberId(id)) throw new Error(`webrtc transport ${this.o.id}: peer id ${id} is not a positive safe integer`);
    if (id === this.o.id) throw new Error(`webrtc transport ${this.o.id}: peer id ${id} is this member's own id`);
    this.added.add(id);
    const link = this.link(id);
    if (this.present.has(id)) link.onPresent();
  }

  removePeer(id: MemberId): void {
    this.added.delete(id);
    this.links.get(id)?.close();
    this.links.delete(id);
  }

  /** Messages waiting in the queue to `peer` (tests, metrics). */
  queuedMessages(peer: MemberId): number {
    return this.links.get(peer)?.queuedMessages ?? 0;
  }

  /** Since when (Date.now()) the data channel to `peer` has been open, or null while it is not (etcd's strict reconfiguration check). */
  activeSince(peer: MemberId): number | null {
    return this.links.get(peer)?.activeSince ?? null;
  }

  /** Whether the data channel to `peer` is open. */
  isConnected(peer: MemberId): boolean {
    return this.links.get(peer)?.isConnected ?? false;
  }

  /** Closes the data channel to `peer` as a network failure would; the link reconnects (tests, demo). */
  cutLink(peer: MemberId): void {
    this.links.get(peer)?.cut();
  }

  /** Test hook: sends raw bytes to `peer` as one frame, as a misbehaving member would. */
  sendRawFrame(peer: MemberId, bytes: Uint8Array): void {
    const link = this.links.get(peer);
    if (!link) throw new Error(`webrtc transport ${this.o.id}: no link to member ${peer}`);
    link.sendRawFrame(bytes);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (typeof window !== 'undefined' && typeof window.removeEventListener === 'function') window.removeEventListener('pagehide', this.onPageHide);
    for (const link of this.links.values()) link.close();
    this.links.clear();
    this.o.signaling.close();
  }

  private link(id: MemberId): PeerLink {
    let link = this.links.get(id);
    if (link) return link;
    link = new PeerLink({
      selfId: this.o.id,
      peerId: id,
      wrtc: this.wrtc,
      rtcConfig: this.o.rtcConfig ?? { iceServers: [] },
      bounds: this.bounds,
      log: this.log,
      stats: this.stats,
      signal: (e) => this.o.signaling.send(id, e),
      newSession: () => `${this.sessionPrefix}.${++this.sessionCount}`,
      isBlockedOut: () => this.faults.isBlocked(id, 'out'),
      isBlockedIn: () => this.faults.isBlocked(id, 'in'),
      onDown: () => this.unreachable.note(id, true),
      deliver: (m) => {
        if (this.closed) return;
        if (this.o.admits && !this.o.admits(m.from)) {
          this.stats.messagesUnadmitted++;
          if (!this.unadmitted.has(m.from)) this.log('warn', `webrtc transport ${this.o.id}: dropping messages from member ${m.from}: not a member of the configuration`);
          this.unadmitted.add(m.from);
          return;
        }
        this.unadmitted.delete(m.from);
        this.onMessage?.(m);
      },
    });
    this.links.set(id, link);
    return link;
  }

  private onPresence(id: MemberId, present: boolean): void {
    if (this.closed || id === this.o.id) return;
    if (present) this.present.add(id);
    else this.present.delete(id);
    const link = this.links.get(id);
    if (!link) return;
    if (present) link.onPresent();
    else link.onAbsent();
  }

  private onSignal(from: MemberId, data: unknown): void {
    if (this.closed) return;
    const e = asEnvelope(data);
    if (!e) {
      this.log('warn', `webrtc transport ${this.o.id}: ignored a malformed signal from member ${from}`);
      return;
    }
    // A peer that has not been added here may still connect (its membership may be news to
    // us); messages go to it only once it is added.
    this.present.add(from);
    this.link(from).onSignal(e);
  }
}

function asEnvelope(data: unknown): Envelope | null {
  if (typeof data !== 'object' || data === null) return null;
  const e = data as Partial<Envelope>;
  if (typeof e.session !== 'string' || e.session.length > sessionBytesMax) return null;
  if (e.knock === true) return { session: e.session, knock: true };
  const s: unknown = e.signal;
  if (typeof s !== 'object' || s === null) return null;
  const { type, sdp, candidate } = s as { type?: unknown; sdp?: unknown; candidate?: unknown };
  if (type === 'offer' || type === 'answer') return typeof sdp === 'string' ? { session: e.session, signal: { type, sdp } } : null;
  if (type !== 'candidate' || typeof candidate !== 'object' || candidate === null) return null;
  // Only the fields RTCPeerConnection reads pass on, each of the type it expects.
  const c = candidate as { candidate?: unknown; sdpMid?: unknown; sdpMLineIndex?: unknown };
  if (typeof c.candidate !== 'string') return null;
  const sdpMid = c.sdpMid ?? null;
  const sdpMLineIndex = c.sdpMLineIndex ?? null;
  if (sdpMid !== null && typeof sdpMid !== 'string') return null;
  if (sdpMLineIndex !== null && !(Number.isSafeInteger(sdpMLineIndex) && (sdpMLineIndex as number) >= 0)) return null;
  return { session: e.session, signal: { type, candidate: { candidate: c.candidate, sdpMid, sdpMLineIndex: sdpMLineIndex as number | null } } };
}
