// The torture run's own judgements, on hand-made inputs: the nemesis schedule covers every
// fault kind in its first round, and the lease rule flags a key read after its revoke.

import { describe, expect, it } from 'vitest';
import { prng } from '../raft/prng.ts';
import { faultKinds, schedule } from './nemesis.ts';
import { checkLeaseRecords, type LeaseRecord } from './workload.ts';

describe('the nemesis schedule', () => {
  it('injects every kind once in its first round, in an order the seed decides', () => {
    const firstRound = (seed: number) => {
      const it = schedule(prng(seed));
      return faultKinds.map(() => it.next().value);
    };
    expect([...firstRound(1)].sort()).toEqual([...faultKinds].sort());
    expect(firstRound(1)).toEqual(firstRound(1));
    expect(firstRound(1)).not.toEqual(firstRound(2));
  });
});

describe('the lease rule', () => {
  const base: LeaseRecord = { client: 1, key: 'lease/1-1', lease: '7', grant: 'ok', put: 'ok', revoke: 'ok' };

  it('flags a key still readable after its revoke was acknowledged', () => {
    expect(checkLeaseRecords([{ ...base, afterRevoke: 'leased' }])).toEqual(['lease 7: key lease/1-1 still read "leased" after its revoke was acknowledged']);
  });

  it('accepts a vanished key, and says nothing when the revoke or the read did not complete', () => {
    expect(checkLeaseRecords([{ ...base, afterRevoke: null }, { ...base, revoke: 'unknown' }, { ...base }])).toEqual([]);
  });
});
