// Lock and election recipes over gRPC, with separate clients (separate connections).

import { describe, expect, it } from 'vitest';
import { grpcMember, settlesWithin, sleep } from './helpers.ts';

describe('client over gRPC: lock and election', () => {
  it('a lock excludes a second client until the first releases; do() serializes critical sections', async () => {
    const m = await grpcMember();
    const [a, b] = [m.client(), m.client()];
    const lockA = a.lock('jobs');
    const lockB = b.lock('jobs');
    await lockA.acquire();
    const acquiredB = lockB.acquire();
    expect(await settlesWithin(acquiredB, 300)).toBe(false);
    expect(await a.getAll().prefix('jobs/').sort('create', 'asc').keys()).toEqual([lockA.ownKey, lockB.ownKey]);
    await lockA.release();
    await acquiredB;
    expect(await a.getAll().prefix('jobs/').keys()).toEqual([lockB.ownKey]);
    await lockB.release();

    let inside = 0;
    let maxInside = 0;
    await Promise.all(
      [a, b, m.client()].map((c) =>
        c.lock('counter').do(async () => {
          maxInside = Math.max(maxInside, ++inside);
          const n = Number((await c.get('count').string()) ?? '0');
          await sleep(20);
          await c.put('count').value(n + 1);
          inside--;
        }),
      ),
    );
    expect(maxInside).toBe(1);
    expect(await a.get('count').number()).toBe(3);
  });

  it('elects the first campaigner, and the next one when the leader resigns', async () => {
    const m = await grpcMember();
    const a = m.client().election('svc');
    const b = m.client().election('svc');
    await a.campaign('alpha');
    expect(a.isLeader).toBe(true);
    expect(await b.leader()).toBe('alpha');
    const bWins = b.campaign('beta');
    expect(await settlesWithin(bWins, 300)).toBe(false);
    await a.resign();
    expect(a.isLeader).toBe(false);
    await bWins;
    expect(b.isLeader).toBe(true);
    expect(await a.leader()).toBe('beta');
    await b.resign();
    expect(await a.leader()).toBeNull();
  });
});
