// The TCP transport (Node): members exchange length-prefixed, validated frames over
// node:net, or node:tls when certificates are given. Each member listens once and opens
// one outbound connection per peer; replies come back over the peer's own connection.
// See ../README.md for the frame format, the handshake and the bounds.

import net from 'node:net';
import tls from 'node:tls';
import { nodeHandshakeTimerOff, TlsHandshakeDeadlines } from '../../clock/pause-aware-timeout.ts';
import { encodeMessage } from '../../../src/codec/message.ts';
import { MessageType, isLocalMessage, type MemberId, type Message } from '../../../src/raft/types.ts';
import type { DeliveryReport, DeliveryReports, Transport } from '../../../src/seams.ts';
import { PeerFaults } from '../fault-switch.ts';
import { UnreachableReports } from '../unreachable-reports.ts';
import { chunkHeaderBytes, clusterTokenBytesMax, encodeStreamChunkHead, frameBytesMax, isMemberId, snapshotBytesMax, snapshotChunkBytes } from './frame.ts';
import { InboundConnection } from './inbound.ts';
import { PeerLink, defaultLinkBounds, type LinkBounds, type LogFn } from './peer-link.ts';

export { frameBytesMax, snapshotBytesMax, snapshotChunkBytes } from './frame.ts';

/** PEM certificates for mutual TLS: every member presents `cert` and trusts peers signed by `ca`. */
export interface TcpTlsOptions {
  cert: string | Buffer;
  key: string | Buffer;
  ca: string | Buffer;
}

export interface TcpTransportOptions {
  id: MemberId;
  /** Members refuse peers with a different token (etcd's --initial-cluster-token). */
  clusterToken: string;
  /** Members admit only peers that prove this secret in their Hello (./admission.ts); it is never sent. */
  admissionSecret: string;
  /**
   * Whether a message from `peer` may reach Raft; default every admitted peer. A member passes
   * "in its member table", so that a secret holder that was never added cannot take part.
   */
  admits?: (peer: MemberId) => boolean;
  /** The largest frame sent or accepted after the Hello (default and ceiling frameBytesMax); see peerFrameBytesMax. */
  frameBytesMax?: number;
  /** With TLS: accept only peers whose certificate's subject CommonName is this (etcd's --peer-cert-allowed-cn). */
  allowedCn?: string;
  /** 0 picks a free port; read it back from `address`. */
  port: number;
  host?: string;
  tls?: TcpTlsOptions;
  log?: LogFn;
  bounds?: Partial<TcpBounds>;
  /** Called (repeatedly) once peers keep refusing this member as removed from the cluster. */
  onRemoved?: () => void;
}

export type TcpTransportErrorCode = 'address-in-use' | 'listen-failed' | 'invalid-address' | 'invalid-options';

