// KvMembers in one process: memory storage, the in-process transport, real time, fast ticks.

import { systemClock } from '../../adapters/clock/system.ts';
import { MemoryStorage } from '../../adapters/storage/memory.ts';
import type { MemoryHub } from '../../adapters/transport/memory.ts';
import type { MemberId } from '../../src/raft/types.ts';
import { KvMember, type KvMemberOptions } from '../../src/server/kv-member.ts';
import { prng } from '../raft/prng.ts';
import { waitFor } from './wait.ts';

/** Starts member `id` on `hub`, bootstrapped with `peers` (empty: it joins an existing cluster). */
export function startKvMember(hub: MemoryHub, id: MemberId, peers: MemberId[], extra: Partial<KvMemberOptions> = {}): Promise<KvMember> {
  return KvMember.start({
    id,
    peers,
    clock: systemClock,
    storage: new MemoryStorage(),
    transport: extra.transport ?? hub.connect(id),
    random: prng(id * 7 + Date.now()),
    tickMs: 5,
    electionTicks: 10,
    requestTimeoutMs: 3000,
    mvcc: { lessor: { minTtlSeconds: 1 } },
    ...extra,
  });
}

/** Slower ticks than the 5 ms above, for tests that cut members off: a loaded machine then does not churn leaders mid-test. */
export const steadyTimings = { tickMs: 20, electionTicks: 10, requestTimeoutMs: 10_000 } satisfies Partial<KvMemberOptions>;

/**
 * The member's own defaults, which are etcd's (100 ms heartbeat, 1 s election timeout, 7 s request
 * timeout): for tests that need one leader throughout, since any leader change may drop a
 * proposal in flight, which then fails only at its request timeout (as in etcd).
 */
export const etcdTimings = { tickMs: 100, electionTicks: 10, requestTimeoutMs: 7_000 } satisfies Partial<KvMemberOptions>;

/** Members 1, 2 and 3 on one hub with steady timings; each member's transport is returned so a test can cut it off. */
export async function startSteadyTrio(hub: MemoryHub): Promise<{ members: KvMember[]; transports: ReturnType<MemoryHub['connect']>[] }> {
  const ids = [1, 2, 3];
  const transports = ids.map((id) => hub.connect(id));
  const members = await Promise.all(ids.map((id, i) => startKvMember(hub, id, ids, { transport: transports[i], ...steadyTimings })));
  return { members, transports };
}

/**
 * The leader of `members` once every one of them names it: a proposal made through a follower
 * that does not know the leader yet is dropped by Raft and only fails at its request timeout.
 */
export function waitForAgreedLeader(members: KvMember[], timeoutMs = 10_000): Promise<KvMember> {
  return waitFor(
    'a leader every member knows',
    () => {
      const leader = members.find((m) => m.isLeader());
      return leader && members.every((m) => m.status().lead === leader.id) ? leader : undefined;
    },
    timeoutMs,
  );
}
