// The demo's telemetry between tabs of one browser: what a tab member tells the other tabs so
// that every tab can draw the whole cluster, and the fault commands one tab asks another to
// carry out. It travels on a BroadcastChannel named after the cluster; it is for the picture
// only and never touches Raft.
//
//   beacon    every beaconMs: the sender's own MemberView, the configuration it has applied,
//             the member table's names, and the peers its fault switch blocks. A member not
//             heard from for silentAfterMs is shown as silent.
//   messages  every messagesMs when there are any: the Raft messages the sender sent (and those
//             it received from members that report nothing themselves, the Node members), with
//             heartbeats sampled (see MessageSampler) so a steady cluster does not flood the page.
//   command   "member `to`, do `action`": a tab carries out faults on its own member only.

import type { MemberId } from '../../src/raft/types.ts';
import type { FaultAction, MemberView, WireMessage } from './cluster.ts';

export const beaconMs = 300;
export const messagesMs = 100;
/** Two missed beacons and a half: a tab that closed, froze or lost its page. */
export const silentAfterMs = 1200;
/** Messages in one batch, at most (the rest of a burst is not drawn). */
export const batchMessagesMax = 64;
/** One heartbeat (and one answer) per link and direction is drawn per this many ms. */
export const heartbeatSampleMs = 600;

export interface Beacon {
  kind: 'beacon';
  from: MemberId;
  view: MemberView;
  /** The sender's applied configuration (empty while it is not running). */
  voters: MemberId[];
  learners: MemberId[];
  /** The member table as the sender knows it: names, and whether each member is a tab. */
  table: { id: MemberId; name: string; tab: boolean }[];
  /** Peers the sender's fault switch blocks. */
  blocked: MemberId[];
}

export interface MessageBatch {
  kind: 'messages';
  from: MemberId;
  messages: WireMessage[];
}

/** `block` / `unblock`: cut or heal the link to `peer` at the receiving end. */
export type CommandAction = FaultAction | 'block' | 'unblock';

export interface Command {
  kind: 'command';
  to: MemberId;
  action: CommandAction;
  peer?: MemberId;
}

export type Telemetry = Beacon | MessageBatch | Command;

const commandActions = new Set<string>(['isolate', 'heal', 'pause', 'resume', 'crash', 'restart', 'remove', 'block', 'unblock']);

function isId(v: unknown): v is MemberId {
  return typeof v === 'number' && Number.isSafeInteger(v) && v > 0;
}

/** The message if it is well formed, else null (another page version, or garbage). */
export function parseTelemetry(raw: unknown): Telemetry | null {
  if (typeof raw !== 'object' || raw === null) return null;
  const m = raw as Record<string, unknown>;
  switch (m.kind) {
    case 'beacon':
      if (!isId(m.from) || typeof m.view !== 'object' || m.view === null || (m.view as MemberView).id !== m.from) return null;
      if (![m.voters, m.learners, m.blocked].every((l) => Array.isArray(l) && l.every(isId)) || !Array.isArray(m.table)) return null;
      return m as unknown as Beacon;
    case 'messages':
      return isId(m.from) && Array.isArray(m.messages) ? (m as unknown as MessageBatch) : null;
    case 'command':
      if (!isId(m.to) || typeof m.action !== 'string' || !commandActions.has(m.action)) return null;
      if ((m.action === 'block' || m.action === 'unblock') && !isId(m.peer)) return null;
      return m as unknown as Command;
    default:
      return null;
  }
}

/**
 * Decides which sent messages are drawn. Every vote, append with entries, snapshot and refusal
 * is; heartbeats, their answers and empty appends are drawn once per heartbeatSampleMs per link
 * and direction: a leader heartbeats every 100 ms, which would be a blur.
 */
export class MessageSampler {
  private readonly last = new Map<string, number>();

  constructor(private readonly now: () => number) {}

  keep(m: WireMessage): boolean {
    const routine = (m.kind === 'heartbeat' || (m.kind === 'append' && m.entries === 0) || m.kind === 'read-index') && !m.reject;
    if (!routine) return true;
    const key = `${m.from}>${m.to}:${m.kind}:${m.response ? 1 : 0}:${m.dropped ? 1 : 0}`;
    const t = this.now();
    if (t - (this.last.get(key) ?? -Infinity) < heartbeatSampleMs) return false;
    this.last.set(key, t);
    return true;
  }
}

/** The demo's BroadcastChannel for `cluster`. */
export function telemetryChannel(cluster: string): BroadcastChannel {
  return new BroadcastChannel(`meshkv-demo/${cluster}`);
}

/** What etcd's Status (POST /v3/maintenance/status) says about the member that answers it. */
export interface ServingStatus {
  id: number;
  term: number;
  leader: number;
  commit: number;
  applied: number;
  revision: number;
  atMs: number;
}

/** Reads the fields the picture needs from a JSON gateway Status answer; null if it is not one. */
export function parseServingStatus(body: unknown, atMs: number): ServingStatus | null {
  if (typeof body !== 'object' || body === null) return null;
  const b = body as Record<string, unknown>;
  const header = b.header as Record<string, unknown> | undefined;
  const num = (v: unknown) => (typeof v === 'string' || typeof v === 'number' ? Number(v) : NaN);
  const status = {
    id: num(header?.member_id),
    term: num(b.raftTerm),
    leader: num(b.leader),
    commit: num(b.raftIndex),
    applied: num(b.raftAppliedIndex),
    revision: num(header?.revision),
    atMs,
  };
  return Object.values(status).every((v) => Number.isSafeInteger(v) && v >= 0) ? status : null;
}
