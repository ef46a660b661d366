// The torture run's own judgements, on hand-made inputs: the nemesis schedule covers every
// fault kind in its first round, the lease rule flags a key read after its revoke, and the
// TTL rule flags a lease key gone before its TTL unless a clock fault overlapped its life.

import { describe, expect, it } from 'vitest';
import { prng } from '../raft/prng.ts';
import { faultKinds, schedule } from './nemesis.ts';
import { checkLeaseExpiry, checkLeaseRecords, type ExpiryRecord, type LeaseRecord } from './workload.ts';

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

describe('the lease TTL rule', () => {
  const lease = (grantCall: number, goneRet: number): ExpiryRecord => ({
    lease: 'a',
    key: 'lease/x0-1',
    grantCall,
    ttlSeconds: 3,
    putRet: grantCall + 10,
    reads: [
      { call: grantCall + 500, ret: grantCall + 510, present: true },
      { call: goneRet - 10, ret: goneRet, present: false },
    ],
  });

  it('accepts a key gone at or after its TTL, and measures how late', () => {
    expect(checkLeaseExpiry([lease(1000, 4000), lease(1000, 4250)], [], 0)).toEqual({ anomalies: [], checked: 2, excused: 0, earliestMs: 0 });
  });

  it('flags a key gone before its TTL had passed since the grant was called', () => {
    const r = checkLeaseExpiry([lease(1000, 3900)], [], 0);
    expect(r.anomalies).toEqual(['lease a: key lease/x0-1 was gone 2900 ms after its grant was called (read at 3890–3900 ms), before its TTL of 3 s']);
    expect(r.earliestMs).toBe(-100);
  });

  it('excuses a lease whose life overlapped a clock fault, and skips one never seen gone', () => {
    const neverGone: ExpiryRecord = { ...lease(1000, 4000), reads: [{ call: 1500, ret: 1510, present: true }] };
    expect(checkLeaseExpiry([lease(1000, 3900), neverGone], [[3000, 5000]], 0)).toEqual({ anomalies: [], checked: 0, excused: 1, earliestMs: null });
  });
});
