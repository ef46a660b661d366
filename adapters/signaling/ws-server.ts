// The WebSocket signaling endpoint a Node member hosts (the `ws` package): tabs in other
// browsers or profiles and other Node members join through it. It serves one cluster: a join
// with another cluster name or token is refused with a close reason the client reports, and
// signals are relayed only between members that joined. Mount it on an existing node:http
// server (`attach`) or give it its own port (`listen`).

import http from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { MemberId } from '../../src/raft/types.ts';
import { identityProblem, isMemberId, signalBytesMax } from './types.ts';
import { closeProtocol, closeRefused, closeReplaced, parseMessage, type ServerMessage } from './ws-protocol.ts';

export type SignalingServerLog = (level: 'debug' | 'info' | 'warn', msg: string) => void;

export interface SignalingServerOptions {
  cluster: string;
  token: string;
  /** URL path the endpoint answers on; other upgrade requests are left alone. Default `/signaling`. */
  path?: string;
  /** A connection that has not joined within this is closed. */
  joinTimeoutMs?: number;
  log?: SignalingServerLog;
}

export class SignalingServer {
  private readonly wss: WebSocketServer;
  private readonly members = new Map<MemberId, WebSocket>();
  private readonly log: SignalingServerLog;
  readonly path: string;
  private ownServer: http.Server | null = null;
  private detach: (() => void) | null = null;

  constructor(private readonly o: SignalingServerOptions) {
    const problem = identityProblem({ cluster: o.cluster, token: o.token, id: 1 });
    if (problem) throw new Error(`signaling server: ${problem}`);
    this.path = o.path ?? '/signaling';
    this.log = o.log ?? (() => {});
    this.wss = new WebSocketServer({ noServer: true, maxPayload: signalBytesMax });
    this.wss.on('connection', (ws: WebSocket) => this.onConnection(ws));
  }

  /** Answers WebSocket upgrades to `path` on `server` (the member's HTTP listener, say). */
  attach(server: http.Server): void {
    const onUpgrade = (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      if (new URL(req.url ?? '/', 'http://x').pathname !== this.path) return;
      this.wss.handleUpgrade(req, socket, head, (ws) => this.wss.emit('connection', ws, req));
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
    this.detach?.();
    for (const ws of this.wss.clients) ws.terminate();
    this.members.clear();
    await new Promise<void>((r) => this.wss.close(() => r()));
    if (this.ownServer) {
      const s = this.ownServer;
      this.ownServer = null;
      s.closeAllConnections();
      await new Promise<void>((r) => s.close(() => r()));
    }
  }

  private onConnection(ws: WebSocket): void {
    let id: MemberId = 0;
    const timer = setTimeout(() => ws.close(closeProtocol, 'no join in time'), this.o.joinTimeoutMs ?? 5000);
    ws.on('error', (err) => this.log('debug', `signaling server: member ${id || '?'}: ${err.message}`));
    ws.on('close', () => {
      clearTimeout(timer);
      if (id === 0 || this.members.get(id) !== ws) return;
      this.members.delete(id);
      this.log('info', `signaling server: member ${id} left`);
      this.broadcast(id, { type: 'presence', id, present: false });
    });
    ws.on('message', (raw, isBinary) => {
      const m = isBinary ? null : parseMessage(raw.toString());
      if (!m) return ws.close(closeProtocol, 'not a JSON signaling message');
      if (id === 0) {
        clearTimeout(timer);
        id = this.onJoin(ws, m);
        return;
      }
      if (m.type !== 'signal' || !isMemberId(m.to)) return ws.close(closeProtocol, `unexpected ${m.type} message`);
      this.members.get(m.to)?.send(JSON.stringify({ type: 'signal', from: id, data: m.data } satisfies ServerMessage));
    });
  }

  /** Returns the joined member's id, or 0 after refusing. */
  private onJoin(ws: WebSocket, m: { type: string; [k: string]: unknown }): MemberId {
    const refuse = (reason: string) => {
      this.log('warn', `signaling server: refused a join: ${reason}`);
      ws.close(closeRefused, reason);
      return 0;
    };
    if (m.type !== 'join') return refuse(`first message is ${m.type}, not join`);
    const who = { cluster: m.cluster as string, token: m.token as string, id: m.id as MemberId };
    const problem = identityProblem(who);
    if (problem) return refuse(problem);
    if (who.cluster !== this.o.cluster) return refuse(`cluster "${who.cluster}" is not served here`);
    if (who.token !== this.o.token) return refuse('cluster token mismatch');
    const previous = this.members.get(who.id);
    if (previous) {
      this.log('warn', `signaling server: member ${who.id} joined again; closing its previous connection`);
      previous.close(closeReplaced, `replaced by a newer connection for member ${who.id}`);
    }
    const others = [...this.members.keys()].filter((o) => o !== who.id);
    this.members.set(who.id, ws);
    ws.send(JSON.stringify({ type: 'joined', members: others } satisfies ServerMessage));
    this.broadcast(who.id, { type: 'presence', id: who.id, present: true });
    this.log('info', `signaling server: member ${who.id} joined`);
    return who.id;
  }

  private broadcast(except: MemberId, m: ServerMessage): void {
    const text = JSON.stringify(m);
    for (const [id, ws] of this.members) if (id !== except) ws.send(text);
  }
}
