// Membership control over signaling. One Signaling carries two kinds of traffic between the
// members of a cluster: the WebRTC transport's offers, answers and ICE candidates, and the
// small control messages with which members that come and go (browser tabs) found a cluster,
// join it and leave it. ControlChannel multiplexes them: it wraps a Signaling, hands the
// transport a Signaling of its own (`transportSignaling`, which sees only transport signals),
// and sends and receives control messages on the side.
//
// Wire form. A control message travels as the signal data
//
//     { meshkvControl: 1, msg: ControlMessage }
//
// and everything else is a transport signal, passed through untouched, so a member that does
// not multiplex still interoperates for the transport (it only logs the control signals it
// does not understand). Signaling already authenticates the sender (cluster token) and tells
// the receiver who sent each signal, so messages carry no sender field of their own; a message
// naming a member id (leave) is accepted only from that member.
//
// The protocol (every message is best effort; senders repeat what matters):
//
//   probe                  "Is there a cluster here?" Sent by a member with no Raft state of
//                          its own before it decides to found a cluster or to join one.
//   probe-reply            Answer to a probe: `inCluster` says whether the responder belongs
//                          to the configuration it has applied (voter or learner), with its
//                          view of the leader (0 if none), its applied voters and learners,
//                          and the cluster's bootstrap members: the member table the cluster
//                          was founded with (a tab founder: itself; Node members: their
//                          --initial-cluster). A joiner seeds its member table with these, as
//                          every member does, so that replaying the log from its first entry
//                          gives it the same table as everyone else. A member with no cluster
//                          yet answers inCluster: false and no bootstrap members.
//   join                   AutoMembership's JoinRequest: "add me (as a learner), and promote
//                          me once caught up if I want a vote". A joiner sends it to every
//                          member present, again and again, until it sees itself in the
//                          configuration it has applied. Every member passes it to its
//                          AutoMembership; only the leader acts on it.
//   leave                  "I am going away for good; remove me." Sent once to every member
//                          present by a member that closes gracefully. Every member passes it
//                          to AutoMembership, which remembers it for a while so that the next
//                          leader carries it out if the leaver was the leader. A leaving leader
//                          that has just handed leadership over (sent Raft's TimeoutNow, which
//                          forfeits its lease) names that voter and its term as `successor`:
//                          the data channel carrying the TimeoutNow may be torn down with the
//                          page before it is delivered, so the successor, if it still follows
//                          the leaver in that term, acts on this notice as on the TimeoutNow
//                          and campaigns at once instead of waiting an election timeout.
//
// Founding (how a cluster with nobody in it gets exactly one founder) is the caller's job,
// built on probe and on the signaling's founding claim where it has one (WebSocket: the
// server names one founder per cluster, ws-protocol.ts): see adapters/browser/founding.ts. A Node member that serves tabs answers
// probes (inCluster: true once it is configured), and passes join and leave to its
// AutoMembership: `serveMembershipControl` below does all three for any KvMember.
//
// This module imports no DOM or Node module: tabs and Node members both use it.

import type { MemberId } from '../../src/raft/types.ts';
import type { AutoMembership, JoinRequest } from '../../src/server/auto-membership.ts';
import type { KvMember } from '../../src/server/kv-member.ts';
import { isMemberId, type Signaling, type SignalingHandlers } from './types.ts';

export type ControlMessage =
  | { kind: 'probe' }
  | { kind: 'probe-reply'; inCluster: boolean; leader: MemberId; voters: MemberId[]; learners: MemberId[]; bootstrapMembers: BootstrapMember[] }
  | { kind: 'join'; request: JoinRequest }
  | { kind: 'leave'; id: MemberId; successor?: { id: MemberId; term: number } };

/** A member of the founding configuration, as every member seeds its member table with it. */
export interface BootstrapMember {
  id: MemberId;
  name: string;
  peerURLs: string[];
}

/** The signal-data envelope of a control message. */
interface ControlEnvelope {
  meshkvControl: 1;
  msg: ControlMessage;
}

/** Members listed in one probe reply, at most (the member table's own limit is 128). */
export const probeReplyMembersMax = 128;
/** Bytes of a joiner's name or of one peer URL, at most. */
export const joinFieldBytesMax = 256;
/** Peer URLs in one join request, at most. */
export const joinPeerUrlsMax = 8;

