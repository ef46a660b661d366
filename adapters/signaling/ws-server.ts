// The WebSocket signaling endpoint a Node member hosts (the `ws` package): tabs in other
// browsers or profiles and other Node members join through it. It serves one cluster: a join
// with another cluster name or admission secret is refused with a close reason the client
// reports (the reason never quotes a secret), a member id is held by the first connection
// that joins with it (ws-protocol.ts), and signals are relayed only between members that
// joined. Limits come before trust: connections are capped, a connection must join within
// joinTimeoutMs, frames are at most signalBytesMax, and a connection that stops answering
// pings is dropped, so a stale one does not hold its member id for long. Mount it on an
// existing node:http server (`attach`) or give it its own port (`listen`). The member hosting
// it joins in-process (`local`), with no socket to itself, so it can join before its own
// listener is up.
//
// It also decides, once, who founds the cluster it serves (ws-protocol.ts, "Founding"): the
// first member to ask, or the hosting member given as `founder` (a Node member's cluster
// exists by configuration, so no tab may found another beside it).
//
// `ws` itself (and node's https and zlib, which it imports) is loaded by the first WebSocket
// upgrade, not with this module: a member no tab or member ever joins through has no use for
// it, and it keeps 0.35 MB of a member's heap (docs/benchmarks.md, "memory4, session 11"). It
// is loaded with require because an upgrade is answered synchronously.

