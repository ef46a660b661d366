// Members that join, get promoted and leave on their own, as browser tabs do. Join and leave
// requests reach every member (here by calling each one; in a browser, through signaling).
import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../adapters/clock/system.ts';
import { MemoryHub } from '../../adapters/transport/memory.ts';
import type { MemberId } from '../../src/raft/types.ts';
import { AutoMembership, type AutoMembershipOptions, type JoinRequest } from '../../src/server/auto-membership.ts';
import type { KvMember } from '../../src/server/kv-member.ts';
import { startKvMember } from '../helpers/kv-members.ts';
import { waitFor } from '../helpers/wait.ts';

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

interface Node {
  kv: KvMember;
  auto: AutoMembership;
}

let nodes: Node[] = [];

afterEach(async () => {
  for (const n of nodes) {
    n.auto.stop();
    await n.kv.stop();
  }
  nodes = [];
});

/**
 * Starts member `id`. Founders know each other's records, as every real member does from its
 * configuration; `founders` says whether they are tabs (`webrtc://`, a tab-only cluster) or
 * Node members (`http://`), which decides who may vote (vote-policy.ts).
 */
async function start(hub: MemoryHub, id: MemberId, peers: MemberId[], founders: 'tabs' | 'node' = 'tabs', auto: Partial<AutoMembershipOptions> = {}): Promise<Node> {
  const url = (p: MemberId) => (founders === 'tabs' ? `webrtc://${p}` : `http://127.0.0.1:${20000 + p}`);
  const initialMembers = peers.map((p) => ({ id: p, name: `m${p}`, peerURLs: [url(p)], clientURLs: [], isLearner: false }));
  const kv = await startKvMember(hub, id, peers, { initialMembers });
  const node = { kv, auto: new AutoMembership(kv, { clock: systemClock, checkIntervalMs: 20, ...auto }) };
  nodes.push(node);
  return node;
}

const running = () => nodes.filter((n) => !n.kv.member.isStopped());
const leader = () => running().find((n) => n.kv.member.isLeader());
const config = (n: Node) => n.kv.member.status().confState;
/** The leader's configuration; undefined during an election (a loaded machine has some). */
const leaderConfig = () => {
  const l = leader();
  return l && config(l);
};

/**
 * Runs `fn` on the leader; again on the next leader if leadership moved meanwhile (a loaded
 * machine has elections) and `fn` failed or answered with "not leader".
 */
async function onLeader<T>(fn: (n: Node) => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    const l = await waitFor('a leader', () => leader());
    try {
      const r = await fn(l);
      if (attempt >= 5 || !(r instanceof Error && /not leader/.test(r.message))) return r;
    } catch (err) {
      if (attempt >= 5 || !/not leader|timed out|dropped/.test((err as Error).message)) throw err;
    }
  }
}

/** What a joining tab does: ask every member until it sees itself a voter. */
function keepAsking(req: JoinRequest): () => void {
  const timer = setInterval(() => {
    for (const n of running()) n.auto.join(req);
  }, 50);
  return () => clearInterval(timer);
}