export type ControlHandler = (from: MemberId, msg: ControlMessage) => void;
export type PresenceHandler = (id: MemberId, present: boolean) => void;
export type ControlLog = (level: 'debug' | 'info' | 'warn', msg: string) => void;

export class ControlChannel {
  /** The Signaling to give the transport: joining it joins the wrapped one. */
  readonly transportSignaling: Signaling;
  private transportHandlers: SignalingHandlers | null = null;
  private readonly controlHandlers = new Set<ControlHandler>();
  private readonly presenceHandlers = new Set<PresenceHandler>();
  private readonly present = new Set<MemberId>();
  private closed = false;
  /** While true (a tab cut off by setOffline), control messages are neither sent nor heard. */
  private muted = false;

  constructor(
    private readonly inner: Signaling,
    private readonly log: ControlLog = () => {},
  ) {
    const self = this;
    this.transportSignaling = {
      get id() {
        return inner.id;
      },
      join: (handlers) => self.join(handlers),
      send: (to, data) => inner.send(to, data),
      close: () => self.close(),
    };
  }

  get id(): MemberId {
    return this.inner.id;
  }

  /** Members present on signaling right now (joined and not gone), this one excluded. */
  presentMembers(): MemberId[] {
    return [...this.present];
  }

  /** Subscribes to control messages; returns the unsubscribe function. */
  onControl(fn: ControlHandler): () => void {
    this.controlHandlers.add(fn);
    return () => this.controlHandlers.delete(fn);
  }

  /** Subscribes to presence changes (members arriving on or leaving signaling). */
  onPresence(fn: PresenceHandler): () => void {
    this.presenceHandlers.add(fn);
    return () => this.presenceHandlers.delete(fn);
  }

  /** Stops (true) or resumes (false) sending and hearing control messages, as a lost network would. */
  setMuted(muted: boolean): void {
    this.muted = muted;
  }

  send(to: MemberId, msg: ControlMessage): void {
    if (this.closed || this.muted) return;
    this.inner.send(to, { meshkvControl: 1, msg } satisfies ControlEnvelope);
  }

  /**
   * Who may found the cluster, when the wrapped signaling decides it (Signaling.claimFounding:
   * WebSocket signaling's server); undefined when it does not (BroadcastChannel).
   */
  get claimFounding(): (() => Promise<MemberId>) | undefined {
    const inner = this.inner;
    return inner.claimFounding ? () => inner.claimFounding!() : undefined;
  }

  /** Sends `msg` to every member present. */
  broadcast(msg: ControlMessage): void {
    for (const id of this.present) this.send(id, msg);
  }