import { createHash, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import { createRequire } from 'node:module';
import type { Duplex } from 'node:stream';
import type { WebSocket, WebSocketServer } from 'ws';
import type { MemberId } from '../../src/raft/types.ts';
import { SignalingError, identityProblem, isMemberId, signalBytesMax, type Signaling, type SignalingHandlers } from './types.ts';
import { closeInUse, closeProtocol, closeRefused, closeReplaced, memberKeyPattern, newMemberKey, parseMessage, type ServerMessage } from './ws-protocol.ts';

export type SignalingServerLog = (level: 'debug' | 'info' | 'warn', msg: string) => void;

export interface SignalingServerOptions {
  cluster: string;
  /** The admission secret a join must present. */
  secret: string;
  /** URL path the endpoint answers on; other upgrade requests are left alone. Default `/signaling`. */
  path?: string;
  /** A connection that has not joined within this is closed (default 5 s). */
  joinTimeoutMs?: number;
  /** WebSocket connections open at once, at most (default 256); more are answered 503. */
  connectionsMax?: number;
  /** Every this often each connection is pinged; one that did not answer the previous ping is dropped (default 15 s). */
  pingIntervalMs?: number;
  /**
   * Whether a WebSocket upgrade may proceed, given its Origin header (undefined for non-browser
   * clients, which send none) and its Host header. Browsers let any page open a WebSocket to
   * any host, so without this a page from anywhere could join a cluster on 127.0.0.1.
   * Default: every origin.
   */
  allowOrigin?: (origin: string | undefined, host: string | undefined) => boolean;
  /** Whether a WebSocket upgrade naming this Host may proceed (the member's --host-whitelist); refused with 421. Default: any. */
  allowHost?: (host: string | undefined) => boolean;
  /**
   * The member that founded the cluster served here, when there is one from the start: the
   * Node member hosting the server. Every founding claim is answered with it. Default: none;
   * the first member to claim founds the cluster.
   */
  founder?: MemberId;
  log?: SignalingServerLog;
}

/** A joined member as the relay sees it: a WebSocket, or the in-process member. */
interface Attendee {
  /** The member's key (ws-protocol.ts): a join with the same id and key replaces this attendee. */
  key: string;
  deliver(m: ServerMessage): void;
  close(code: number, reason: string): void;
}

/** Default of SignalingServerOptions.connectionsMax: the member table holds at most 128 members. */
export const signalingConnectionsMaxDefault = 256;

const require = createRequire(import.meta.url);

export class SignalingServer {
  /** `ws`'s server, made by the first upgrade (null before it: no connection to hold). */
  private wss: WebSocketServer | null = null;
  private readonly members = new Map<MemberId, Attendee>();
  private readonly log: SignalingServerLog;
  readonly path: string;
  private ownServer: http.Server | null = null;
  private detach: (() => void) | null = null;
  private readonly secretDigest: Buffer;
  private readonly connectionsMax: number;
  private readonly pingTimer: ReturnType<typeof setInterval>;
  /** Connections that answered the last ping (or sent anything since). */
  private readonly alive = new WeakSet<WebSocket>();
  /** The member that may found the cluster served here (0 until someone claims it); set once. */
  private founder: MemberId;

  constructor(private readonly o: SignalingServerOptions) {
    const problem = identityProblem({ cluster: o.cluster, secret: o.secret, id: 1 });
    if (problem) throw new Error(`signaling server: ${problem}`);
    this.path = o.path ?? '/signaling';
    this.log = o.log ?? (() => {});
    this.secretDigest = digest(o.secret);
    this.connectionsMax = o.connectionsMax ?? signalingConnectionsMaxDefault;
    if (o.founder !== undefined && !isMemberId(o.founder)) throw new Error(`signaling server: founder ${String(o.founder)} is not a positive safe integer`);
    this.founder = o.founder ?? 0;
    this.pingTimer = setInterval(() => this.pingAll(), o.pingIntervalMs ?? 15_000);
    this.pingTimer.unref();
  }

  /** Answers WebSocket upgrades to `path` on `server` (the member's HTTP listener, say). */
  attach(server: http.Server): void {
    const onUpgrade = (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      if (new URL(req.url ?? '/', 'http://x').pathname !== this.path) return;
      if (this.o.allowHost && !this.o.allowHost(req.headers.host)) {
        this.log('warn', `signaling server: refused a WebSocket naming host ${JSON.stringify(req.headers.host ?? '')}, not whitelisted`);
        socket.end('HTTP/1.1 421 Misdirected Request\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\nsignaling: host not whitelisted\n');
        return;
      }
      const origin = req.headers.origin;
      if (this.o.allowOrigin && !this.o.allowOrigin(origin, req.headers.host)) {
        this.log('warn', `signaling server: refused a WebSocket from origin ${origin}`);
        socket.end('HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\nsignaling: origin not allowed\n');
        return;
      }
      const open = this.wss?.clients.size ?? 0;
      if (open >= this.connectionsMax) {
        this.log('warn', `signaling server: refused a WebSocket: ${open} connections open, the limit`);
        socket.end('HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\nretry-after: 5\r\nconnection: close\r\n\r\nsignaling: too many connections\n');
        return;
      }
      const wss = this.webSocketServer();
      wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
    };
    server.on('upgrade', onUpgrade);
    this.detach = () => server.off('upgrade', onUpgrade);
  }

  /** Listens on its own `host:port` (127.0.0.1 by default; 0 picks a port) and returns the ws:// URL. */
  async listen(port: number, host = '127.0.0.1'): Promise<string> {
    const server = http.createServer((_req, res) => res.writeHead(426, { 'content-type': 'text/plain' }).end('WebSocket signaling only\n'));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    this.ownServer = server;
    this.attach(server);
    const bound = server.address() as { port: number };
    return `ws://${host.includes(':') ? `[${host}]` : host}:${bound.port}${this.path}`;
  }

  /** Member ids joined right now. */
  get memberIds(): MemberId[] {
    return [...this.members.keys()];
  }

  async close(): Promise<void> {
    clearInterval(this.pingTimer);
    this.detach?.();
    const wss = this.wss;
    for (const ws of wss?.clients ?? []) ws.terminate();
    this.members.clear();
    if (wss !== null) await new Promise<void>((r) => wss.close(() => r()));
    if (this.ownServer) {
      const s = this.ownServer;
      this.ownServer = null;
      s.closeAllConnections();
      await new Promise<void>((r) => s.close(() => r()));
    }
  }

  /**
   * A Signaling for the member hosting this server, joined in-process: the same relay, token
   * and presence as a WebSocket member, with no socket.
   */
  local(id: MemberId): Signaling {
    return new LocalSignaling(this, id);
  }

  /**
   * Adds `attendee` as member `id` and returns the members already there, or null when another
   * attendee with another key holds `id`. An earlier connection with the same key is replaced.
   */
  addMember(id: MemberId, attendee: Attendee): MemberId[] | null {
    const previous = this.members.get(id);
    if (previous && previous.key !== attendee.key) return null;
    if (previous) {
      this.log('info', `signaling server: member ${id} joined again; closing its previous connection`);
      previous.close(closeReplaced, `replaced by a newer connection for member ${id}`);
    }
    const others = [...this.members.keys()].filter((o) => o !== id);
    this.members.set(id, attendee);
    this.broadcast(id, { type: 'presence', id, present: true });
    this.log('info', `signaling server: member ${id} joined`);
    return others;
  }

  /** Removes member `id` if `attendee` is still its connection, and tells the others. */
  removeMember(id: MemberId, attendee: Attendee): void {
    if (this.members.get(id) !== attendee) return;
    this.members.delete(id);
    this.log('info', `signaling server: member ${id} left`);
    this.broadcast(id, { type: 'presence', id, present: false });
  }

  /**
   * Answers a founding claim from member `id`: the member that may found the cluster served
   * here, `id` itself if nobody claimed it before. Never changes once set.
   */
  claimFounding(id: MemberId): MemberId {
    if (this.founder === 0) {
      this.founder = id;
      this.log('info', `signaling server: member ${id} founds cluster "${this.o.cluster}"`);
    } else if (this.founder !== id) {
      // Every member of the cluster claims once (founding.ts): only debug-worthy.
      this.log('debug', `signaling server: member ${id} may not found cluster "${this.o.cluster}": member ${this.founder} founded it`);
    }
    return this.founder;
  }

  /** Relays a signal from a joined member; a signal to a member not here is dropped. */
  relay(from: MemberId, to: MemberId, data: unknown): void {
    this.members.get(to)?.deliver({ type: 'signal', from, data });
  }

  private onConnection(ws: WebSocket): void {
    let id: MemberId = 0;
    const attendee: Attendee = { key: '', deliver: (m) => ws.send(JSON.stringify(m)), close: (code, reason) => ws.close(code, reason) };
    this.alive.add(ws);
    ws.on('pong', () => this.alive.add(ws));
    /** Set once the join is refused: nothing more from this connection is looked at. */
    let refused = false;
    const timer = setTimeout(() => ws.close(closeProtocol, 'no join in time'), this.o.joinTimeoutMs ?? 5000);
    ws.on('error', (err) => this.log('debug', `signaling server: member ${id || '?'}: ${err.message}`));
    ws.on('close', () => {
      clearTimeout(timer);
      if (id !== 0) this.removeMember(id, attendee);
    });
    ws.on('message', (raw, isBinary) => {
      if (refused) return;
      this.alive.add(ws);
      const m = isBinary ? null : parseMessage(raw.toString());
      if (!m) return ws.close(closeProtocol, 'not a JSON signaling message');
      if (id === 0) {
        clearTimeout(timer);
        id = this.onJoin(ws, attendee, m);
        refused = id === 0;
        return;
      }
      if (m.type === 'found') return attendee.deliver({ type: 'founder', id: this.claimFounding(id) });
      if (m.type !== 'signal' || !isMemberId(m.to)) return ws.close(closeProtocol, `unexpected ${m.type} message`);
      this.relay(id, m.to, m.data);
    });
  }

  /** Returns the joined member's id, or 0 after refusing. */
  private onJoin(ws: WebSocket, attendee: Attendee, m: { type: string; [k: string]: unknown }): MemberId {
    const refuse = (reason: string) => {
      this.log('warn', `signaling server: refused a join: ${reason}`);
      ws.close(closeRefused, reason);
      return 0;
    };
    if (m.type !== 'join') return refuse(`first message is ${m.type}, not join`);
    const who = { cluster: m.cluster as string, secret: m.secret as string, id: m.id as MemberId };
    const problem = identityProblem(who);
    if (problem) return refuse(problem);
    if (typeof m.key !== 'string' || !memberKeyPattern.test(m.key)) return refuse('member key is not 16 to 64 base64url characters');
    if (who.cluster !== this.o.cluster) return refuse(`cluster "${who.cluster}" is not served here`);
    if (!timingSafeEqual(digest(who.secret), this.secretDigest)) return refuse('admission secret mismatch');
    attendee.key = m.key;
    const others = this.addMember(who.id, attendee);
    if (others === null) {
      this.log('warn', `signaling server: turned away a join as member ${who.id}: another connection holds that id`);
      ws.close(closeInUse, `member id ${who.id} is held by another connection`);
      return 0;
    }
    attendee.deliver({ type: 'joined', members: others });
    return who.id;
  }

  /** `ws`'s server (noServer: upgrades come from attach), loaded and made on the first call. */
  private webSocketServer(): WebSocketServer {
    if (this.wss !== null) return this.wss;
    const { WebSocketServer: Server } = require('ws') as typeof import('ws');
    const wss = new Server({ noServer: true, maxPayload: signalBytesMax });
    wss.on('connection', (ws: WebSocket) => this.onConnection(ws));
    this.wss = wss;
    return wss;
  }

  /** Drops connections that did not answer the previous ping, and pings the rest. */
  private pingAll(): void {
    for (const ws of this.wss?.clients ?? []) {
      if (!this.alive.has(ws)) {
        this.log('info', 'signaling server: dropped a connection that stopped answering pings');
        ws.terminate();
        continue;
      }
      this.alive.delete(ws);
      ws.ping();
    }
  }

  private broadcast(except: MemberId, m: ServerMessage): void {
    for (const [id, attendee] of this.members) if (id !== except) attendee.deliver(m);
  }
}

/** SHA-256 of a secret: compared in constant time whatever the lengths. */
function digest(secret: string): Buffer {
  return createHash('sha256').update(secret).digest();
}

/** The hosting member's own Signaling: joins the server's relay directly. */
class LocalSignaling implements Signaling {
  private attendee: Attendee | null = null;
  private closed = false;

  constructor(
    private readonly server: SignalingServer,
    readonly id: MemberId,
  ) {
    if (!isMemberId(id)) throw new SignalingError('refused', `local signaling: member id ${String(id)} is not a positive safe integer`);
  }

  async join(handlers: SignalingHandlers): Promise<void> {
    if (this.attendee) throw new Error(`local signaling ${this.id}: join() called twice`);
    if (this.closed) throw new SignalingError('closed', `local signaling ${this.id}: closed`);
    this.attendee = {
      // Nobody else can present this key: the host's id is never taken over.
      key: newMemberKey(),
      deliver: (m) => {
        if (m.type === 'presence') handlers.onPresence(m.id, m.present);
        else if (m.type === 'signal') handlers.onSignal(m.from, m.data);
      },
      close: (_code, reason) => {
        this.closed = true;
        handlers.onClosed?.(reason);
      },
    };
    const others = this.server.addMember(this.id, this.attendee);
    if (others === null) {
      this.closed = true;
      throw new SignalingError('refused', `local signaling ${this.id}: another connection holds member id ${this.id}`);
    }
    for (const other of others) handlers.onPresence(other, true);
  }

  send(to: MemberId, data: unknown): void {
    if (!this.closed && this.attendee) this.server.relay(this.id, to, data);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.attendee) this.server.removeMember(this.id, this.attendee);
  }
}
