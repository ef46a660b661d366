// The simulation's event log: a bounded ring of recent events for the failure report, and a
// running hash over every event so two runs of one seed can be compared cheaply.

import { MessageType } from '../../src/raft/types.ts';
import type { Message } from '../../src/raft/types.ts';

export type TraceKind =
  | 'send'
  | 'deliver'
  | 'drop'
  | 'duplicate'
  | 'role'
  | 'commit'
  | 'apply-snapshot'
  | 'snapshot'
  | 'crash'
  | 'restart'
  | 'fault'
  | 'heal'
  | 'propose'
  | 'conf-change'
  | 'read'
  | 'transfer'
  | 'member'
  | 'phase'
  | 'check'
  /** A recorded client operation or watcher (history-recorder.ts). */
  | 'history'
  /** A line the Raft core logged (info and warn). */
  | 'log';

export interface TraceEvent {
  timeMs: number;
  kind: TraceKind;
  /** The member the event happened on, or 0 for the network / the simulator. */
  member: number;
  text: string;
}

/**
 * What a message event needs for its line, captured when it happens (the message object may
 * change later): its text is built only if the event is printed or reported, and the digest
 * hashes these numbers. Messages are most of a run's events, and formatting each one cost more
 * than the rest of the trace.
 */
interface MessageFacts {
  type: MessageType;
  from: number;
  to: number;
  term: number;
  index: number;
  logTerm: number;
  entries: number;
  commit: number;
  reject: boolean;
  rejectHint: number;
  snapIndex: number;
  snapTerm: number;
  /** Why it was dropped, or ''. */
  reason: string;
}

interface RingEvent {
  timeMs: number;
  kind: TraceKind;
  member: number;
  text: string;
  facts: MessageFacts | null;
}

const kindCodes = new Map<TraceKind, number>();

export class Trace {
  private readonly ring: RingEvent[] = [];
  private ringNext = 0;
  private hash = 0x811c9dc5;
  eventCount = 0;

  constructor(
    private readonly ringEventsMax: number,
    private readonly echo: ((line: string) => void) | null,
  ) {
    if (ringEventsMax <= 0) throw new Error(`trace: ringEventsMax must be > 0, got ${ringEventsMax}`);
  }

  add(timeMs: number, kind: TraceKind, member: number, text: string): void {
    this.keep({ timeMs, kind, member, text, facts: null });
    this.hash = fnv(this.hash, `${timeMs}|${kind}|${member}|${text}`);
  }

  /** A message sent, delivered, dropped (`reason` says why) or duplicated. */
  addMessage(timeMs: number, kind: TraceKind, member: number, m: Message, reason: string): void {
    const facts = factsOf(m, reason);
    this.keep({ timeMs, kind, member, text: '', facts });
    let code = kindCodes.get(kind);
    if (code === undefined) kindCodes.set(kind, (code = fnv(0x811c9dc5, kind)));
    // One call per number, not a loop over an array of them: this runs for most messages.
    let h = mix(mix(mix(this.hash, timeMs), code), member);
    h = mix(mix(mix(mix(h, facts.type), facts.from), facts.to), facts.term);
    h = mix(mix(mix(mix(h, facts.index), facts.logTerm), facts.entries), facts.commit);
    h = mix(mix(mix(mix(h, facts.reject ? 1 : 0), facts.rejectHint), facts.snapIndex), facts.snapTerm);
    this.hash = reason === '' ? h : fnv(h, reason);
  }

  private keep(event: RingEvent): void {
    if (this.ring.length < this.ringEventsMax) this.ring.push(event);
    else this.ring[this.ringNext] = event;
    this.ringNext = (this.ringNext + 1) % this.ringEventsMax;
    this.eventCount++;
    if (this.echo) this.echo(formatEvent(toEvent(event)));
  }

  /** The hash of every event so far, as 8 hex digits. */
  digest(): string {
    return this.hash.toString(16).padStart(8, '0');
  }

  /** The most recent events, oldest first. */
  recent(): TraceEvent[] {
    const ordered = this.ring.length < this.ringEventsMax ? this.ring : [...this.ring.slice(this.ringNext), ...this.ring.slice(0, this.ringNext)];
    return ordered.map(toEvent);
  }
}

function toEvent(e: RingEvent): TraceEvent {
  if (e.facts === null) return { timeMs: e.timeMs, kind: e.kind, member: e.member, text: e.text };
  const text = describeFacts(e.facts);
  return { timeMs: e.timeMs, kind: e.kind, member: e.member, text: e.facts.reason ? `${text} (${e.facts.reason})` : text };
}

/** FNV-1a over a number's two 16-bit halves. */
function mix(h: number, x: number): number {
  h = Math.imul(h ^ (x & 0xffff), 0x01000193) >>> 0;
  return Math.imul(h ^ (x >>> 16), 0x01000193) >>> 0;
}

function fnv(h: number, text: string): number {
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

export function formatEvent(e: TraceEvent): string {
  const who = e.member === 0 ? '   ' : `m${e.member}`.padEnd(3);
  return `${String(e.timeMs).padStart(8)}ms ${who} ${e.kind.padEnd(14)} ${e.text}`;
}

export function describeMessage(m: Message): string {
  return describeFacts(factsOf(m, ''));
}

function factsOf(m: Message, reason: string): MessageFacts {
  return {
    type: m.type,
    from: m.from,
    to: m.to,
    term: m.term,
    index: m.index,
    logTerm: m.logTerm,
    entries: m.entries.length,
    commit: m.commit,
    reject: m.reject,
    rejectHint: m.rejectHint,
    snapIndex: m.snapshot?.metadata.index ?? -1,
    snapTerm: m.snapshot?.metadata.term ?? -1,
    reason,
  };
}

function describeFacts(m: MessageFacts): string {
  const parts = [`${MessageType[m.type] ?? m.type} ${m.from}->${m.to} t${m.term}`];
  if (m.type === MessageType.App || m.type === MessageType.ForwardProp) {
    parts.push(`prev=${m.index}/t${m.logTerm} n=${m.entries} commit=${m.commit}`);
  } else if (m.type === MessageType.AppResp) {
    parts.push(m.reject ? `reject idx=${m.index} hint=${m.rejectHint}` : `ok idx=${m.index}`);
  } else if (m.type === MessageType.Vote || m.type === MessageType.PreVote) {
    parts.push(`last=${m.index}/t${m.logTerm}`);
  } else if (m.type === MessageType.VoteResp || m.type === MessageType.PreVoteResp) {
    parts.push(m.reject ? 'reject' : 'grant');
  } else if (m.type === MessageType.Heartbeat) {
    parts.push(`commit=${m.commit}`);
  } else if (m.type === MessageType.Snap && m.snapIndex >= 0) {
    parts.push(`snap=${m.snapIndex}/t${m.snapTerm}`);
  }
  return parts.join(' ');
}