export class TcpTransportError extends Error {
  constructor(
    readonly code: TcpTransportErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export type TcpBounds = LinkBounds & {
  /** An inbound connection that sends no Hello within this is refused. */
  handshakeTimeoutMs: number;
  /** An accepted inbound connection that stops mid-frame or mid-snapshot for this long is closed. */
  stallTimeoutMs: number;
  /** Inbound connections open at once, at most; more are closed on arrival. */
  inboundConnectionsMax: number;
  /** Of those, connections still in their (TLS or Hello) handshake, at most: strangers cannot crowd out members. */
  inboundHandshakesMax: number;
};

const defaultBounds: TcpBounds = {
  ...defaultLinkBounds,
  handshakeTimeoutMs: 5000,
  stallTimeoutMs: 30_000,
  // The member table holds at most 128 members, each with one connection to us, plus room for restarts.
  inboundConnectionsMax: 512,
  inboundHandshakesMax: 64,
};

/** Bytes a Raft message may take beyond its entries' data (headers, terms, indexes, context). */
const messageOverheadBytes = 64 * 1024;

/**
 * The peer frame limit for members whose clients may send requests of up to `requestBytesMax`
 * (etcd's --max-request-bytes): one append carries up to `raftMessageBytesMax` of entries, or a
 * single larger entry (a request of up to requestBytesMax), and msgpack adds a few bytes per
 * entry, hence the factor 2. Snapshot chunks must fit too.
 */
export function peerFrameBytesMax(requestBytesMax: number, raftMessageBytesMax: number): number {
  return Math.min(frameBytesMax, Math.max(snapshotChunkBytes + 1, 2 * (raftMessageBytesMax + requestBytesMax) + messageOverheadBytes));
}

export class TcpTransport implements Transport, DeliveryReports {
  readonly faults = new PeerFaults();
  /** Peers reported unreachable: no accepted connection to them, one that closed, or a frame too large to write (../unreachable-reports.ts). */
  readonly unreachable = new UnreachableReports();
  readonly reportsSnapshots = false;
  private onMessage: ((m: Message) => void) | null = null;
  private readonly links = new Map<MemberId, PeerLink>();
  private readonly inbound = new Set<InboundConnection>();
  /** Connections closed on arrival by a cap since the last log line. */
  private capped = 0;
  private readonly frameBytesMax: number;
  /** Peers the member table removed: their connections are refused with removedReason. */
  private removed: ReadonlySet<MemberId> = new Set();
  private closing: Promise<void> | null = null;
  private readonly log: LogFn;

  private constructor(
    private readonly o: TcpTransportOptions,
    private readonly server: net.Server,
    private readonly sockets: Set<net.Socket>,
    private readonly bounds: TcpBounds,
    /** Where this member listens. */
    readonly address: { host: string; port: number },
  ) {
    this.log = o.log ?? (() => {});
    this.frameBytesMax = o.frameBytesMax ?? frameBytesMax;
  }

  /** Listens on `host:port` (127.0.0.1 by default) and returns the transport once bound. */
  static async listen(o: TcpTransportOptions): Promise<TcpTransport> {
    if (!isMemberId(o.id)) throw new TcpTransportError('invalid-options', `member id ${o.id} is not a positive safe integer`);
    if (new TextEncoder().encode(o.clusterToken).length > clusterTokenBytesMax) {
      throw new TcpTransportError('invalid-options', `cluster token is longer than ${clusterTokenBytesMax} bytes`);
    }
    if (typeof o.admissionSecret !== 'string' || o.admissionSecret.length === 0) throw new TcpTransportError('invalid-options', 'an admission secret is required');
    const frameLimit = o.frameBytesMax ?? frameBytesMax;
    if (!Number.isSafeInteger(frameLimit) || frameLimit < snapshotChunkBytes + 1 || frameLimit > frameBytesMax) {
      throw new TcpTransportError('invalid-options', `frameBytesMax ${frameLimit} must be an integer from ${snapshotChunkBytes + 1} (a snapshot chunk) to ${frameBytesMax}`);
    }
    if (o.allowedCn !== undefined && !o.tls) throw new TcpTransportError('invalid-options', 'allowedCn needs TLS');
    const bounds: TcpBounds = { ...defaultBounds, ...o.bounds };
    for (const [name, v] of Object.entries(bounds)) {
      if (!Number.isSafeInteger(v) || v < 1) throw new TcpTransportError('invalid-options', `bound ${name} is ${v}, not a positive integer`);
    }
    if (bounds.reconnectDelayMsMin > bounds.reconnectDelayMsMax) {
      throw new TcpTransportError('invalid-options', `reconnectDelayMsMin ${bounds.reconnectDelayMsMin} exceeds reconnectDelayMsMax ${bounds.reconnectDelayMsMax}`);
    }
    if (bounds.inboundHandshakesMax > bounds.inboundConnectionsMax) {
      throw new TcpTransportError('invalid-options', `inboundHandshakesMax ${bounds.inboundHandshakesMax} exceeds inboundConnectionsMax ${bounds.inboundConnectionsMax}`);
    }
    const host = o.host ?? '127.0.0.1';
    let self: TcpTransport | null = null;
    // The TLS handshake's deadline, pause-aware (Node's handshakeTimeout is not: it fires at
    // once after a pause and drops a healthy peer whose handshake waits unread).
    const tlsDeadlines = new TlsHandshakeDeadlines(
      bounds.handshakeTimeoutMs,
      (socket, remote) => {
        self?.log('warn', `tcp transport ${o.id}: closing connection from ${remote}: no TLS handshake within ${bounds.handshakeTimeoutMs} ms`);
        socket.destroy();
      },
      (remote, lateMs) => self?.log('debug', `tcp transport ${o.id}: the TLS handshake timer of ${remote} fired ${Math.round(lateMs)} ms late (this process was paused): waiting another ${bounds.handshakeTimeoutMs} ms`),
    );
    const onSocket = (socket: net.Socket) => {
      if (o.tls) tlsDeadlines.settle(socket);
      if (self) self.accept(socket);
      else socket.destroy();
    };
    const server = o.tls
      ? tls.createServer({ ...o.tls, requestCert: true, rejectUnauthorized: true, handshakeTimeout: nodeHandshakeTimerOff }, onSocket)
      : net.createServer(onSocket);
    // Every accepted socket, TLS handshakes in progress included, so close() can end them all.
    const sockets = new Set<net.Socket>();
    server.on('connection', (socket: net.Socket) => {
      // Checked before TLS or the Hello: a flood of strangers costs a socket each, briefly.
      if (sockets.size >= bounds.inboundConnectionsMax || (self !== null && self.handshakesInProgress(sockets.size) >= bounds.inboundHandshakesMax)) {
        socket.destroy();
        self?.noteCapped(sockets.size);
        return;
      }
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
      if (o.tls) tlsDeadlines.arm(socket); // the Hello deadline (inbound.ts) covers plain TCP
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'EADDRINUSE') reject(new TcpTransportError('address-in-use', `listen ${host}:${o.port}: address in use`));
        else reject(new TcpTransportError('listen-failed', `listen ${host}:${o.port}: ${err.code ?? err.message}`));
      });
      server.listen(o.port, host, () => resolve());
    });
    const bound = server.address() as net.AddressInfo;
    self = new TcpTransport(o, server, sockets, bounds, { host, port: bound.port });
    const t = self;
    server.on('error', (err) => t.log('warn', `tcp transport ${o.id}: listener error: ${err.message}`));
    if (o.tls) {
      server.on('tlsClientError', (err: NodeJS.ErrnoException) => t.log('warn', `tcp transport ${o.id}: TLS handshake with a client failed: ${err.code ?? err.message}`));
    }
    return t;
  }

  /** `host:port` of this member's listener, for peers' addPeer. */
  get addressString(): string {
    const { host, port } = this.address;
    return net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
  }

  start(onMessage: (message: Message) => void): void {
    if (this.onMessage) throw new Error(`tcp transport ${this.o.id}: start() called twice`);
    this.onMessage = onMessage;
  }

  onDeliveryReport(fn: (report: DeliveryReport) => void): void {
    this.unreachable.onDeliveryReport(fn);
  }

  send(messages: readonly Message[]): void {
    if (this.closing) return;
    // Written before send() returns: a leader's appends leave before its own WAL write (see
    // Ready.sendBeforePersist) and a follower's acknowledgement right after its fdatasync.
    let first: PeerLink | null = null;
    let others: Set<PeerLink> | null = null;
    for (const m of messages) {
      if (isLocalMessage(m.type)) {
        this.log('warn', `tcp transport ${this.o.id}: refused to send local message type ${MessageType[m.type]} to ${m.to}`);
        continue;
      }
      // A test's cut link drops silently, as a lossy network does: the sender cannot tell.
      if (this.faults.isBlocked(m.to, 'out')) continue;
      const link = this.links.get(m.to);
      // Queued still (sent once the connection is accepted), but Raft stops pipelining to it.
      if (!link || link.activeSince === null) this.unreachable.note(m.to);
      if (!link) continue;
      this.enqueue(link, m);
      if (first === null) first = link;
      else if (link !== first) (others ??= new Set()).add(link);
    }
    first?.flush();
    if (others !== null) for (const link of others) link.flush();
  }

  private enqueue(link: PeerLink, m: Message): void {
    if (m.snapshot !== null && m.snapshot.data.length > snapshotChunkBytes) {
      if (m.snapshot.data.length > snapshotBytesMax) {
        this.log('warn', `tcp transport ${this.o.id}: dropped a snapshot of ${m.snapshot.data.length} bytes to ${m.to}: exceeds snapshotBytesMax ${snapshotBytesMax}`);
        this.unreachable.note(m.to);
        return;
      }
      const head = encodeMessage({ ...m, snapshot: { metadata: m.snapshot.metadata, data: new Uint8Array(0) } });
      link.enqueueSnapshot(head, m.snapshot.data);
      return;
    }
    if (m.type === MessageType.SnapChunk) {
      const pairs = m.context ?? new Uint8Array(0);
      if (chunkHeaderBytes + pairs.length + 1 > this.frameBytesMax) {
        this.log('warn', `tcp transport ${this.o.id}: dropped a snapshot stream chunk of ${pairs.length} bytes to ${m.to}: exceeds frameBytesMax ${this.frameBytesMax}`);
        this.unreachable.note(m.to);
        return;
      }
      link.enqueueStreamChunk(encodeStreamChunkHead(m), pairs);
      return;
    }
    const payload = encodeMessage(m);
    if (payload.length + 1 > this.frameBytesMax) {
      this.log('warn', `tcp transport ${this.o.id}: dropped a ${MessageType[m.type]} message of ${payload.length} bytes to ${m.to}: exceeds frameBytesMax ${this.frameBytesMax}`);
      this.unreachable.note(m.to);
      return;
    }
    link.enqueueMessage(payload);
  }

  /** `address` is `host:port` (IPv6 hosts in brackets). Replaces any earlier address for `id`. */
  addPeer(id: MemberId, address: string): void {
    if (this.closing) return;
    if (!isMemberId(id)) throw new TcpTransportError('invalid-address', `peer id ${id} is not a positive safe integer`);
    if (id === this.o.id) throw new TcpTransportError('invalid-address', `peer id ${id} is this member's own id`);
    const { host, port } = parseAddress(address);
    const existing = this.links.get(id);
    if (existing && existing.address === `${host}:${port}`) return;
    existing?.close();
    this.links.set(
      id,
      new PeerLink({
        selfId: this.o.id,
        peerId: id,
        host,
        port,
        clusterToken: this.o.clusterToken,
        admissionSecret: this.o.admissionSecret,
        tls: this.o.tls ? { cert: this.o.tls.cert, key: this.o.tls.key, ca: this.o.tls.ca } : null,
        bounds: this.bounds,
        log: this.log,
        isBlocked: () => this.faults.isBlocked(id, 'out'),
        onRemoved: () => this.o.onRemoved?.(),
        onDown: () => this.unreachable.note(id, true),
      }),
    );
  }

  /** Replaces the set of removed members, whose connections are refused from now on. */
  setRemoved(ids: Iterable<MemberId>): void {
    this.removed = new Set(ids);
    // A removed member's open connection was accepted before; cut it so that it hears the refusal.
    for (const c of this.inbound) {
      if (this.removed.has(c.peerId)) c.close();
    }
  }

  removePeer(id: MemberId): void {
    this.links.get(id)?.close();
    this.links.delete(id);
  }

  /**
   * Since when (Date.now()) `peer` has accepted this member's connection without a break, or
   * null when it is not connected now: what etcd's strict reconfiguration check asks.
   */
  activeSince(peer: MemberId): number | null {
    return this.links.get(peer)?.activeSince ?? null;
  }

  /** Messages waiting in the queue to `peer` (for tests and metrics). */
  queuedMessages(peer: MemberId): number {
    return this.links.get(peer)?.queuedMessages ?? 0;
  }

  close(): Promise<void> {
    if (this.closing) return this.closing;
    for (const link of this.links.values()) link.close();
    this.links.clear();
    for (const c of this.inbound) c.close();
    this.inbound.clear();
    for (const socket of this.sockets) socket.destroy();
    this.closing = new Promise((resolve) => this.server.close(() => resolve()));
    return this.closing;
  }

  /** Accepted sockets not yet past their Hello: those still in TLS, and those whose Hello has not been accepted. */
  private handshakesInProgress(socketCount: number): number {
    let waitingForHello = 0;
    for (const c of this.inbound) if (c.peerId === 0) waitingForHello++;
    return socketCount - this.inbound.size + waitingForHello;
  }

  private noteCapped(socketCount: number): void {
    if (this.capped++ > 0) return;
    this.log('warn', `tcp transport ${this.o.id}: closing new connections: ${socketCount} open, limits ${this.bounds.inboundConnectionsMax} in all and ${this.bounds.inboundHandshakesMax} in handshake`);
    setTimeout(() => {
      if (this.capped > 1) this.log('warn', `tcp transport ${this.o.id}: closed ${this.capped} connections over the limits`);
      this.capped = 0;
    }, 10_000).unref();
  }

  private accept(socket: net.Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    if (this.o.allowedCn !== undefined) {
      const cn = (socket as tls.TLSSocket).getPeerCertificate().subject?.CN;
      if (cn !== this.o.allowedCn) {
        this.log('warn', `tcp transport ${this.o.id}: refused a peer whose certificate's CommonName ${JSON.stringify(cn ?? '')} is not the allowed ${JSON.stringify(this.o.allowedCn)}`);
        socket.destroy();
        return;
      }
    }
    const c = new InboundConnection(socket, {
      selfId: this.o.id,
      clusterToken: this.o.clusterToken,
      admissionSecret: this.o.admissionSecret,
      log: this.log,
      handshakeTimeoutMs: this.bounds.handshakeTimeoutMs,
      stallTimeoutMs: this.bounds.stallTimeoutMs,
      frameBytesMax: this.frameBytesMax,
      admits: (peer) => this.o.admits?.(peer) ?? true,
      isBlocked: (peer) => this.faults.isBlocked(peer, 'in'),
      isRemoved: (peer) => this.removed.has(peer),
      deliver: (m) => {
        if (!this.closing) this.onMessage?.(m);
      },
    });
    this.inbound.add(c);
    socket.on('close', () => this.inbound.delete(c));
  }
}

function parseAddress(address: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(address);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port < 1 || port > 65535) throw new TcpTransportError('invalid-address', `peer address "${address}" is not host:port`);
  return { host: m[1] ?? m[2], port };
}
