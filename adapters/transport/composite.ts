// One transport made of several, chosen per peer by the scheme of its address: a Node member
// in a mixed cluster reaches other Node members over TCP and browser tabs over WebRTC. Each
// part keeps its own links, queues and validation; this only routes. Messages to a peer whose
// address is not known yet are dropped, as an unreachable peer's are (Raft sends again).

import type { MemberId, Message } from '../../src/raft/types.ts';
import { reportsDelivery, type DeliveryReport, type DeliveryReports, type FaultSwitch, type Transport } from '../../src/seams.ts';

/** Optional capabilities of a part that the composite passes through. */
interface RemovalAware {
  setRemoved(ids: Iterable<MemberId>): void;
}
interface LinkAges {
  activeSince(peer: MemberId): number | null;
}

export interface Route {
  /** Address schemes this part serves, without the colon: `webrtc`, `tcp`. */
  schemes: string[];
  transport: Transport;
}

export class CompositeTransport implements Transport, DeliveryReports {
  private readonly byPeer = new Map<MemberId, Transport>();
  readonly faults: FaultSwitch;
  /** Snapshot reports only if every part gives them; unreachable peers from every part that reports them. */
  readonly reportsSnapshots: boolean;

  /**
   * @param routes the parts, each with the schemes it serves
   * @param fallback the part for addresses with no scheme or one no route names (`host:port`)
   */
  constructor(
    private readonly routes: readonly Route[],
    private readonly fallback: Transport,
  ) {
    const parts = this.parts();
    this.reportsSnapshots = parts.every((t) => reportsDelivery(t) && t.reportsSnapshots);
    // One switch over every part: a test that cuts a peer cuts it whichever way it is reached.
    this.faults = {
      block: (peer, direction) => parts.forEach((t) => t.faults.block(peer, direction)),
      heal: (peer) => parts.forEach((t) => t.faults.heal(peer)),
      isBlocked: (peer, direction) => parts.some((t) => t.faults.isBlocked(peer, direction)),
    };
  }

  start(onMessage: (message: Message) => void): void {
    for (const t of this.parts()) t.start(onMessage);
  }

  onDeliveryReport(fn: (report: DeliveryReport) => void): void {
    for (const t of this.parts()) if (reportsDelivery(t)) t.onDeliveryReport(fn);
  }

  send(messages: readonly Message[]): void {
    if (messages.length === 0) return;
    const batches = new Map<Transport, Message[]>();
    for (const m of messages) {
      const t = this.byPeer.get(m.to);
      if (!t) continue;
      const batch = batches.get(t);
      if (batch) batch.push(m);
      else batches.set(t, [m]);
    }
    for (const [t, batch] of batches) t.send(batch);
  }

  addPeer(id: MemberId, address: string): void {
    const t = this.routeFor(address);
    const previous = this.byPeer.get(id);
    if (previous && previous !== t) previous.removePeer(id);
    this.byPeer.set(id, t);
    t.addPeer(id, address);
  }

  removePeer(id: MemberId): void {
    this.byPeer.get(id)?.removePeer(id);
    this.byPeer.delete(id);
  }

  /** Forwarded to every part that refuses removed members (TCP does; see node-member.ts). */
  setRemoved(ids: Iterable<MemberId>): void {
    const list = [...ids];
    for (const t of this.parts()) (t as Partial<RemovalAware>).setRemoved?.(list);
  }

  /** Since when the link to `peer` has been up, from the part that reaches it; null if down or unknown. */
  activeSince(peer: MemberId): number | null {
    const t = this.byPeer.get(peer) as Partial<LinkAges> | undefined;
    return t?.activeSince?.(peer) ?? null;
  }

  async close(): Promise<void> {
    await Promise.all(this.parts().map((t) => t.close()));
  }

  private routeFor(address: string): Transport {
    const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(address)?.[1].toLowerCase();
    return (scheme && this.routes.find((r) => r.schemes.includes(scheme))?.transport) || this.fallback;
  }

  private parts(): Transport[] {
    return [...new Set([this.fallback, ...this.routes.map((r) => r.transport)])];
  }
}
