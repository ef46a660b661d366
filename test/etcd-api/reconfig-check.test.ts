// etcd's strict reconfiguration check, rule by rule (the three-process cases are in
// test/cluster/acceptance.test.ts).

import { describe, expect, it } from 'vitest';
import { checkAdd, checkRemove, healthIntervalMs, type ReconfigView } from '../../adapters/etcd-api/reconfig-check.ts';

const now = 1_000_000;
const longAgo = now - healthIntervalMs;

/** Member 1 serves the request; `down` are not connected, `fresh` connected for under 5 s, `unstarted` never published. */
function view(voters: number[], o: { learners?: number[]; down?: number[]; fresh?: number[]; unstarted?: number[] } = {}): ReconfigView {
  return {
    self: 1,
    voters,
    learners: o.learners ?? [],
    isStarted: (id) => !(o.unstarted ?? []).includes(id),
    activeSince: (id) => ((o.down ?? []).includes(id) ? null : (o.fresh ?? []).includes(id) ? now - 1000 : longAgo),
    now,
  };
}

const unhealthy = 'etcdserver: unhealthy cluster';
const notStarted = 'etcdserver: re-configuration failed due to not enough started members';

describe('strict reconfiguration check', () => {
  it('adds to a healthy cluster, a learner too', () => {
    expect(() => checkAdd(view([1, 2, 3]), false)).not.toThrow();
    expect(() => checkAdd(view([1, 2, 3]), true)).not.toThrow();
  });

  it('refuses any add unless every voter has been connected for the health interval', () => {
    expect(() => checkAdd(view([1, 2, 3], { down: [3] }), false)).toThrow(unhealthy);
    expect(() => checkAdd(view([1, 2, 3], { down: [3] }), true)).toThrow(unhealthy);
    expect(() => checkAdd(view([1, 2, 3], { fresh: [2] }), false)).toThrow(unhealthy);
  });

  it('refuses a voter when started members would be fewer than a quorum, but lets one member grow to two', () => {
    expect(() => checkAdd(view([1, 2, 3, 4, 5], { unstarted: [4, 5] }), false)).toThrow(notStarted);
    expect(() => checkAdd(view([1, 2, 3, 4, 5], { unstarted: [4, 5] }), false)).toThrow(expect.objectContaining({ code: 9 }));
    // Three started of five is enough; then the unstarted one is not connected.
    expect(() => checkAdd(view([1, 2, 3, 4], { unstarted: [4], down: [4] }), false)).toThrow(unhealthy);
    expect(() => checkAdd(view([1]), false)).not.toThrow();
  });

  it('removes a member that is down, or a learner, without asking more', () => {
    expect(() => checkRemove(view([1, 2, 3], { down: [3] }), 3)).not.toThrow();
    expect(() => checkRemove(view([1, 2], { learners: [9], down: [2] }), 9)).not.toThrow();
  });

  it('refuses removing a connected voter when the connected rest would not be a quorum', () => {
    const e = (() => {
      try {
        checkRemove(view([1, 2, 3], { down: [3] }), 2);
      } catch (err) {
        return err as { code: number; message: string };
      }
    })();
    expect(e).toMatchObject({ code: 14, message: unhealthy });
    expect(() => checkRemove(view([1, 2, 3]), 2)).not.toThrow();
    expect(() => checkRemove(view([1, 2]), 2)).not.toThrow();
  });

  it('refuses removing a voter when the started members left would be fewer than a quorum of the rest', () => {
    expect(() => checkRemove(view([1, 2, 3], { unstarted: [3] }), 2)).toThrow(notStarted);
    expect(() => checkRemove(view([1, 2, 3, 4], { unstarted: [4] }), 2)).not.toThrow();
  });
});
