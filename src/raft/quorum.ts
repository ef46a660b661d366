// Quorum arithmetic for majority and joint configurations. Pure functions over sets of ids.

import type { MemberId } from './types.ts';

export enum VoteResult {
  Pending = 'pending',
  Lost = 'lost',
  Won = 'won',
}

/**
 * The highest index that a majority of `voters` has acknowledged. An empty configuration
 * has no constraint and returns +Infinity so that a joint config's min() ignores it.
 */
export function majorityCommitted(voters: ReadonlySet<MemberId>, acked: (id: MemberId) => number | undefined): number {
  const n = voters.size;
  if (n === 0) return Infinity;
  const indexes: number[] = [];
  for (const id of voters) indexes.push(acked(id) ?? 0);
  indexes.sort((a, b) => b - a);
  // With indexes in descending order, the (q-1)-th is held by at least q = n/2+1 voters.
  return indexes[Math.floor(n / 2)];
}

export function majorityVoteResult(voters: ReadonlySet<MemberId>, votes: ReadonlyMap<MemberId, boolean>): VoteResult {
  if (voters.size === 0) return VoteResult.Won;
  let granted = 0;
  let missing = 0;
  for (const id of voters) {
    const v = votes.get(id);
    if (v === undefined) missing++;
    else if (v) granted++;
  }
  const q = Math.floor(voters.size / 2) + 1;
  if (granted >= q) return VoteResult.Won;
  if (granted + missing >= q) return VoteResult.Pending;
  return VoteResult.Lost;
}

/** A configuration: `incoming` always, and `outgoing` too while the cluster is joint. */
export interface JointConfig {
  incoming: Set<MemberId>;
  outgoing: Set<MemberId>;
}

export function jointCommitted(c: JointConfig, acked: (id: MemberId) => number | undefined): number {
  return Math.min(majorityCommitted(c.incoming, acked), majorityCommitted(c.outgoing, acked));
}

export function jointVoteResult(c: JointConfig, votes: ReadonlyMap<MemberId, boolean>): VoteResult {
  const r1 = majorityVoteResult(c.incoming, votes);
  const r2 = majorityVoteResult(c.outgoing, votes);
  if (r1 === r2) return r1;
  if (r1 === VoteResult.Lost || r2 === VoteResult.Lost) return VoteResult.Lost;
  return VoteResult.Pending;
}

export function jointIds(c: JointConfig): Set<MemberId> {
  const s = new Set(c.incoming);
  for (const id of c.outgoing) s.add(id);
  return s;
}
