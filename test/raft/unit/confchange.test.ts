import { describe, expect, it } from 'vitest';
import {
  applyChange,
  ConfChangeError,
  ConfChangeTransition,
  ConfChangeType,
  decodeConfChange,
  encodeConfChange,
  enterJoint,
  type ConfChange,
  type ConfChangeSingle,
} from '../../../src/raft/confchange.ts';
import { ProgressTracker } from '../../../src/raft/progress.ts';

const { AddNode, RemoveNode, AddLearnerNode } = ConfChangeType;
const { Auto, JointImplicit, JointExplicit } = ConfChangeTransition;

const add = (memberId: number): ConfChangeSingle => ({ type: AddNode, memberId });
const learner = (memberId: number): ConfChangeSingle => ({ type: AddLearnerNode, memberId });
const remove = (memberId: number): ConfChangeSingle => ({ type: RemoveNode, memberId });
const cc = (changes: ConfChangeSingle[], transition = Auto): ConfChange => ({ transition, changes, context: null });
const leave = (): ConfChange => cc([]);

/** A tracker holding `voters` and `learners`, built one simple change at a time. */
function tracker(voters: number[], learners: number[] = []): ProgressTracker {
  const trk = new ProgressTracker(256, 0);
  for (const id of voters) applyChange(trk, cc([add(id)]), 1);
  for (const id of learners) applyChange(trk, cc([learner(id)]), 1);
  return trk;
}

/** Everything observable about a tracker's membership. */
function membership(trk: ProgressTracker) {
  const progress = [...trk.progress.entries()].sort(([a], [b]) => a - b).map(([id, p]) => [id, p.isLearner]);
  return { ...trk.confState(), progress };
}

/** Every tracked member is in the configuration, and every member of it is tracked. */
function expectConsistent(trk: ProgressTracker) {
  const cs = trk.confState();
  const members = new Set([...cs.voters, ...cs.votersOutgoing, ...cs.learners, ...cs.learnersNext]);
  expect([...trk.progress.keys()].sort((a, b) => a - b)).toEqual([...members].sort((a, b) => a - b));
  for (const [id, p] of trk.progress) expect(p.isLearner).toBe(!trk.isVoter(id));
}

function expectRefused(trk: ProgressTracker, change: ConfChange, message: RegExp) {
  const before = membership(trk);
  expect(() => applyChange(trk, change, 10)).toThrow(ConfChangeError);
  expect(() => applyChange(trk, change, 10)).toThrow(message);
  expect(membership(trk)).toEqual(before);
}

describe('simple changes', () => {
  it('adds a voter with progress starting at nextIndex', () => {
    const trk = tracker([1, 2]);
    applyChange(trk, cc([add(3)]), 7);
    expect(trk.confState()).toMatchObject({ voters: [1, 2, 3], votersOutgoing: [], learners: [], autoLeave: false });
    const p = trk.progress.get(3)!;
    expect(p.next).toBe(7);
    expect(p.match).toBe(0);
    expect(p.isLearner).toBe(false);
    expect(p.recentActive).toBe(true);
    expectConsistent(trk);
  });

  it('progress of a new member starts at index 1 or later', () => {
    const trk = tracker([1]);
    applyChange(trk, cc([add(2)]), 0);
    expect(trk.progress.get(2)!.next).toBe(1);
  });

  it('adds a learner', () => {
    const trk = tracker([1, 2]);
    applyChange(trk, cc([learner(3)]), 5);
    expect(trk.confState()).toMatchObject({ voters: [1, 2], learners: [3] });
    expect(trk.progress.get(3)!.isLearner).toBe(true);
    expect(trk.isVoter(3)).toBe(false);
    expectConsistent(trk);
  });

  it('promotes a learner to voter keeping its progress', () => {
    const trk = tracker([1, 2], [3]);
    const p = trk.progress.get(3)!;
    p.maybeUpdate(4);
    applyChange(trk, cc([add(3)]), 9);
    expect(trk.confState()).toMatchObject({ voters: [1, 2, 3], learners: [] });
    expect(trk.progress.get(3)).toBe(p);
    expect(p.match).toBe(4);
    expect(p.isLearner).toBe(false);
  });

  it('demotes a voter to learner directly outside a joint configuration', () => {
    const trk = tracker([1, 2, 3]);
    applyChange(trk, cc([learner(3)]), 9);
    expect(trk.confState()).toMatchObject({ voters: [1, 2], learners: [3], learnersNext: [] });
    expect(trk.progress.get(3)!.isLearner).toBe(true);
    expectConsistent(trk);
  });

  it('removes a voter and a learner', () => {
    const trk = tracker([1, 2, 3], [4]);
    applyChange(trk, cc([remove(3)]), 9);
    applyChange(trk, cc([remove(4)]), 9);
    expect(trk.confState()).toMatchObject({ voters: [1, 2], learners: [] });
    expect(trk.progress.has(3)).toBe(false);
    expect(trk.progress.has(4)).toBe(false);
    expectConsistent(trk);
  });

  it('removing a non-member changes nothing', () => {
    const trk = tracker([1, 2]);
    const before = membership(trk);
    applyChange(trk, cc([remove(9)]), 9);
    expect(membership(trk)).toEqual(before);
  });

  it('adding an existing voter changes nothing', () => {
    const trk = tracker([1, 2]);
    const before = membership(trk);
    applyChange(trk, cc([add(2)]), 9);
    expect(membership(trk)).toEqual(before);
  });

  it('refuses to remove the last voter', () => {
    expectRefused(tracker([1]), cc([remove(1)]), /removes all voters/);
    expectRefused(tracker([1], [2]), cc([learner(1)]), /removes all voters/);
  });

  it('refuses invalid member ids', () => {
    const trk = tracker([1, 2]);
    for (const id of [0, -1, 1.5, NaN, Number.MAX_SAFE_INTEGER + 1]) {
      expectRefused(trk, cc([add(id)]), /invalid member id/);
    }
    expectRefused(trk, cc([add(3), learner(0)]), /invalid member id/);
  });

  it('refuses an unknown change type', () => {
    expectRefused(tracker([1, 2]), cc([{ type: 9 as ConfChangeType, memberId: 3 }]), /unknown change type/);
  });
});

