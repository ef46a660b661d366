import { describe, expect, it } from 'vitest';
import { GrpcCode, type LeaseGrantResponse } from '../../src/mvcc/index.ts';
import { Harness, b, str } from './helpers.ts';

describe('lessor', () => {
  it('grants with an id, raises a small TTL to the minimum, refuses an existing id', () => {
    const h = new Harness();
    const g = h.ok({ kind: 'leaseGrant', request: { ID: 100n, TTL: 1 } });
    expect(g.ID).toBe(100n);
    expect(g.TTL).toBe(2);
    expect(g.header.revision).toBe(1);
    const e = h.err({ kind: 'leaseGrant', request: { ID: 100n, TTL: 10 } });
    expect(e.message).toBe('etcdserver: lease already exists');
    expect(e.code).toBe(GrpcCode.FailedPrecondition);
  });

  it('the minimum TTL is configurable', () => {
    const h = new Harness({ lessor: { minTtlSeconds: 5 } });
    expect(h.ok({ kind: 'leaseGrant', request: { ID: 1n, TTL: 3 } }).TTL).toBe(5);
  });

  it('id 0 assigns distinct ids deterministically', () => {
    const a = new Harness();
    const b2 = new Harness();
    const ids = (h: Harness) =>
      [1, 2, 3].map(() => (h.ok({ kind: 'leaseGrant', request: { ID: 0n, TTL: 10 } }) as LeaseGrantResponse).ID);
    a.ok({ kind: 'leaseGrant', request: { ID: 2n, TTL: 10 } });
    b2.ok({ kind: 'leaseGrant', request: { ID: 2n, TTL: 10 } });
    const first = ids(a);
    expect(new Set(first).size).toBe(3);
    expect(first).not.toContain(2n);
    expect(ids(b2)).toEqual(first);
  });

  it('refuses a TTL above 9000000000 s', () => {
    const h = new Harness();
    const e = h.err({ kind: 'leaseGrant', request: { ID: 1n, TTL: 9_000_000_001 } });
    expect(e.message).toBe('etcdserver: too large lease TTL');
    expect(e.code).toBe(GrpcCode.OutOfRange);
    h.ok({ kind: 'leaseGrant', request: { ID: 1n, TTL: 9_000_000_000 } });
  });

  it('revoke deletes every attached key in one revision', () => {
    const h = new Harness();
    h.ok({ kind: 'leaseGrant', request: { ID: 9n, TTL: 60 } });
    h.put('a', '1', { lease: 9n }); // 2
    h.put('b', '1', { lease: 9n }); // 3
    h.put('c', '1'); // 4
    h.put('b', '2', { lease: 9n }); // 5
    const ttl = h.sm.leaseTimeToLive(9n, true, 0);
    expect(ttl.keys.map(str)).toEqual(['a', 'b']);
    const r = h.ok({ kind: 'leaseRevoke', request: { ID: 9n } });
    expect(r.header.revision).toBe(6);
    expect(h.get('a').kvs).toEqual([]);
    expect(h.get('b').kvs).toEqual([]);
    expect(h.get('c').kvs.length).toBe(1);
    expect(h.get('b', 5).kvs.length).toBe(1);
    expect(h.sm.leaseTimeToLive(9n, true, 0).TTL).toBe(-1);
    expect(h.err({ kind: 'leaseRevoke', request: { ID: 9n } }).message).toBe('etcdserver: requested lease not found');
  });

  it('revoking a lease without keys does not bump the revision', () => {
    const h = new Harness();
    h.ok({ kind: 'leaseGrant', request: { ID: 1n, TTL: 60 } });
    expect(h.ok({ kind: 'leaseRevoke', request: { ID: 1n } }).header.revision).toBe(1);
  });

  it('a key moved to another lease or deleted is detached from the old one', () => {
    const h = new Harness();
    h.ok({ kind: 'leaseGrant', request: { ID: 1n, TTL: 60 } });
    h.ok({ kind: 'leaseGrant', request: { ID: 2n, TTL: 60 } });
    h.put('a', '1', { lease: 1n });
    h.put('b', '1', { lease: 1n });
    h.put('a', '2', { lease: 2n });
    h.del('b');
    expect(h.sm.leaseTimeToLive(1n, true, 0).keys).toEqual([]);
    expect(h.sm.leaseTimeToLive(2n, true, 0).keys.map(str)).toEqual(['a']);
    h.ok({ kind: 'leaseRevoke', request: { ID: 1n } });
    expect(h.get('a').kvs.length).toBe(1);
  });

  it('leases lists every lease', () => {
    const h = new Harness();
    for (const id of [5n, 3n, 8n]) h.ok({ kind: 'leaseGrant', request: { ID: id, TTL: 60 } });
    expect(h.sm.leaseLeases().leases.map((l) => l.ID)).toEqual([3n, 5n, 8n]);
  });

  it('only a promoted lessor expires leases; promote extends every lease', () => {
    const h = new Harness();
    h.ok({ kind: 'leaseGrant', request: { ID: 1n, TTL: 10 } });
    expect(h.sm.lessor.expired(1_000_000, 10)).toEqual([]);
    expect(h.sm.leaseTimeToLive(1n, false, 0).TTL).toBe(10);
    h.sm.lessor.promote(1000, 2000);
    expect(h.sm.lessor.expired(12_999, 10)).toEqual([]);
    expect(h.sm.lessor.expired(13_000, 10)).toEqual([1n]);
    expect(h.sm.leaseTimeToLive(1n, false, 4000).TTL).toBe(9);
    h.sm.lessor.demote();
    expect(h.sm.lessor.expired(100_000, 10)).toEqual([]);
  });

  it('keep-alive restarts the TTL on the leader; refused elsewhere and for unknown leases', () => {
    const h = new Harness();
    h.ok({ kind: 'leaseGrant', request: { ID: 1n, TTL: 10 } });
    expect(() => h.sm.lessor.renew(1n, 0)).toThrow('not a primary lessor');
    h.sm.lessor.promote(0, 0);
    expect(h.sm.lessor.renew(1n, 8000).ttlSeconds).toBe(10);
    expect(h.sm.lessor.expired(17_999, 10)).toEqual([]);
    expect(h.sm.lessor.expired(18_000, 10)).toEqual([1n]);
    expect(() => h.sm.lessor.renew(2n, 0)).toThrow('etcdserver: requested lease not found');
  });

  it('leases granted on the leader expire by TTL; the expired query is bounded and oldest first', () => {
    const h = new Harness();
    h.sm.lessor.promote(0, 0);
    h.nowMs = 0;
    h.ok({ kind: 'leaseGrant', request: { ID: 2n, TTL: 5 } });
    h.nowMs = 1000;
    h.ok({ kind: 'leaseGrant', request: { ID: 1n, TTL: 5 } });
    expect(h.sm.lessor.expired(10_000, 1)).toEqual([2n]);
    expect(h.sm.lessor.expired(10_000, 10)).toEqual([2n, 1n]);
  });

  it('a checkpoint sets the remaining TTL used when a new leader is promoted', () => {
    const h = new Harness();
    h.ok({ kind: 'leaseGrant', request: { ID: 1n, TTL: 100 } });
    h.ok({ kind: 'leaseCheckpoint', request: { checkpoints: [{ ID: 1n, remainingTTL: 30 }, { ID: 77n, remainingTTL: 5 }] } });
    h.sm.lessor.promote(0, 0);
    expect(h.sm.lessor.expired(29_999, 10)).toEqual([]);
    expect(h.sm.lessor.expired(30_000, 10)).toEqual([1n]);
    const renewed = h.sm.lessor.renew(1n, 1000);
    expect(renewed.checkpoint).toEqual({ ID: 1n, remainingTTL: 0 });
  });

  it('the leader reports checkpoints of leases that have run down', () => {
    const h = new Harness();
    h.sm.lessor.promote(0, 0);
    h.ok({ kind: 'leaseGrant', request: { ID: 1n, TTL: 100 } });
    expect(h.sm.lessor.checkpoints(40_500)).toEqual([{ ID: 1n, remainingTTL: 60 }]);
  });

  it('a put attaching an existing lease in a txn succeeds', () => {
    const h = new Harness();
    h.ok({ kind: 'leaseGrant', request: { ID: 3n, TTL: 60 } });
    h.ok({ kind: 'txn', request: { success: [{ requestPut: { key: b('t'), value: b('v'), lease: 3n } }] } });
    expect(h.sm.leaseTimeToLive(3n, true, 0).keys.map(str)).toEqual(['t']);
  });
});
