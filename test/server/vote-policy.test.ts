// The tab vote policy's arithmetic: who may vote, and whether losing the tabs can cost a quorum.
import { describe, expect, it } from 'vitest';
import { MemberTable } from '../../src/server/member-table.ts';
import { disallowedTabVoters, isTab, mayVote, nodeVotersAreQuorum } from '../../src/server/vote-policy.ts';

function table(urls: Record<number, string[]>): MemberTable {
  const t = new MemberTable();
  t.reset(Object.entries(urls).map(([id, peerURLs]) => ({ id: Number(id), name: '', peerURLs, clientURLs: [], isLearner: false })));
  return t;
}

describe('vote policy', () => {
  it('tells tabs (webrtc:// only) from Node members (anything else, or unknown)', () => {
    const t = table({ 1: ['http://127.0.0.1:2380'], 2: ['webrtc://2'], 3: ['webrtc://3', 'http://127.0.0.1:2381'], 4: [] });
    expect([1, 2, 3, 4, 5].map((id) => isTab(t, id))).toEqual([false, true, false, false, false]);
  });

  it('lets tabs vote only without a Node voter, unless the cluster opts in', () => {
    const t = table({ 1: ['http://127.0.0.1:2380'], 2: ['webrtc://2'], 3: ['webrtc://3'] });
    expect(mayVote(t, { voters: [1] }, 2)).toBe(false);
    expect(mayVote(t, { voters: [1] }, 1)).toBe(true);
    expect(mayVote(t, { voters: [2, 3] }, 2)).toBe(true);
    expect(disallowedTabVoters(t, { voters: [1, 2, 3] })).toEqual([2, 3]);
    t.applyUpdate({ kind: 'tabVotes', tabsMayOutvote: true });
    expect(mayVote(t, { voters: [1] }, 2)).toBe(true);
    expect(disallowedTabVoters(t, { voters: [1, 2, 3] })).toEqual([]);
  });

  it('losing the tabs keeps a quorum only when Node voters are a majority of every half', () => {
    const tab = (id: number) => id >= 10;
    expect(nodeVotersAreQuorum(tab, [[1, 2, 3], []])).toBe(true);
    expect(nodeVotersAreQuorum(tab, [[1, 2, 10], []])).toBe(true);
    expect(nodeVotersAreQuorum(tab, [[1, 10], []])).toBe(false);
    expect(nodeVotersAreQuorum(tab, [[1, 2, 3], [1, 10, 11]])).toBe(false);
  });
});