describe('changes of more than one voter', () => {
  it('with transition Auto enter a joint configuration that leaves automatically', () => {
    const trk = tracker([1, 2, 3]);
    applyChange(trk, cc([add(4), remove(1)]), 9);
    expect(trk.confState()).toEqual({ voters: [2, 3, 4], votersOutgoing: [1, 2, 3], learners: [], learnersNext: [], autoLeave: true });
    expect(trk.isJoint()).toBe(true);
    // 1 still votes in the outgoing half, so it keeps its progress until the joint config is left.
    expect(trk.progress.get(1)!.isLearner).toBe(false);
    expectConsistent(trk);
  });

  it('cannot be applied while joint, except by leaving', () => {
    const trk = tracker([1, 2, 3]);
    applyChange(trk, cc([add(4), add(5)]), 9);
    expectRefused(trk, cc([add(6)]), /configuration is joint/);
    expectRefused(trk, cc([add(6), add(7)], JointExplicit), /configuration is joint/);
  });

  it('several learner changes alone also go through a joint configuration', () => {
    const trk = tracker([1, 2]);
    expect(enterJoint(cc([learner(3), learner(4)]))).toEqual({ joint: true, autoLeave: true });
    applyChange(trk, cc([learner(3), learner(4)]), 9);
    expect(trk.confState()).toMatchObject({ voters: [1, 2], votersOutgoing: [1, 2], learners: [3, 4], autoLeave: true });
  });
});

