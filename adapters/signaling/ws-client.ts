// The WebSocket signaling client, for tabs (the browser's WebSocket) and Node members (pass
// the `ws` package's WebSocket: this module imports no Node module). After a join is accepted
// a dropped connection is re-established with capped backoff; data channels already up do not
// need signaling and keep working meanwhile. A refusal ends it: join() rejects with the
// server's reason, or onClosed reports it on a later attempt. A connection turned away
// because another one holds the member id (the server has not yet seen this member's previous
// connection go, or someone else claims the id) is retried with the same backoff.

import type { MemberId } from '../../src/raft/types.ts';
import { SignalingError, identityProblem, isMemberId, type Signaling, type SignalingHandlers, type SignalingIdentity } from './types.ts';
import { closeInUse, closeRefused, closeReplaced, newMemberKey, parseMessage, type ClientMessage } from './ws-protocol.ts';
import type { SignalingLog } from './broadcast-channel.ts';

/** The part of the WebSocket API used here; the browser's and `ws`'s both have it. */
interface SocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: never) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: never) => void) | null;
}
export type WebSocketConstructor = new (url: string) => unknown;

export interface WebSocketSignalingOptions extends SignalingIdentity {
  /** ws:// or wss:// URL of a member's signaling endpoint. */
  url: string;
  /** Default: the global WebSocket (browsers; Node 22+). Node 20 passes `ws`'s. */
  WebSocket?: WebSocketConstructor;
  log?: SignalingLog;
  reconnectDelayMsMin?: number;
  reconnectDelayMsMax?: number;
}

const openState = 1;

export class WebSocketSignaling implements Signaling {
  private socket: SocketLike | null = null;
  private handlers: SignalingHandlers | null = null;
  private closed = false;
  private joined = false;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private retryDelayMs: number;
  private readonly log: SignalingLog;
  private readonly Socket: WebSocketConstructor;
  /** This member's key (ws-protocol.ts), the same on every reconnection. */
  private readonly key = newMemberKey();
  /** Callers of claimFounding() waiting for the server's answer. */
  private foundingWaiters: Array<{ resolve: (founder: MemberId) => void; reject: (e: Error) => void }> = [];
  /**
   * Set by the first claimFounding(): the claim is sent again after every rejoin, so that a
   * restarted server, which forgot its founder, names a member of the cluster already here.
   */
  private claimed = false;

