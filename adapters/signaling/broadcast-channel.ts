// Signaling between tabs of one origin, with no server: every member posts to a
// BroadcastChannel named after the cluster. A joining member says hello; the others answer
// here (so each side learns of the other) and a leaving member says bye. Posts carrying
// another secret are ignored, so a member with a wrong secret never learns of the others and
// nobody answers its signals. Same-origin code can read the channel: the secret keeps
// misconfigured members apart, it is no defence against a page of the same origin (which can
// read the tabs' IndexedDB anyway; docs/security.md).

import type { MemberId } from '../../src/raft/types.ts';
import { SignalingError, identityProblem, isMemberId, type Signaling, type SignalingHandlers, type SignalingIdentity } from './types.ts';

type Post =
  | { kind: 'hello' | 'bye'; secret: string; from: MemberId }
  | { kind: 'here'; secret: string; from: MemberId; to: MemberId }
  | { kind: 'signal'; secret: string; from: MemberId; to: MemberId; data: unknown };

export type SignalingLog = (level: 'debug' | 'info' | 'warn', msg: string) => void;

export class BroadcastChannelSignaling implements Signaling {
  private channel: BroadcastChannel | null = null;
  private handlers: SignalingHandlers | null = null;
  private readonly present = new Set<MemberId>();
  /** Members whose posts carried another secret, so each is logged once. */
  private readonly strangers = new Set<MemberId>();
  private closed = false;

  constructor(
    private readonly who: SignalingIdentity,
    private readonly log: SignalingLog = () => {},
  ) {
    const problem = identityProblem(who);
    if (problem) throw new SignalingError('refused', `broadcast-channel signaling: ${problem}`);
  }

  get id(): MemberId {
    return this.who.id;
  }

  async join(handlers: SignalingHandlers): Promise<void> {
    if (this.handlers) throw new Error(`broadcast-channel signaling ${this.who.id}: join() called twice`);
    if (this.closed) throw new SignalingError('closed', `broadcast-channel signaling ${this.who.id}: closed`);
    this.handlers = handlers;
    this.channel = new BroadcastChannel(`meshkv-signaling:${this.who.cluster}`);
    this.channel.onmessage = (e: MessageEvent) => this.onPost(e.data);
    this.post({ kind: 'hello', secret: this.who.secret, from: this.who.id });
  }

  send(to: MemberId, data: unknown): void {
    if (!this.present.has(to)) return;
    this.post({ kind: 'signal', secret: this.who.secret, from: this.who.id, to, data });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (!this.channel) return;
    this.post({ kind: 'bye', secret: this.who.secret, from: this.who.id });
    this.channel.close();
    this.channel = null;
    this.present.clear();
  }

  private post(p: Post): void {
    this.channel?.postMessage(p);
  }

  private onPost(raw: unknown): void {
    if (this.closed || !this.handlers || typeof raw !== 'object' || raw === null) return;
    const p = raw as Partial<Post> & { to?: unknown };
    if (!isMemberId(p.from) || p.from === this.who.id) return;
    if (p.secret !== this.who.secret) {
      if (!this.strangers.has(p.from)) this.log('warn', `broadcast-channel signaling ${this.who.id}: ignoring member ${p.from}: it presents another secret`);
      this.strangers.add(p.from);
      return;
    }
    const h = this.handlers;
    switch (p.kind) {
      case 'hello':
        // A hello from a member already present means it restarted: announce it again.
        this.present.add(p.from);
        this.post({ kind: 'here', secret: this.who.secret, from: this.who.id, to: p.from });
        h.onPresence(p.from, true);
        return;
      case 'here':
        if (p.to !== this.who.id || this.present.has(p.from)) return;
        this.present.add(p.from);
        h.onPresence(p.from, true);
        return;
      case 'bye':
        if (this.present.delete(p.from)) h.onPresence(p.from, false);
        return;
      case 'signal':
        if (p.to !== this.who.id) return;
        if (!this.present.has(p.from)) {
          // Its hello was missed (the channel opened after it): it is here all the same.
          this.present.add(p.from);
          h.onPresence(p.from, true);
        }
        h.onSignal(p.from, (p as { data?: unknown }).data);
        return;
    }
  }
}