describe('joint configurations', () => {
  it('enterJoint classifies transitions', () => {
    expect(enterJoint(cc([add(1)], Auto))).toEqual({ joint: false, autoLeave: false });
    expect(enterJoint(cc([add(1), add(2)], Auto))).toEqual({ joint: true, autoLeave: true });
    expect(enterJoint(cc([add(1)], JointImplicit))).toEqual({ joint: true, autoLeave: true });
    expect(enterJoint(cc([add(1)], JointExplicit))).toEqual({ joint: true, autoLeave: false });
    expect(enterJoint(leave())).toEqual({ joint: false, autoLeave: false });
  });

  it('explicit: enter, then leave drops outgoing-only voters', () => {
    const trk = tracker([1, 2, 3]);
    applyChange(trk, cc([add(4), remove(3)], JointExplicit), 9);
    expect(trk.confState()).toEqual({ voters: [1, 2, 4], votersOutgoing: [1, 2, 3], learners: [], learnersNext: [], autoLeave: false });
    expect(trk.progress.has(3)).toBe(true);

    applyChange(trk, leave(), 9);
    expect(trk.confState()).toEqual({ voters: [1, 2, 4], votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false });
    expect(trk.progress.has(3)).toBe(false);
    expect(trk.isJoint()).toBe(false);
    expectConsistent(trk);
  });

  it('implicit: a single change still goes joint, with autoLeave', () => {
    const trk = tracker([1, 2, 3]);
    applyChange(trk, cc([add(4)], JointImplicit), 9);
    expect(trk.confState()).toMatchObject({ voters: [1, 2, 3, 4], votersOutgoing: [1, 2, 3], autoLeave: true });
    applyChange(trk, leave(), 9);
    expect(trk.confState()).toMatchObject({ voters: [1, 2, 3, 4], votersOutgoing: [], autoLeave: false });
  });

  it('demoting a voter inside a joint config makes it a learner only when leaving', () => {
    const trk = tracker([1, 2, 3]);
    applyChange(trk, cc([learner(3), add(4)], JointExplicit), 9);
    expect(trk.confState()).toEqual({ voters: [1, 2, 4], votersOutgoing: [1, 2, 3], learners: [], learnersNext: [3], autoLeave: false });
    // Still a voter through the outgoing half.
    expect(trk.isVoter(3)).toBe(true);
    expect(trk.progress.get(3)!.isLearner).toBe(false);
    expectConsistent(trk);

    applyChange(trk, leave(), 9);
    expect(trk.confState()).toEqual({ voters: [1, 2, 4], votersOutgoing: [], learners: [3], learnersNext: [], autoLeave: false });
    expect(trk.isVoter(3)).toBe(false);
    expect(trk.progress.get(3)!.isLearner).toBe(true);
    expectConsistent(trk);
  });

  it('a pending learner re-added as voter in the same change is a voter again', () => {
    const trk = tracker([1, 2, 3]);
    applyChange(trk, cc([learner(3), add(3)], JointExplicit), 9);
    expect(trk.confState()).toMatchObject({ voters: [1, 2, 3], votersOutgoing: [1, 2, 3], learners: [], learnersNext: [] });
  });

  it('a pending learner removed in the same change is gone after leaving', () => {
    const trk = tracker([1, 2, 3]);
    applyChange(trk, cc([learner(3), remove(3)], JointExplicit), 9);
    expect(trk.confState()).toMatchObject({ voters: [1, 2], votersOutgoing: [1, 2, 3], learners: [], learnersNext: [] });
    applyChange(trk, leave(), 9);
    expect(trk.progress.has(3)).toBe(false);
    expectConsistent(trk);
  });

  it('a learner promoted inside a joint config is a voter of the incoming half at once', () => {
    const trk = tracker([1, 2], [3]);
    applyChange(trk, cc([add(3), remove(2)]), 9);
    expect(trk.confState()).toMatchObject({ voters: [1, 3], votersOutgoing: [1, 2], learners: [] });
    expect(trk.progress.get(3)!.isLearner).toBe(false);
  });

  it('a member added and removed in one joint change is not tracked', () => {
    const trk = tracker([1, 2, 3]);
    applyChange(trk, cc([add(4), remove(4)], JointExplicit), 9);
    applyChange(trk, leave(), 9);
    applyChange(trk, cc([learner(5), remove(5)], JointExplicit), 9);
    // Nothing is left to replicate to 4 or 5.
    expect(trk.progress.has(4)).toBe(false);
    expect(trk.progress.has(5)).toBe(false);
    expectConsistent(trk);
  });

  it('refuses a joint configuration with no incoming voters', () => {
    expectRefused(tracker([1, 2]), cc([remove(1), remove(2)], JointExplicit), /removes all voters/);
  });

  it('refuses to leave a configuration that is not joint', () => {
    expectRefused(tracker([1, 2]), leave(), /not joint/);
  });

  it('refuses an unknown transition without touching the tracker', () => {
    expectRefused(tracker([1, 2]), { transition: 7 as ConfChangeTransition, changes: [add(3)], context: null }, /transition/);
  });
});

describe('encode/decode', () => {
  const roundtrip = (c: ConfChange) => decodeConfChange(encodeConfChange(c));

  it('roundtrips changes, transition and context bytes', () => {
    const c: ConfChange = {
      transition: JointExplicit,
      changes: [add(4), learner(5), remove(1)],
      context: new Uint8Array([0, 1, 127, 128, 255]),
    };
    const back = roundtrip(c);
    expect(back).toEqual(c);
    expect(back.context).toBeInstanceOf(Uint8Array);
  });

  it('roundtrips a null and an empty context', () => {
    expect(roundtrip(cc([add(2)])).context).toBeNull();
    const empty = roundtrip({ ...cc([add(2)]), context: new Uint8Array(0) }).context;
    expect(empty).toBeInstanceOf(Uint8Array);
    expect(empty!.length).toBe(0);
  });

  it('roundtrips a leave', () => {
    expect(roundtrip(leave())).toEqual(leave());
  });

  it('refuses malformed data', () => {
    const bytes = (s: string) => new TextEncoder().encode(s);
    expect(() => decodeConfChange(bytes('null'))).toThrow(ConfChangeError);
    expect(() => decodeConfChange(bytes('{"t":"x","c":[]}'))).toThrow(ConfChangeError);
    expect(() => decodeConfChange(bytes('{"t":0}'))).toThrow(ConfChangeError);
  });
});
