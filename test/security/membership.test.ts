// Membership floods at the level where they are decided: join requests that reach a leader's
// AutoMembership (through signaling, from secret holders) are bounded while they wait, and a
// joiner that stops asking is forgotten, so that it does not hold a place for good.

import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../adapters/clock/system.ts';
import { MemoryHub } from '../../adapters/transport/memory.ts';
import type { Message, MemberId } from '../../src/raft/types.ts';
import type { Transport } from '../../src/seams.ts';
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

  it('the leader Raft follows, even when the snapshot this member restored predates that leader', async () => {
    // Member 1 snapshots with only itself in the table, then adds 2 (which restores that
    // snapshot) and hands it the lead. 2's own snapshot is still 1's, whose configuration and
    // table lack 2, and that is what learner 3 restores; only 2's appends bring the entry that
    // adds 2. Session 7 saw it in test/cluster: the learner dropped them as "not a member of
    // the configuration" and never caught up.
    const hub = new MemoryHub();
    const tight = { snapshotEntries: 4, snapshotKeepEntries: 0 };
    const initialMembers = [{ id: 1, name: 'm1', peerURLs: ['memory://1'], clientURLs: [], isLearner: false }];
    const first = await startKvMember(hub, 1, [1], { initialMembers, ...tight });
    stops.push(() => first.stop());
    await waitFor('a leader', () => first.isLeader());
    for (let i = 0; i < tight.snapshotEntries; i++) await first.put({ key: enc(`before/${i}`), value: enc('v') });
    await waitFor('member 1 to take a snapshot', () => first.member.snapshotBytes() > 0);
    // Member 2 keeps the snapshot it restores: it takes none of its own before 3 is added.
    const second = await startKvMember(hub, 2, [], { snapshotEntries: 10_000, snapshotKeepEntries: 0 });
    stops.push(() => second.stop());
    await first.addMember(2, ['memory://2'], false);
    await waitFor('member 2 to apply its own addition', () => second.members.get(2) !== undefined, 10_000);
    first.transferLeadership(2);
    await waitFor('member 2 to lead', () => second.isLeader(), 10_000);

    // Learner 3's transport admits what 3 hears, as the TCP and WebRTC transports do.
    let learner: KvMember | null = null;
    const dropped: MemberId[] = [];
    const transport = admitting(hub.connect(3), (from) => {
      const heard = learner?.hearsFrom(from) ?? false;
      if (!heard) dropped.push(from);
      return heard;
    });
    learner = await startKvMember(hub, 3, [], { transport });
    stops.push(() => learner!.stop());
    await second.addMember(3, ['memory://3'], true);
    await second.put({ key: enc('after'), value: enc('added') });
    await waitFor('the learner to read the write made after it was added', async () => (await learner!.range({ key: enc('after'), serializable: true })).kvs.length === 1, 10_000).catch((e: Error) => {
      throw new Error(`${e.message}; messages dropped from ${JSON.stringify([...new Set(dropped)])}; learner at ${JSON.stringify(learner!.member.basicStatus())}`);
    });
    expect(learner.members.get(2)).toBeDefined();
  });
});

const enc = (s: string) => new TextEncoder().encode(s);

/** `inner` with inbound messages from senders `admits` refuses dropped, as a real transport's gate does. */
function admitting(inner: Transport, admits: (from: MemberId) => boolean): Transport {
  return {
    faults: inner.faults,
    start: (onMessage) => inner.start((m: Message) => {
      if (admits(m.from)) onMessage(m);
    }),
    send: (messages) => inner.send(messages),
    addPeer: (id, address) => inner.addPeer(id, address),
    removePeer: (id) => inner.removePeer(id),
    close: () => inner.close(),
  };
}