  /** Closes the wrapped signaling (others see this member go). Repeatable. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.present.clear();
    this.inner.close();
  }

  private async join(handlers: SignalingHandlers): Promise<void> {
    if (this.transportHandlers) throw new Error(`control channel ${this.inner.id}: join() called twice`);
    this.transportHandlers = handlers;
    await this.inner.join({
      onSignal: (from, data) => this.onSignal(from, data),
      onPresence: (id, present) => {
        if (present) this.present.add(id);
        else this.present.delete(id);
        handlers.onPresence(id, present);
        for (const fn of this.presenceHandlers) fn(id, present);
      },
      onClosed: (reason) => handlers.onClosed?.(reason),
    });
  }

  private onSignal(from: MemberId, data: unknown): void {
    if (this.closed) return;
    if (typeof data !== 'object' || data === null || !('meshkvControl' in data)) {
      this.transportHandlers?.onSignal(from, data);
      return;
    }
    if (this.muted) return;
    const msg = parseControl(from, (data as { msg?: unknown }).msg);
    if (!msg) {
      this.log('warn', `control channel ${this.inner.id}: ignored a malformed control message from member ${from}`);
      return;
    }
    for (const fn of this.controlHandlers) fn(from, msg);
  }
}

/** Validates a control message from `from`, or returns null. */
export function parseControl(from: MemberId, raw: unknown): ControlMessage | null {
  if (typeof raw !== 'object' || raw === null) return null;
  const m = raw as Record<string, unknown>;
  switch (m.kind) {
    case 'probe':
      return { kind: 'probe' };
    case 'probe-reply': {
      if (typeof m.inCluster !== 'boolean' || !(m.leader === 0 || isMemberId(m.leader))) return null;
      if (!isIdList(m.voters) || !isIdList(m.learners)) return null;
      const boot = m.bootstrapMembers;
      if (!Array.isArray(boot) || boot.length > probeReplyMembersMax || !boot.every(isBootstrapMember)) return null;
      const bootstrapMembers = boot.map((b) => ({ id: b.id, name: b.name, peerURLs: [...b.peerURLs] }));
      return { kind: 'probe-reply', inCluster: m.inCluster, leader: m.leader as MemberId, voters: m.voters, learners: m.learners, bootstrapMembers };
    }
    case 'join': {
      const r = m.request as Record<string, unknown> | null;
      if (typeof r !== 'object' || r === null || r.id !== from || typeof r.wantsVote !== 'boolean') return null;
      if (!isShortString(r.name) || !isUrlList(r.peerURLs)) return null;
      return { kind: 'join', request: { id: from, name: r.name, peerURLs: [...r.peerURLs], wantsVote: r.wantsVote } };
    }
    case 'leave': {
      // Only a member itself may say it leaves.
      if (m.id !== from) return null;
      if (m.successor === undefined) return { kind: 'leave', id: from };
      const su = m.successor as Record<string, unknown> | null;
      if (typeof su !== 'object' || su === null || !isMemberId(su.id) || su.id === from || !Number.isSafeInteger(su.term) || (su.term as number) < 1) return null;
      return { kind: 'leave', id: from, successor: { id: su.id, term: su.term as number } };
    }
    default:
      return null;
  }
}

function isIdList(v: unknown): v is MemberId[] {
  return Array.isArray(v) && v.length <= probeReplyMembersMax && v.every(isMemberId);
}

function isUrlList(v: unknown): v is string[] {
  return Array.isArray(v) && v.length <= joinPeerUrlsMax && v.every(isShortString);
}

function isBootstrapMember(v: unknown): v is BootstrapMember {
  if (typeof v !== 'object' || v === null) return false;
  const b = v as Record<string, unknown>;
  return isMemberId(b.id) && isShortString(b.name) && isUrlList(b.peerURLs);
}

function isShortString(v: unknown): v is string {
  return typeof v === 'string' && v.length <= joinFieldBytesMax;
}

/**
 * This member's answer to a probe: whether it belongs to the configuration it has applied, and
 * the members it was bootstrapped with (its initialMembers; sent only while it is in a cluster).
 */
export function probeReplyOf(kv: KvMember, bootstrapMembers: readonly BootstrapMember[]): ControlMessage & { kind: 'probe-reply' } {
  const s = kv.status();
  const voters = [...s.confState.voters];
  const learners = [...s.confState.learners];
  const inCluster = voters.includes(kv.id) || learners.includes(kv.id);
  return {
    kind: 'probe-reply',
    inCluster,
    leader: s.lead,
    voters,
    learners,
    bootstrapMembers: inCluster ? bootstrapMembers.map((b) => ({ id: b.id, name: b.name, peerURLs: [...b.peerURLs] })) : [],
  };
}

/**
 * Makes `kv` answer the control protocol: probes get a probe-reply, join and leave requests go
 * to `auto`. Tabs and Node members that serve tabs both run this; `bootstrapMembers` is the
 * member table `kv` was started with (KvMemberOptions.initialMembers). Returns the unsubscribe.
 */
export function serveMembershipControl(channel: ControlChannel, kv: KvMember, auto: AutoMembership, bootstrapMembers: readonly BootstrapMember[]): () => void {
  return channel.onControl((from, msg) => {
    if (kv.isStopped()) return;
    switch (msg.kind) {
      case 'probe':
        channel.send(from, probeReplyOf(kv, bootstrapMembers));
        return;
      case 'join':
        auto.join(msg.request);
        return;
      case 'leave':
        auto.leave(msg.id);
        return;
      case 'probe-reply':
        return; // answers to this member's own probes; the founder logic listens for them
    }
  });
}
