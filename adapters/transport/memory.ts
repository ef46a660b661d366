// An in-process transport: members in one JavaScript realm exchange messages through a hub.
// Delivery is asynchronous (a macrotask later), like a real network; nothing is copied, so
// receivers must treat messages as read-only, as Raft does.

import type { MemberId, Message } from '../../src/raft/types.ts';
import { isLocalMessage } from '../../src/raft/types.ts';
import type { Transport } from '../../src/seams.ts';
import { PeerFaults } from './fault-switch.ts';

export class MemoryHub {
  private readonly members = new Map<MemberId, MemoryTransport>();

  /** The transport for member `id`; it can reach every other member on this hub. */
  connect(id: MemberId): MemoryTransport {
    if (this.members.has(id)) throw new Error(`memory transport: member ${id} is already connected`);
    const t = new MemoryTransport(id, this);
    this.members.set(id, t);
    return t;
  }

  /** @internal */
  route(m: Message): void {
    const target = this.members.get(m.to);
    if (target) target.receive(m);
  }

  /** @internal */
  disconnect(id: MemberId): void {
    this.members.delete(id);
  }
}

export class MemoryTransport implements Transport {
  private onMessage: ((m: Message) => void) | null = null;
  private closed = false;
  readonly faults = new PeerFaults();

  constructor(
    readonly id: MemberId,
    private readonly hub: MemoryHub,
  ) {}

  start(onMessage: (m: Message) => void): void {
    if (this.onMessage) throw new Error('memory transport: start() called twice');
    this.onMessage = onMessage;
  }

  send(messages: readonly Message[]): void {
    if (this.closed) return;
    const out = messages.filter((m) => !isLocalMessage(m.type) && !this.faults.isBlocked(m.to, 'out'));
    if (out.length === 0) return;
    setTimeout(() => {
      for (const m of out) this.hub.route(m);
    }, 0);
  }

  /** @internal */
  receive(m: Message): void {
    if (this.closed || !this.onMessage || this.faults.isBlocked(m.from, 'in')) return;
    this.onMessage(m);
  }

  addPeer(): void {}
  removePeer(): void {}

  async close(): Promise<void> {
    this.closed = true;
    this.hub.disconnect(this.id);
  }
}
