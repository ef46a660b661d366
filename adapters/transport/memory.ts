// An in-process transport: members in one JavaScript realm exchange messages through a hub.
// Delivery is asynchronous (a macrotask later), like a real network; nothing is copied, so
// receivers must treat messages as read-only, as Raft does.

import type { MemberId, Message } from '../../src/raft/types.ts';
import { isLocalMessage } from '../../src/raft/types.ts';
import type { FaultSwitch, Transport } from '../../src/seams.ts';

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
  private readonly blockedIn = new Set<MemberId>();
  private readonly blockedOut = new Set<MemberId>();
  private closed = false;
  readonly faults: FaultSwitch;

  constructor(
    readonly id: MemberId,
    private readonly hub: MemoryHub,
  ) {
    const self = this;
    this.faults = {
      block(peer, direction = 'both') {
        if (direction !== 'out') self.blockedIn.add(peer);
        if (direction !== 'in') self.blockedOut.add(peer);
      },
      heal(peer) {
        if (peer === undefined) {
          self.blockedIn.clear();
          self.blockedOut.clear();
        } else {
          self.blockedIn.delete(peer);
          self.blockedOut.delete(peer);
        }
      },
      isBlocked(peer, direction) {
        return direction === 'in' ? self.blockedIn.has(peer) : self.blockedOut.has(peer);
      },
    };
  }

  start(onMessage: (m: Message) => void): void {
    if (this.onMessage) throw new Error('memory transport: start() called twice');
    this.onMessage = onMessage;
  }

  send(messages: readonly Message[]): void {
    if (this.closed) return;
    const out = messages.filter((m) => !isLocalMessage(m.type) && !this.blockedOut.has(m.to));
    if (out.length === 0) return;
    setTimeout(() => {
      for (const m of out) this.hub.route(m);
    }, 0);
  }

  /** @internal */
  receive(m: Message): void {
    if (this.closed || !this.onMessage || this.blockedIn.has(m.from)) return;
    this.onMessage(m);
  }

  addPeer(): void {}
  removePeer(): void {}

  async close(): Promise<void> {
    this.closed = true;
    this.hub.disconnect(this.id);
  }
}