describe('AutoMembership', () => {
  it('adds a joiner as a learner, promotes it once caught up, and it serves the data', async () => {
    const hub = new MemoryHub();
    for (const id of [1, 2, 3]) await start(hub, id, [1, 2, 3]);
    await waitFor('a leader', () => leader() !== undefined);
    for (let i = 0; i < 50; i++) await onLeader((l) => l.kv.put({ key: enc(`k${i}`), value: enc(`v${i}`) }));

    const joiner = await start(hub, 4, []);
    const seenAsLearner: boolean[] = [];
    const stopAsking = keepAsking({ id: 4, name: 'tab-4', peerURLs: ['webrtc://4'], wantsVote: true });
    try {
      await waitFor('member 4 to be a voter', () => {
        const cs = leaderConfig();
        if (!cs) return false;
        if (cs.learners.includes(4)) seenAsLearner.push(true);
        return cs.voters.includes(4);
      }, 10_000);
    } finally {
      stopAsking();
    }
    expect(seenAsLearner.length).toBeGreaterThan(0);
    expect(leader()!.kv.members.get(4)?.peerURLs).toEqual(['webrtc://4']);
    await waitFor('the joiner to apply its promotion', () => config(joiner).voters.includes(4));
    const r = await joiner.kv.range({ key: enc('k49'), serializable: true });
    expect(dec(r.kvs[0].value)).toBe('v49');
  });

  it('with Node voters, keeps tabs learners unless the cluster opts in; switching back demotes them', async () => {
    const hub = new MemoryHub();
    for (const id of [1, 2, 3]) await start(hub, id, [1, 2, 3], 'node');
    await waitFor('a leader', () => leader() !== undefined);
    await start(hub, 4, []);
    const stopAsking = keepAsking({ id: 4, name: 'tab-4', peerURLs: ['webrtc://4'], wantsVote: true });
    try {
      await waitFor('tab 4 to be a learner', () => leaderConfig()?.learners.includes(4), 10_000);
      // Caught up and asking, and still not promoted; etcdctl's promote is refused too.
      await new Promise((r) => setTimeout(r, 500));
      // Whoever leads by then: under load an election may be running.
      expect((await waitFor('a leader', () => leaderConfig())).voters).not.toContain(4);
      const refusal = await onLeader((l) => l.kv.promoteMember(4).then(() => null, (err: Error) => err));
      expect(refusal?.message).toMatch(/browser tab .* stays a learner/);

      await onLeader((l) => l.auto.setTabsMayOutvote(true));
      await waitFor('tab 4 to be a voter once tabs may outvote', () => leaderConfig()?.voters.includes(4), 10_000);
      await onLeader((l) => l.auto.setTabsMayOutvote(false));
      await waitFor('tab 4 demoted again', () => leaderConfig()?.learners.includes(4) && !leaderConfig()?.voters.includes(4), 10_000);
    } finally {
      stopAsking();
    }
  });

  it('a Node member joining a cluster of tabs becomes a voter and the tabs are demoted, the leader last', async () => {
    const hub = new MemoryHub();
    for (const id of [1, 2, 3]) await start(hub, id, [1, 2, 3], 'tabs');
    await waitFor('a leader', () => leader() !== undefined);
    await start(hub, 4, []);
    const stopAsking = keepAsking({ id: 4, name: 'node-4', peerURLs: ['http://127.0.0.1:20004'], wantsVote: true });
    try {
      await waitFor('the Node member the only voter, the tabs learners', () => {
        const cs = leaderConfig();
        return cs !== undefined && cs.voters.join() === '4' && [...cs.learners].sort().join() === '1,2,3';
      }, 20_000);
    } finally {
      stopAsking();
    }
  });

  it('removes a tab unreachable past the grace period; it joins again when it comes back', async () => {
    const hub = new MemoryHub();
    for (const id of [1, 2, 3]) await start(hub, id, [1, 2, 3], 'node', { tabGraceMs: 600 });
    await waitFor('a leader', () => leader() !== undefined);
    const tab = await start(hub, 4, [], 'node', { tabGraceMs: 600 });
    let stopAsking = keepAsking({ id: 4, name: 'tab-4', peerURLs: ['webrtc://4'], wantsVote: true });
    await waitFor('tab 4 to be a learner', () => leaderConfig()?.learners.includes(4), 10_000);
    stopAsking();
    await new Promise((r) => setTimeout(r, 300));
    // Still in: it is reachable. Then it crashes, without a word.
    expect((await waitFor('a leader', () => leaderConfig())).learners).toContain(4);
    tab.auto.stop();
    await tab.kv.stop();
    nodes = nodes.filter((n) => n !== tab);
    await waitFor('the crashed tab removed', () => leaderConfig() !== undefined && !leaderConfig()!.learners.includes(4), 10_000);
    expect(leader()!.kv.members.get(4)).toBeUndefined();
    // The same id comes back (a reopened tab) and is added again.
    await start(hub, 4, [], 'node', { tabGraceMs: 600 });
    stopAsking = keepAsking({ id: 4, name: 'tab-4', peerURLs: ['webrtc://4'], wantsVote: true });
    try {
      await waitFor('tab 4 back as a learner', () => leaderConfig()?.learners.includes(4), 10_000);
    } finally {
      stopAsking();
    }
    // Node members are never removed that way.
    expect((await waitFor('a leader', () => leaderConfig())).voters.sort()).toEqual([1, 2, 3]);
  });

  it('keeps a joiner that does not want a vote a learner', async () => {
    const hub = new MemoryHub();
    for (const id of [1, 2, 3]) await start(hub, id, [1, 2, 3]);
    await waitFor('a leader', () => leader() !== undefined);
    await start(hub, 5, []);
    const stopAsking = keepAsking({ id: 5, name: 'replica', peerURLs: ['webrtc://5'], wantsVote: false });
    try {
      await waitFor('member 5 to be a learner', () => leaderConfig()?.learners.includes(5), 10_000);
      await new Promise((r) => setTimeout(r, 300));
      // Whoever leads by then: under load an election may be running (5 ms ticks).
      const cs = await waitFor('a leader', () => leaderConfig());
      expect(cs.voters).not.toContain(5);
    } finally {
      stopAsking();
    }
  });

  it('removes a member that leaves, and the next leader removes a leader that left', async () => {
    const hub = new MemoryHub();
    for (const id of [1, 2, 3, 4, 5]) await start(hub, id, [1, 2, 3, 4, 5]);
    await waitFor('a leader', () => leader() !== undefined);
    const follower = running().find((n) => !n.kv.member.isLeader())!;
    const followerId = follower.kv.id;
    for (const n of running()) n.auto.leave(followerId);
    await waitFor('the follower to be removed', () => {
      const cs = leaderConfig();
      return cs !== undefined && !cs.voters.includes(followerId);
    }, 10_000);
    expect(leader()!.kv.members.get(followerId)).toBeUndefined();

    // The leader's tab closes: it tells the others, then stops without waiting.
    const old = leader()!;
    const oldId = old.kv.id;
    for (const n of running()) n.auto.leave(oldId);
    old.auto.stop();
    await old.kv.stop();
    await waitFor('a new leader without the old one', () => {
      const l = leader();
      return l !== undefined && !config(l).voters.includes(oldId);
    }, 10_000);
    // Three voters remain and still commit.
    const l = leader()!;
    expect(config(l).voters.length).toBe(3);
    await l.kv.put({ key: enc('after'), value: enc('ok') });
  });
});
