// Leases through the Client: grant, keep-alive, TTL, revoke, and loss.

import { describe, expect, it } from 'vitest';
import type { LeaseKeepAliveResponse } from '../../src/client/connection.ts';
import { EtcdLeaseNotFoundError, LeaseLostError, type EtcdError } from '../../src/client/errors.ts';
import { cluster, sleep } from './helpers.ts';

describe('client lease', () => {
  it('keeps a lease alive past its TTL, then revoke deletes its keys', async () => {
    const c = (await cluster()).client();
    const lease = c.lease(1);
    const id = await lease.grant();
    expect(id).toBeGreaterThan(0n);
    expect(await c.leases()).toContain(id);
    expect(await lease.idHex()).toBe(id.toString(16));
    const renewals: LeaseKeepAliveResponse[] = [];
    lease.on('keepaliveSucceeded', (r) => renewals.push(r));
    await lease.put('session/a').value('1');
    await sleep(2500);
    expect(await c.get('session/a').string()).toBe('1');
    // Every TTL/3: about 7 renewals in 2.5 s; at least 4 however slow the machine.
    expect(renewals.length).toBeGreaterThanOrEqual(4);
    expect(renewals.every((r) => r.ID === id && r.TTL === 1)).toBe(true);
    expect(await lease.ttl()).toBeGreaterThanOrEqual(0);
    await lease.revoke();
    expect(lease.isRevoked).toBe(true);
    expect(await c.get('session/a').exists()).toBe(false);
    expect(await lease.ttl()).toBe(-1);
    expect(await c.leases()).not.toContain(id);
    const lastCount = renewals.length;
    await sleep(500);
    expect(renewals.length).toBe(lastCount);
  });

  it('without autoKeepAlive the lease expires; keepaliveOnce renews it by hand', async () => {
    const c = (await cluster()).client();
    const manual = c.lease(1, { autoKeepAlive: false });
    await manual.put('m').value('x');
    const res = await manual.keepaliveOnce();
    expect(res.TTL).toBe(1);
    expect((await manual.timeToLive(true)).keys.map((k) => new TextDecoder().decode(k))).toEqual(['m']);
    const lost = manual.next('lost');
    await expect(
      (async () => {
        for (;;) {
          if (!(await c.get('m').exists())) return 'expired';
          await sleep(50);
        }
      })(),
    ).resolves.toBe('expired');
    // The next keep-alive finds the lease gone: it rejects and the lease is lost.
    await expect(manual.keepaliveOnce()).rejects.toBeInstanceOf(EtcdLeaseNotFoundError);
    const [err] = await lost;
    expect(err).toBeInstanceOf(LeaseLostError);
    expect(manual.isLost).toBe(true);
  });

  it('emits lost when another client revokes it', async () => {
    const tc = await cluster();
    const a = tc.client(0);
    const b = tc.client(1);
    const lease = a.lease(3);
    const id = await lease.grant();
    const lost = lease.next('lost');
    await b.connection.leaseRevoke({ ID: id });
    const [err] = await lost;
    expect(err.leaseId).toBe(id);
    expect(err.cause).toBeInstanceOf(EtcdLeaseNotFoundError);
  });

  it('keep-alives follow a new leader when the old one stops', async () => {
    const tc = await cluster();
    const leader = await tc.leader();
    const c = tc.client(tc.members.findIndex((m) => m !== leader));
    const lease = c.lease(2);
    let lost = false;
    lease.on('lost', () => (lost = true));
    await lease.put('survives').value('1');
    await leader.stop();
    await sleep(3000); // longer than the TTL: only renewals through the new leader keep it
    expect(lost).toBe(false);
    expect(await c.get('survives').string()).toBe('1');
  });

  it('emits keepaliveFailed, then lost, when no keep-alive can succeed within the TTL', async () => {
    const tc = await cluster();
    const leader = await tc.leader();
    const survivor = tc.members.findIndex((m) => m !== leader);
    const c = tc.client(survivor);
    const lease = c.lease(1);
    await lease.grant();
    const failures: EtcdError[] = [];
    lease.on('keepaliveFailed', (e) => failures.push(e));
    const lost = lease.next('lost');
    const started = Date.now();
    // Two of three members gone: no leader can be elected, so keep-alives fail.
    for (const m of tc.members) if (m !== tc.members[survivor]) await m.stop();
    const [err] = await lost;
    const elapsedMs = Date.now() - started;
    expect(err).toBeInstanceOf(LeaseLostError);
    expect(failures.length).toBeGreaterThan(0);
    expect(failures[0].message).toBe('etcdserver: no leader');
    expect(elapsedMs).toBeLessThan(3000); // TTL 1 s plus one keep-alive interval, with slack for slow machines
  });

  it('emits lost when the client is partitioned from the cluster', async () => {
    const tc = await cluster();
    const leader = await tc.leader();
    const c = tc.client(tc.members.indexOf(leader));
    const lease = c.lease(1);
    await lease.grant();
    const lost = lease.next('lost');
    // Isolate every member: check-quorum makes the leader step down, and nobody can win an election.
    for (const t of tc.transports) for (const m of tc.members) if (m.id !== t.id) t.faults.block(m.id);
    const [err] = await lost;
    expect(err).toBeInstanceOf(LeaseLostError);
  });
});
