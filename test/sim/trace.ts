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

export class Trace {
  private readonly ring: TraceEvent[] = [];
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
    const event: TraceEvent = { timeMs, kind, member, text };
    if (this.ring.length < this.ringEventsMax) this.ring.push(event);
    else this.ring[this.ringNext] = event;
    this.ringNext = (this.ringNext + 1) % this.ringEventsMax;
    this.eventCount++;
    this.hash = fnv(this.hash, `${timeMs}|${kind}|${member}|${text}`);
    if (this.echo) this.echo(formatEvent(event));
  }

  /** The hash of every event so far, as 8 hex digits. */
  digest(): string {
    return this.hash.toString(16).padStart(8, '0');
  }

  /** The most recent events, oldest first. */
  recent(): TraceEvent[] {
    if (this.ring.length < this.ringEventsMax) return this.ring.slice();
    return [...this.ring.slice(this.ringNext), ...this.ring.slice(0, this.ringNext)];
  }
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
  const parts = [`${MessageType[m.type] ?? m.type} ${m.from}->${m.to} t${m.term}`];
  if (m.type === MessageType.App || m.type === MessageType.ForwardProp) {
    parts.push(`prev=${m.index}/t${m.logTerm} n=${m.entries.length} commit=${m.commit}`);
  } else if (m.type === MessageType.AppResp) {
    parts.push(m.reject ? `reject idx=${m.index} hint=${m.rejectHint}` : `ok idx=${m.index}`);
  } else if (m.type === MessageType.Vote || m.type === MessageType.PreVote) {
    parts.push(`last=${m.index}/t${m.logTerm}`);
  } else if (m.type === MessageType.VoteResp || m.type === MessageType.PreVoteResp) {
    parts.push(m.reject ? 'reject' : 'grant');
  } else if (m.type === MessageType.Heartbeat) {
    parts.push(`commit=${m.commit}`);
  } else if (m.type === MessageType.Snap && m.snapshot) {
    parts.push(`snap=${m.snapshot.metadata.index}/t${m.snapshot.metadata.term}`);
  }
  return parts.join(' ');
}
