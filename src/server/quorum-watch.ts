// Saying why a member is stuck. A member that has had no leader for a while cannot reach a
// quorum of voters: QuorumWatch works out which voters it has not heard from (and for how long,
// tab or Node member, from the replicated member table), logs it every `logIntervalMs` with the
// remedy, and hands the same report to whoever shows it (a Node member's log, the demo's
// banner). A Raft member hears every reachable voter within an election timeout or two even
// without a leader (pre-vote requests and answers), so silence longer than that means gone.

import type { MemberId } from '../raft/types.ts';
import type { Clock } from '../seams.ts';
import type { KvMember } from './kv-member.ts';
import { isTab } from './vote-policy.ts';

export interface MissingVoter {
  id: MemberId;
  /** From the member table; empty if the member never published one. */
  name: string;
  tab: boolean;
  /** How long it has been unreachable: since its last message, or since this member started. */
  unreachableMs: number;
  /** True when nothing was heard from it since this member started. */
  neverHeard: boolean;
}

export interface QuorumReport {
  /** How long this member has had no leader. */
  leaderlessMs: number;
  voters: number;
  /** Voters this member hears from, itself included when it votes. */
  reachable: number;
  /** A majority of the voters. */
  needed: number;
  missing: MissingVoter[];
  /** What to do about it, in a sentence. */
  remedy: string;
}

export interface QuorumWatchOptions {
  clock: Clock;
  /** How often the report is logged while the member has no quorum (default 5 s). */
  logIntervalMs?: number;
  /** Leaderless for this long before the member reports (default 3 election timeouts). */
  leaderlessMsMin?: number;
  /** What an operator can do when the missing voters are gone for good (depends on the runtime). */
  whenGoneForGood: string;
  log?: (msg: string, report: QuorumReport) => void;
}

/** A voter is reachable when heard from within this many election timeouts. */
const reachableElectionTimeouts = 3;

export class QuorumWatch {
  private leaderlessSinceMs: number | null = null;
  private lastLoggedMs = -Infinity;
  private readonly stopTimer: () => void;
  private readonly logIntervalMs: number;
  private readonly leaderlessMsMin: number;

  constructor(
    private readonly kv: KvMember,
    private readonly opts: QuorumWatchOptions,
  ) {
    this.logIntervalMs = opts.logIntervalMs ?? 5000;
    this.leaderlessMsMin = opts.leaderlessMsMin ?? 3 * kv.member.electionTimeoutMs;
    this.stopTimer = opts.clock.every(Math.min(1000, this.logIntervalMs), () => this.check());
  }

  stop(): void {
    this.stopTimer();
  }

  /** The current report, or null while the member has a leader (or lost it only just now). */
  report(): QuorumReport | null {
    const member = this.kv.member;
    const now = member.now();
    if (member.status().lead !== 0) {
      this.leaderlessSinceMs = null;
      return null;
    }
    this.leaderlessSinceMs ??= now;
    const leaderlessMs = now - Math.max(this.leaderlessSinceMs, member.startedAtMs);
    if (leaderlessMs < this.leaderlessMsMin) return null;
    const voters = member.status().confState.voters;
    const reachableMs = reachableElectionTimeouts * member.electionTimeoutMs;
    const missing: MissingVoter[] = [];
    for (const id of voters) {
      if (id === this.kv.id) continue;
      const heard = member.lastHeardFrom(id);
      if (heard !== null && now - heard <= reachableMs) continue;
      missing.push({
        id,
        name: this.kv.members.get(id)?.name ?? '',
        tab: isTab(this.kv.members, id),
        unreachableMs: now - (heard ?? member.startedAtMs),
        neverHeard: heard === null,
      });
    }
    const needed = Math.floor(voters.length / 2) + 1;
    return { leaderlessMs, voters: voters.length, reachable: voters.length - missing.length, needed, missing, remedy: this.remedy(missing) };
  }

  private remedy(missing: readonly MissingVoter[]): string {
    const steps: string[] = [];
    if (missing.some((m) => m.tab)) steps.push('reopen the missing tabs in the browser profile they ran in (they come back as themselves)');
    if (missing.some((m) => !m.tab)) steps.push('restart the missing Node members on their data directories');
    if (missing.length === 0) steps.push('check the network between the voters (all are heard from, but no leader is elected)');
    return `${steps.join('; ')}; if they are gone for good, ${this.opts.whenGoneForGood}`;
  }

  private check(): void {
    const r = this.report();
    if (r === null) return;
    const now = this.kv.member.now();
    if (now - this.lastLoggedMs < this.logIntervalMs) return;
    this.lastLoggedMs = now;
    this.opts.log?.(describeQuorumLoss(r), r);
  }
}

/** One line for a log or a banner. */
export function describeQuorumLoss(r: QuorumReport): string {
  const seconds = (ms: number) => `${Math.round(ms / 1000)} s`;
  const who = r.missing
    .map((m) => `${m.name || m.id.toString(16)} (${m.tab ? 'tab' : 'Node member'} ${m.id.toString(16)}, unreachable ${m.neverHeard ? 'since this member started, ' : ''}${seconds(m.unreachableMs)})`)
    .join(', ');
  return (
    `no quorum for ${seconds(r.leaderlessMs)}: ${r.reachable} of ${r.voters} voters reachable, ${r.needed} needed` +
    (who ? `; missing: ${who}` : '') +
    `; remedy: ${r.remedy}`
  );
}
