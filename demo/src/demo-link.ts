// The in-page cluster's transport for one member: the memory transport, plus what the demo
// needs to show and break it. Every message is reported to a tap when sent; it travels for a
// fixed flight time (so what is drawn in flight really is in flight); and a paused member's
// traffic is held, both ways, until it resumes — as a frozen process's socket buffers would.

import type { MemoryTransport } from '../../adapters/transport/memory.ts';
import { isLocalMessage, isResponseMessage, MessageType, type MemberId, type Message } from '../../src/raft/types.ts';
import type { Clock, FaultSwitch, Transport } from '../../src/seams.ts';
import type { MessageKind, WireMessage } from './cluster.ts';

/** Messages held per direction while paused; past it the oldest are dropped, as a full buffer would. */
export const heldMessagesMax = 4096;

export interface DemoLinkOptions {
  flightMs: number;
  /** Sees every message this member sends; `dropped` is decided by the cluster (cut links, stopped peers). */
  tap: (m: Message, dropped: boolean) => void;
  /** Whether a message from this member to `to` would be lost (a cut link or a stopped member). */
  isLost: (to: MemberId) => boolean;
}

export class DemoLink implements Transport {
  private onMessage: ((m: Message) => void) | null = null;
  private paused = false;
  private readonly heldIn: Message[] = [];
  private readonly heldOut: Message[] = [];
  private readonly timers = new Set<ReturnType<typeof setTimeout>>();

  constructor(
    private readonly inner: MemoryTransport,
    private readonly opts: DemoLinkOptions,
  ) {}

  get faults(): FaultSwitch {
    return this.inner.faults;
  }

  start(onMessage: (m: Message) => void): void {
    this.onMessage = onMessage;
    this.inner.start((m) => {
      if (this.paused) hold(this.heldIn, m);
      else onMessage(m);
    });
  }

  send(messages: readonly Message[]): void {
    const out = messages.filter((m) => !isLocalMessage(m.type));
    if (this.paused) {
      for (const m of out) hold(this.heldOut, m);
      return;
    }
    this.dispatch(out);
  }

  /** Freezes this member's network: nothing leaves, arrivals wait. */
  pause(): void {
    this.paused = true;
  }

  /** Delivers what arrived while paused, then sends what the member queued meanwhile. */
  resume(): void {
    this.paused = false;
    for (const m of this.heldIn.splice(0)) this.onMessage?.(m);
    this.dispatch(this.heldOut.splice(0));
  }

  addPeer(): void {}
  removePeer(): void {}

  async close(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    await this.inner.close();
  }

  private dispatch(messages: readonly Message[]): void {
    const live: Message[] = [];
    for (const m of messages) {
      const dropped = this.opts.isLost(m.to);
      this.opts.tap(m, dropped);
      if (!dropped) live.push(m);
    }
    if (live.length === 0) return;
    const t = setTimeout(() => {
      this.timers.delete(t);
      this.inner.send(live);
    }, this.opts.flightMs);
    this.timers.add(t);
  }
}

/** A clock whose timers skip while the member is paused; time itself keeps running. */
export function pausableClock(inner: Clock, isPaused: () => boolean): Clock {
  return {
    now: () => inner.now(),
    every: (intervalMs, fn) => inner.every(intervalMs, () => {
      if (!isPaused()) fn();
    }),
  };
}

/** Queues a message held by a paused member, dropping the oldest past heldMessagesMax. */
export function hold(queue: Message[], m: Message): void {
  if (queue.length >= heldMessagesMax) queue.shift();
  queue.push(m);
}

/** How the demo names a Raft message; heartbeats and appends are told apart as Raft does. */
export function describeMessage(m: Message, flightMs: number, dropped: boolean): WireMessage {
  return {
    from: m.from,
    to: m.to,
    kind: messageKind(m.type),
    response: isResponseMessage(m.type),
    reject: m.reject,
    term: m.term,
    entries: m.entries.length,
    flightMs,
    dropped,
  };
}

function messageKind(type: MessageType): MessageKind {
  switch (type) {
    case MessageType.PreVote:
    case MessageType.PreVoteResp:
      return 'prevote';
    case MessageType.Vote:
    case MessageType.VoteResp:
      return 'vote';
    case MessageType.App:
    case MessageType.AppResp:
      return 'append';
    case MessageType.Heartbeat:
    case MessageType.HeartbeatResp:
      return 'heartbeat';
    case MessageType.Snap:
      return 'snapshot';
    case MessageType.ReadIndex:
    case MessageType.ReadIndexResp:
      return 'read-index';
    case MessageType.ForwardProp:
      return 'forward';
    case MessageType.TimeoutNow:
    case MessageType.TransferLeader:
      return 'timeout-now';
    default:
      throw new Error(`demo: message type ${type} is local and never on the wire`);
  }
}