  constructor(private readonly o: WebSocketSignalingOptions) {
    const problem = identityProblem(o);
    if (problem) throw new SignalingError('refused', `websocket signaling: ${problem}`);
    const Socket = o.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!Socket) throw new SignalingError('unreachable', 'websocket signaling: no WebSocket in this runtime; pass the `ws` package\'s WebSocket');
    this.Socket = Socket;
    this.log = o.log ?? (() => {});
    this.retryDelayMs = o.reconnectDelayMsMin ?? 100;
  }

  get id(): MemberId {
    return this.o.id;
  }

  join(handlers: SignalingHandlers): Promise<void> {
    if (this.handlers) throw new Error(`websocket signaling ${this.o.id}: join() called twice`);
    this.handlers = handlers;
    return new Promise((resolve, reject) => this.connect(resolve, reject));
  }

  send(to: MemberId, data: unknown): void {
    if (this.socket?.readyState !== openState || !this.joined) return;
    this.socket.send(JSON.stringify({ type: 'signal', to, data } satisfies ClientMessage));
  }

  /**
   * Asks the server who may found the cluster (ws-protocol.ts, "Founding"); waits across
   * reconnections, and claims again after every later rejoin (see `claimed`).
   */
  claimFounding(): Promise<MemberId> {
    if (this.closed) return Promise.reject(new SignalingError('closed', `websocket signaling ${this.o.id}: closed`));
    return new Promise((resolve, reject) => {
      this.claimed = true;
      this.foundingWaiters.push({ resolve, reject });
      if (this.foundingWaiters.length === 1) this.sendFoundingClaim();
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.socket?.close(1000, 'leaving');
    this.socket = null;
    this.failFoundingClaims(`websocket signaling ${this.o.id}: closed before the server answered the founding claim`);
  }

  private sendFoundingClaim(): void {
    if (this.socket?.readyState === openState && this.joined) this.socket.send(JSON.stringify({ type: 'found' } satisfies ClientMessage));
  }

  private failFoundingClaims(reason: string): void {
    const waiters = this.foundingWaiters;
    this.foundingWaiters = [];
    for (const w of waiters) w.reject(new SignalingError('closed', reason));
  }

  /** `resolve` and `reject` are given on the first attempt only: join() waits for its outcome. */
  private connect(resolve?: () => void, reject?: (e: Error) => void): void {
    this.retryTimer = null;
    if (this.closed) return;
    const s = new this.Socket(this.o.url) as SocketLike;
    this.socket = s;
    this.joined = false;
    s.onopen = () => s.send(JSON.stringify({ type: 'join', cluster: this.o.cluster, secret: this.o.secret, id: this.o.id, key: this.key } satisfies ClientMessage));
    s.onerror = () => {}; // onclose follows with the code
    s.onmessage = (ev) => {
      const m = parseMessage(typeof ev.data === 'string' ? ev.data : null);
      if (!m || this.socket !== s) return;
      if (m.type === 'joined' && Array.isArray(m.members)) {
        this.joined = true;
        this.retryDelayMs = this.o.reconnectDelayMsMin ?? 100;
        for (const id of m.members) if (isMemberId(id)) this.handlers!.onPresence(id, true);
        if (this.claimed) this.sendFoundingClaim();
        resolve?.();
        resolve = reject = undefined;
      } else if (m.type === 'presence' && isMemberId(m.id) && typeof m.present === 'boolean') {
        this.handlers!.onPresence(m.id, m.present);
      } else if (m.type === 'signal' && isMemberId(m.from)) {
        this.handlers!.onSignal(m.from, m.data);
      } else if (m.type === 'founder' && isMemberId(m.id)) {
        const waiters = this.foundingWaiters;
        this.foundingWaiters = [];
        for (const w of waiters) w.resolve(m.id as MemberId);
      } else {
        this.log('warn', `websocket signaling ${this.o.id}: ignored a ${m.type} message from the server`);
      }
    };
    s.onclose = (ev) => {
      if (this.socket !== s) return;
      this.socket = null;
      this.joined = false;
      if (this.closed) return;
      if (ev.code === closeRefused || ev.code === closeReplaced) {
        const reason = `signaling server ${this.o.url} refused member ${this.o.id}: ${ev.reason || `close code ${ev.code}`}`;
        this.log('warn', `websocket signaling ${this.o.id}: ${reason}`);
        this.closed = true;
        this.failFoundingClaims(reason);
        if (reject) reject(new SignalingError('refused', reason));
        else this.handlers!.onClosed?.(reason);
        return;
      }
      if (ev.code === closeInUse) {
        this.log('warn', `websocket signaling ${this.o.id}: ${ev.reason || 'member id in use'}; retrying in ${this.retryDelayMs} ms`);
        this.retryLater(resolve, reject);
        return;
      }
      if (reject) {
        this.closed = true;
        reject(new SignalingError('unreachable', `signaling server ${this.o.url} closed the connection before the join (code ${ev.code}${ev.reason ? `: ${ev.reason}` : ''})`));
        return;
      }
      this.log('info', `websocket signaling ${this.o.id}: connection to ${this.o.url} lost (code ${ev.code}); retrying in ${this.retryDelayMs} ms`);
      this.retryLater();
    };
  }

  /** Connects again after the current backoff; a first join still pending keeps waiting for the outcome. */
  private retryLater(resolve?: () => void, reject?: (e: Error) => void): void {
    this.retryTimer = setTimeout(() => this.connect(resolve, reject), this.retryDelayMs);
    this.retryDelayMs = Math.min(this.retryDelayMs * 2, this.o.reconnectDelayMsMax ?? 5000);
  }
}
