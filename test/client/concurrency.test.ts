// Lock and election recipes (clientv3/concurrency semantics) with several clients.

import { describe, expect, it } from 'vitest';
import { ClientClosedError, ElectionNotLeaderError, SessionExpiredError } from '../../src/client/errors.ts';
import { cluster, settlesWithin, sleep, text, waitFor } from './helpers.ts';

describe('client lock', () => {
  it('excludes a second client until the first releases', async () => {
    const tc = await cluster();
    const a = tc.client(0);
    const b = tc.client(1);
    const lockA = a.lock('jobs');
    const lockB = b.lock('jobs');
    await lockA.acquire();
    const keyA = lockA.ownKey!;
    expect(keyA).toBe(`jobs/${(await lockA.session!.grant()).toString(16)}`);
    const acquiredB = lockB.acquire();
    expect(await settlesWithin(acquiredB, 300)).toBe(false);
    // Both contenders' keys exist; the holder's was created first. B's may land after the
    // 300 ms on a loaded machine (its lease grant and txn are two round trips).
    const keys = await waitFor('both contenders\' keys', async () => {
      const k = await a.getAll().prefix('jobs/').sort('create', 'asc').keys();
      return k.length === 2 && k;
    });
    expect(keys).toEqual([keyA, lockB.ownKey]);
    await lockA.release();
    await acquiredB;
    expect(await a.getAll().prefix('jobs/').keys()).toEqual([lockB.ownKey]);
    await lockB.release();
    expect(await a.getAll().prefix('jobs/').count()).toBe(0);
  });

  it('do() serializes critical sections of concurrent clients', async () => {
    const tc = await cluster();
    const clients = [tc.client(0), tc.client(1), tc.client(2)];
    let inside = 0;
    let maxInside = 0;
    const order: number[] = [];
    await Promise.all(
      clients.map((c, i) =>
        c.lock('counter').do(async () => {
          inside++;
          maxInside = Math.max(maxInside, inside);
          const n = Number((await c.get('count').string()) ?? '0');
          await sleep(20);
          await c.put('count').value(n + 1);
          order.push(i);
          inside--;
        }),
      ),
    );
    expect(maxInside).toBe(1);
    expect(order.sort()).toEqual([0, 1, 2]);
    expect(await clients[0].get('count').number()).toBe(3);
  });

  it('a waiter gets the lock when the holder\'s session lease expires', async () => {
    const tc = await cluster();
    const a = tc.client(0);
    const b = tc.client(1);
    const holder = a.lock('l', { ttlSeconds: 1 });
    await holder.acquire();
    holder.session!.release(); // the holder "crashes": no more keep-alives
    const started = Date.now();
    await b.lock('l').acquire();
    expect(Date.now() - started).toBeGreaterThan(500);
  });

  it('release() while waiting abandons the attempt and leaves no key behind', async () => {
    const tc = await cluster();
    const a = tc.client(0);
    const holder = a.lock('q');
    await holder.acquire();
    const waiter = tc.client(1).lock('q');
    const attempt = waiter.acquire().catch((e: unknown) => e);
    await waitFor('the waiter key', () => waiter.ownKey);
    await sleep(50);
    await waiter.release();
    expect(await attempt).toBeInstanceOf(ClientClosedError);
    expect(await a.getAll().prefix('q/').keys()).toEqual([holder.ownKey]);
  });

  it('a waiter whose session expires while waiting fails with SessionExpiredError', async () => {
    const tc = await cluster();
    const holder = tc.client(0).lock('e');
    await holder.acquire();
    const waiter = tc.client(1).lock('e', { ttlSeconds: 1 });
    const attempt = waiter.acquire().catch((e: unknown) => e);
    const session = await waitFor('the waiter session', () => waiter.session);
    await session.grant();
    session.release(); // no more keep-alives: the waiter's key expires with its lease
    await sleep(1800);
    expect(await tc.client(2).getAll().prefix('e/').count()).toBe(1);
    await holder.release();
    expect(await attempt).toBeInstanceOf(SessionExpiredError);
  });

  it('namespaced locks live under the namespace', async () => {
    const tc = await cluster();
    const c = tc.client();
    const lock = c.namespace('app/').lock('m');
    await lock.acquire();
    expect((await c.getAll().prefix('app/m/').keys()).length).toBe(1);
    await lock.release();
  });
});

describe('client election', () => {
  it('elects the first campaigner, and the next one when the leader resigns', async () => {
    const tc = await cluster();
    const a = tc.client(0).election('svc');
    const b = tc.client(1).election('svc');
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
    const kv = await a.leaderKv();
    expect(text(kv!.key)).toBe(`svc/${(await b.session!.grant()).toString(16)}`);
  });

  it('proclaim changes the value; only the leader may proclaim', async () => {
    const tc = await cluster();
    const a = tc.client(0).election('p');
    const b = tc.client(1).election('p');
    await a.campaign('v1');
    await a.proclaim('v2');
    expect(await b.leader()).toBe('v2');
    await expect(b.proclaim('mine')).rejects.toBeInstanceOf(ElectionNotLeaderError);
    await a.resign();
    expect(await b.leader()).toBeNull();
  });

  it('observe follows leaders and their proclaimed values in order', async () => {
    const tc = await cluster();
    const watcher = tc.client(2).election('o');
    const observer = watcher.observe();
    const values: string[] = [];
    const done = (async () => {
      for await (const v of observer) {
        values.push(v);
        if (values.length === 4) return;
      }
    })();
    const a = tc.client(0).election('o');
    const b = tc.client(1).election('o');
    await a.campaign('a1');
    await waitFor('a1 observed', () => values.length === 1);
    const bWins = b.campaign('b1');
    await sleep(50);
    await a.proclaim('a2');
    await waitFor('a2 observed', () => values.length === 2);
    await a.resign();
    await bWins;
    await waitFor('b1 observed', () => values.length === 3);
    await b.proclaim('b2');
    await done;
    expect(values).toEqual(['a1', 'a2', 'b1', 'b2']);
  });

  it('a leader whose session lease is revoked stops leading, and the next candidate wins', async () => {
    const tc = await cluster();
    const a = tc.client(0).election('s', { ttlSeconds: 3 });
    const b = tc.client(1).election('s');
    await a.campaign('a');
    const bWins = b.campaign('b');
    await sleep(50);
    const lost = a.session!.next('lost');
    await tc.client(2).connection.leaseRevoke({ ID: await a.session!.grant() });
    await bWins;
    expect(await b.leader()).toBe('b');
    await lost;
    expect(a.isLeader).toBe(false);
    await expect(a.proclaim('again')).rejects.toBeInstanceOf(ElectionNotLeaderError);
  });

  it('resign() during a campaign rejects it and removes the candidacy', async () => {
    const tc = await cluster();
    const a = tc.client(0).election('r');
    const b = tc.client(1).election('r');
    await a.campaign('a');
    const attempt = b.campaign('b').catch((e: unknown) => e);
    await sleep(100);
    await b.resign();
    expect(await attempt).toBeInstanceOf(ClientClosedError);
    expect(await tc.client(2).getAll().prefix('r/').count()).toBe(1);
    expect(await b.leader()).toBe('a');
  });
});
