// The simulated network: best-effort, unordered delivery of Raft messages. Each message may be
// dropped, delayed (with a long tail, which also reorders), or duplicated; directed links can be
// cut. A link is checked both when a message is sent and when it would arrive, so a partition
// also swallows what was in flight.

import { MessageType, type Entry, type Message, type MemberId } from '../../src/raft/types.ts';
import type { Prng } from './prng.ts';

export interface LinkConditions {
  dropProbability: number;
  duplicateProbability: number;
  latencyMsMin: number;
  latencyMsMax: number;
  /** Probability that a message takes the slow path, up to tailLatencyMsMax. */
  tailProbability: number;
  tailLatencyMsMax: number;
}

export const calmConditions: LinkConditions = {
  dropProbability: 0,
  duplicateProbability: 0,
  latencyMsMin: 1,
  latencyMsMax: 5,
  tailProbability: 0,
  tailLatencyMsMax: 5,
};

/**
 * `sender` is the member whose Ready produced the message; it differs from `message.from` when
 * a follower relays a ReadIndex request for another member. Links are cut by sender.
 */
export type Deliver = (atMs: number, sender: MemberId, message: Message) => void;
export type NetworkObserver = (kind: 'send' | 'drop' | 'duplicate', message: Message, reason: string) => void;

export class SimNetwork {
  conditions: LinkConditions = calmConditions;
  /** Cut directed links, as `${from}>${to}`. */
  private readonly blockedLinks = new Set<string>();
  messagesSent = 0;
  messagesDropped = 0;

  constructor(
    private readonly prng: Prng,
    private readonly schedule: Deliver,
    private readonly observe: NetworkObserver,
  ) {}

  send(nowMs: number, sender: MemberId, message: Message): void {
    this.messagesSent++;
    this.observe('send', message, '');
    if (this.isBlocked(sender, message.to)) {
      this.drop(message, 'link cut');
      return;
    }
    const c = this.conditions;
    if (this.prng.chance(c.dropProbability)) {
      this.drop(message, 'random loss');
      return;
    }
    this.schedule(nowMs + this.latencyMs(), sender, copyMessage(message));
    // A forwarded proposal is not duplicated: the member has no client sessions (neither has
    // etcd), so a second copy would be appended and applied twice. The real transports (TCP,
    // WebRTC's reliable channels) never duplicate; Raft's own messages still are, here.
    if (message.type !== MessageType.Prop && message.type !== MessageType.ForwardProp && this.prng.chance(c.duplicateProbability)) {
      this.observe('duplicate', message, '');
      this.schedule(nowMs + this.latencyMs(), sender, copyMessage(message));
    }
  }

  /** Whether a message arriving now still gets through (the link may have been cut meanwhile). */
  admits(sender: MemberId, message: Message): boolean {
    if (!this.isBlocked(sender, message.to)) return true;
    this.drop(message, 'link cut in flight');
    return false;
  }

  block(from: MemberId, to: MemberId): void {
    if (from !== to) this.blockedLinks.add(`${from}>${to}`);
  }

  blockBoth(a: MemberId, b: MemberId): void {
    this.block(a, b);
    this.block(b, a);
  }

  heal(from: MemberId, to: MemberId): void {
    this.blockedLinks.delete(`${from}>${to}`);
  }

  /** Heals every link to and from `member`. */
  healMember(member: MemberId): void {
    for (const link of [...this.blockedLinks]) {
      const [from, to] = link.split('>').map(Number);
      if (from === member || to === member) this.blockedLinks.delete(link);
    }
  }

  healAll(): void {
    this.blockedLinks.clear();
  }

  isBlocked(from: MemberId, to: MemberId): boolean {
    return this.blockedLinks.size > 0 && this.blockedLinks.has(`${from}>${to}`);
  }

  blockedLinkCount(): number {
    return this.blockedLinks.size;
  }

  drop(message: Message, reason: string): void {
    this.messagesDropped++;
    this.observe('drop', message, reason);
  }

  private latencyMs(): number {
    const c = this.conditions;
    if (c.tailProbability > 0 && this.prng.chance(c.tailProbability)) {
      return this.prng.range(c.latencyMsMax, Math.max(c.latencyMsMax, c.tailLatencyMsMax));
    }
    return this.prng.range(c.latencyMsMin, c.latencyMsMax);
  }
}

/**
 * A copy as a real transport would deliver it: the receiver never shares objects with the
 * sender, and gets the fields the wire format carries (src/codec/message.ts). Built field by
 * field: a spread of the sender's object cost more per message than the rest of the copy.
 */
function copyMessage(m: Message): Message {
  return {
    type: m.type,
    to: m.to,
    from: m.from,
    term: m.term,
    logTerm: m.logTerm,
    index: m.index,
    entries: m.entries.length === 0 ? [] : m.entries.map(copyEntry),
    commit: m.commit,
    reject: m.reject,
    rejectHint: m.rejectHint,
    snapshot: m.snapshot
      ? { metadata: { ...m.snapshot.metadata, confState: copyConfState(m.snapshot.metadata.confState) }, data: m.snapshot.data.slice() }
      : null,
    context: m.context ? m.context.slice() : null,
  };
}

function copyEntry(e: Entry): Entry {
  return { term: e.term, index: e.index, type: e.type, data: e.data.slice() };
}

function copyConfState<T extends { voters: number[]; learners: number[]; votersOutgoing: number[]; learnersNext: number[] }>(cs: T): T {
  return {
    ...cs,
    voters: cs.voters.slice(),
    learners: cs.learners.slice(),
    votersOutgoing: cs.votersOutgoing.slice(),
    learnersNext: cs.learnersNext.slice(),
  };
}
