// A member that cannot reach a quorum says which voters it misses, tab or Node member, for how
// long, and what to do.
import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../adapters/clock/system.ts';
import { MemoryHub } from '../../adapters/transport/memory.ts';
import type { KvMember } from '../../src/server/kv-member.ts';
import { describeQuorumLoss, QuorumWatch, type QuorumReport } from '../../src/server/quorum-watch.ts';
import { startKvMember } from '../helpers/kv-members.ts';
import { waitFor } from '../helpers/wait.ts';

let members: KvMember[] = [];
afterEach(async () => {
  for (const m of members) await m.stop();
  members = [];
});

describe('QuorumWatch', () => {
  it('names the missing voters, tab or Node member, how long, and the remedy; nothing while there is a leader', async () => {
    const hub = new MemoryHub();
    // Member 1 and 2 are Node members, 3 a tab that may vote (a cluster that opted in).
    const urls: Record<number, string> = { 1: 'http://127.0.0.1:2380', 2: 'http://127.0.0.1:2381', 3: 'webrtc://3' };
    const initialMembers = [1, 2, 3].map((id) => ({ id, name: `m${id}`, peerURLs: [urls[id]], clientURLs: [], isLearner: false }));
    members = await Promise.all([1, 2, 3].map((id) => startKvMember(hub, id, [1, 2, 3], { initialMembers })));
    // Member 1 leads, so that it has heard from both others (a follower hears only the leader).
    await waitFor('member 1 leading', () => {
      const leader = members.find((m) => m.isLeader());
      if (leader !== undefined && leader !== members[0]) leader.transferLeadership(1);
      return members[0].isLeader();
    });
    const logged: QuorumReport[] = [];
    const watch = new QuorumWatch(members[0], { clock: systemClock, logIntervalMs: 100, leaderlessMsMin: 1000, whenGoneForGood: 'force it', log: (_, r) => logged.push(r) });
    try {
      await new Promise((r) => setTimeout(r, 400));
      expect(watch.report()).toBeNull();
      expect(logged).toEqual([]);
      for (const m of members.slice(1)) await m.stop();
      members = members.slice(0, 1);
      await waitFor('a report', () => logged.length >= 2, 5000);
      const r = watch.report()!;
      expect(r).toMatchObject({ voters: 3, reachable: 1, needed: 2 });
      expect(r.missing.map((m) => [m.id, m.tab])).toEqual([
        [2, false],
        [3, true],
      ]);
      expect(r.missing.every((m) => m.unreachableMs > 0 && !m.neverHeard)).toBe(true);
      const line = describeQuorumLoss(r);
      expect(line).toMatch(/^no quorum for \d+ s: 1 of 3 voters reachable, 2 needed; missing: m2 \(Node member 2, unreachable \d+ s\), m3 \(tab 3, unreachable \d+ s\); remedy: reopen the missing tabs .*; restart the missing Node members .*; if they are gone for good, force it$/);
    } finally {
      watch.stop();
    }
  });
});
