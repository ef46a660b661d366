import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { VoteResult, jointCommitted, jointVoteResult, majorityCommitted, majorityVoteResult } from '../../../src/raft/quorum.ts';

const ids = (...xs: number[]) => new Set(xs);
const ackedFrom = (m: Record<number, number>) => (id: number) => m[id];

describe('majorityCommitted', () => {
  // [voters, acks, expected]. Missing acks count as 0.
  const cases: [number[], Record<number, number>, number][] = [
    [[1], { 1: 5 }, 5],
    [[1], {}, 0],
    [[1, 2], { 1: 5, 2: 3 }, 3],
    [[1, 2], { 1: 5 }, 0],
    [[1, 2, 3], { 1: 5, 2: 3, 3: 1 }, 3],
    [[1, 2, 3], { 1: 5, 2: 5 }, 5],
    [[1, 2, 3], { 1: 5 }, 0],
    [[1, 2, 3, 4], { 1: 9, 2: 8, 3: 7, 4: 6 }, 7],
    [[1, 2, 3, 4], { 1: 9, 2: 8 }, 0],
    [[1, 2, 3, 4], { 1: 9, 2: 8, 3: 1 }, 1],
    [[1, 2, 3, 4, 5], { 1: 10, 2: 9, 3: 8, 4: 2, 5: 1 }, 8],
    [[1, 2, 3, 4, 5], { 1: 10, 2: 9 }, 0],
    [[1, 2, 3, 4, 5, 6], { 1: 6, 2: 5, 3: 4, 4: 3, 5: 2, 6: 1 }, 3],
    [[1, 2, 3, 4, 5, 6, 7], { 1: 7, 2: 6, 3: 5, 4: 4, 5: 3, 6: 2, 7: 1 }, 4],
    [[1, 2, 3, 4, 5, 6, 7], { 1: 7, 2: 7, 3: 7 }, 0],
    [[1, 2, 3, 4, 5, 6, 7], { 1: 7, 2: 7, 3: 7, 4: 2 }, 2],
  ];
  it.each(cases)('voters %j acks %j → %i', (voters, acks, want) => {
    expect(majorityCommitted(ids(...voters), ackedFrom(acks))).toBe(want);
  });

  it('ignores acks from non-voters', () => {
    expect(majorityCommitted(ids(1, 2, 3), ackedFrom({ 1: 9, 4: 9, 5: 9 }))).toBe(0);
  });

  it('is unconstrained (+Infinity) for an empty configuration', () => {
    expect(majorityCommitted(ids(), ackedFrom({ 1: 5 }))).toBe(Infinity);
  });

  it('matches the brute-force definition', () => {
    fc.assert(
      fc.property(fc.array(fc.option(fc.nat(20), { nil: undefined }), { minLength: 1, maxLength: 9 }), (acks) => {
        const voters = ids(...acks.map((_, i) => i + 1));
        const acked = (id: number) => acks[id - 1];
        const q = Math.floor(voters.size / 2) + 1;
        let want = 0;
        for (let i = 0; i <= 20; i++) {
          if (acks.filter((a) => (a ?? 0) >= i).length >= q) want = i;
        }
        expect(majorityCommitted(voters, acked)).toBe(want);
      }),
    );
  });
});

describe('jointCommitted', () => {
  it('is the minimum of the two halves', () => {
    const acks = ackedFrom({ 1: 10, 2: 10, 3: 2, 4: 4, 5: 4 });
    // incoming {1,2,3} → 10; outgoing {3,4,5} → 4.
    expect(jointCommitted({ incoming: ids(1, 2, 3), outgoing: ids(3, 4, 5) }, acks)).toBe(4);
    expect(jointCommitted({ incoming: ids(3, 4, 5), outgoing: ids(1, 2, 3) }, acks)).toBe(4);
  });

  it('with an empty outgoing half equals the incoming majority', () => {
    expect(jointCommitted({ incoming: ids(1, 2, 3), outgoing: ids() }, ackedFrom({ 1: 7, 2: 5, 3: 1 }))).toBe(5);
  });

  it('is 0 when one half has no quorum of acks', () => {
    expect(jointCommitted({ incoming: ids(1, 2, 3), outgoing: ids(4, 5) }, ackedFrom({ 1: 7, 2: 7, 3: 7, 4: 7 }))).toBe(0);
  });

  it('is +Infinity when both halves are empty', () => {
    expect(jointCommitted({ incoming: ids(), outgoing: ids() }, ackedFrom({}))).toBe(Infinity);
  });
});

