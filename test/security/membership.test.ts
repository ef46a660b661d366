// Membership floods at the level where they are decided: join requests that reach a leader's
// AutoMembership (through signaling, from secret holders) are bounded while they wait, and a
// joiner that stops asking is forgotten, so that it does not hold a place for good.

import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../adapters/clock/system.ts';
import { MemoryHub } from '../../adapters/transport/memory.ts';
import { AutoMembership } from '../../src/server/auto-membership.ts';
import type { KvMember } from '../../src/server/kv-member.ts';
import { startKvMember } from '../helpers/kv-members.ts';
import { waitFor } from '../helpers/wait.ts';

const stops: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s();
});

async function leaderWithAuto(o: { joinsPendingMax: number; leaveMemoryMs?: number }): Promise<{ kv: KvMember; auto: AutoMembership; logs: string[] }> {
  const kv = await startKvMember(new MemoryHub(), 1, [1]);
  stops.push(() => kv.stop());
  await waitFor('a leader', () => kv.member.isLeader());
  const logs: string[] = [];
  const auto = new AutoMembership(kv, { clock: systemClock, checkIntervalMs: 20, log: (level, msg) => logs.push(`${level}: ${msg}`), ...o });
  stops.push(() => auto.stop());
  return { kv, auto, logs };
}

const join = (id: number) => ({ id, name: `flood-${id}`, peerURLs: [`webrtc://${id}`], wantsVote: false });

describe('join floods', () => {
  it('at most joinsPendingMax joins wait at once; the rest are dropped and logged', async () => {
    const { kv, auto, logs } = await leaderWithAuto({ joinsPendingMax: 4 });
    for (let id = 100; id < 120; id++) auto.join(join(id));
    await waitFor('the accepted joins to be carried out', () => kv.members.list().length === 4, 10_000).catch((e: Error) => { throw new Error(`${e.message}: ${JSON.stringify(kv.members.list().map((m) => m.id))} ${logs.join(' / ')}`); });
    // Nobody repeats: the dropped ones are never added.
    await new Promise((r) => setTimeout(r, 300));
    expect(kv.members.list().map((m) => m.id).sort((a, b) => a - b)).toEqual([100, 101, 102, 103]);
    expect(logs.filter((l) => l.includes('dropping join requests'))).toEqual(['warn: automatic membership: 4 joins pending, the limit; dropping join requests until some are done']);
  });

  it('forgets a joiner that stopped asking, so its place goes to others', async () => {
    // Two configured voters, one never started: no leader, so joins only wait.
    const kv = await startKvMember(new MemoryHub(), 1, [1, 2]);
    stops.push(() => kv.stop());
    const logs: string[] = [];
    const auto = new AutoMembership(kv, { clock: systemClock, checkIntervalMs: 20, leaveMemoryMs: 200, joinsPendingMax: 1, log: (level, msg) => logs.push(`${level}: ${msg}`) });
    stops.push(() => auto.stop());
    auto.join(join(200));
    auto.join(join(201));
    expect(logs).toEqual(['warn: automatic membership: 1 joins pending, the limit; dropping join requests until some are done']);
    // 200 does not repeat its request: after leaveMemoryMs it is forgotten and 201 gets its place.
    await waitFor('the stale join to be forgotten', () => {
      auto.join(join(201));
      return logs.some((l) => /^info: automatic membership: taking join requests again after dropping \d+$/.test(l));
    }, 5000);
  });
});

describe('whom Raft hears (KvMember.hearsFrom, asked by the TCP and WebRTC transports)', () => {
  it('members of the table; anyone only while the member has no configuration yet', async () => {
    const hub = new MemoryHub();
    const initialMembers = [1, 2].map((id) => ({ id, name: `m${id}`, peerURLs: [`memory://${id}`], clientURLs: [], isLearner: false }));
    const founder = await startKvMember(hub, 1, [1, 2], { initialMembers });
    const other = await startKvMember(hub, 2, [1, 2], { initialMembers });
    const joiner = await startKvMember(hub, 3, []);
    stops.push(() => founder.stop(), () => other.stop(), () => joiner.stop());
    expect(founder.hearsFrom(2)).toBe(true);
    expect(founder.hearsFrom(0x5eed)).toBe(false);
    // A joiner knows no configuration until the leader's first append or snapshot.
    expect(joiner.hearsFrom(0x5eed)).toBe(true);
    // Once added and caught up, it hears its table only.
    const leader = await waitFor('a leader', () => [founder, other].find((m) => m.member.isLeader()));
    await leader.addMember(3, ['memory://3'], true);
    await waitFor('the joiner to have a configuration', () => !joiner.hearsFrom(0x5eed), 10_000);
    expect(joiner.hearsFrom(1)).toBe(true);
  });
});