const votesOf = (m: Record<number, boolean>) => new Map(Object.entries(m).map(([k, v]) => [Number(k), v]));

describe('majorityVoteResult', () => {
  const { Won, Lost, Pending } = VoteResult;
  const cases: [number[], Record<number, boolean>, VoteResult][] = [
    [[], {}, Won],
    [[1], {}, Pending],
    [[1], { 1: true }, Won],
    [[1], { 1: false }, Lost],
    [[1, 2], { 1: true }, Pending],
    [[1, 2], { 1: true, 2: true }, Won],
    [[1, 2], { 1: true, 2: false }, Lost],
    [[1, 2], { 1: false }, Lost],
    [[1, 2, 3], { 1: true }, Pending],
    [[1, 2, 3], { 1: true, 2: true }, Won],
    [[1, 2, 3], { 1: true, 2: false }, Pending],
    [[1, 2, 3], { 1: false, 2: false }, Lost],
    [[1, 2, 3], { 1: true, 2: false, 3: false }, Lost],
    [[1, 2, 3, 4], { 1: true, 2: true }, Pending],
    [[1, 2, 3, 4], { 1: true, 2: true, 3: false, 4: false }, Lost],
    [[1, 2, 3, 4], { 1: true, 2: true, 3: true }, Won],
    [[1, 2, 3, 4, 5], { 1: true, 2: true, 3: false, 4: false }, Pending],
    [[1, 2, 3, 4, 5], { 1: false, 2: false, 3: false }, Lost],
    // Votes from non-voters do not count.
    [[1, 2, 3], { 1: true, 4: true, 5: true }, Pending],
  ];
  it.each(cases)('voters %j votes %j → %s', (voters, votes, want) => {
    expect(majorityVoteResult(ids(...voters), votesOf(votes))).toBe(want);
  });
});

describe('jointVoteResult', () => {
  const { Won, Lost, Pending } = VoteResult;
  // incoming {1,2,3}, outgoing {3,4,5}.
  const cases: [Record<number, boolean>, VoteResult][] = [
    [{}, Pending],
    [{ 1: true, 2: true }, Pending], // incoming won, outgoing pending
    [{ 1: true, 2: true, 4: true, 5: true }, Won],
    [{ 3: true, 4: true }, Pending], // outgoing won, incoming pending
    [{ 1: true, 3: true, 4: true }, Won], // 3 counts in both halves
    [{ 1: true, 2: true, 4: false, 5: false }, Lost], // incoming won, outgoing lost
    [{ 1: false, 2: false, 4: true, 5: true }, Lost], // incoming lost, outgoing won
    [{ 1: false, 2: false }, Lost], // incoming lost, outgoing pending
    [{ 1: false, 2: false, 3: false, 4: false, 5: false }, Lost],
  ];
  it.each(cases)('votes %j → %s', (votes, want) => {
    expect(jointVoteResult({ incoming: ids(1, 2, 3), outgoing: ids(3, 4, 5) }, votesOf(votes))).toBe(want);
  });

  it('with an empty outgoing half equals the incoming result', () => {
    const cases: Record<number, boolean>[] = [{}, { 1: true, 2: true }, { 1: false, 2: false }];
    for (const votes of cases) {
      expect(jointVoteResult({ incoming: ids(1, 2, 3), outgoing: ids() }, votesOf(votes))).toBe(
        majorityVoteResult(ids(1, 2, 3), votesOf(votes)),
      );
    }
  });

  it('an empty configuration wins', () => {
    expect(jointVoteResult({ incoming: ids(), outgoing: ids() }, votesOf({}))).toBe(Won);
  });
});
