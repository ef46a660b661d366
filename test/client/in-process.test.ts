// The in-process connection: member failover, leader-routed keep-alives, etcd error mapping.

import { describe, expect, it } from 'vitest';
import {
  EtcdError,
  EtcdLeaseNotFoundError,
  EtcdNoLeaderError,
  EtcdRequestTimeoutError,
  EtcdServerStoppedError,
  EtcdUnavailableError,
  errorFromStatus,
} from '../../src/client/errors.ts';
import { toEtcdError } from '../../src/client/local-connection.ts';
import { Errors, MvccError } from '../../src/mvcc/errors.ts';
import { MemberError } from '../../src/server/member.ts';
import { cluster, sleep } from './helpers.ts';

describe('in-process connection', () => {
  it('moves to the next member when its member stops, and fails once none runs', async () => {
    const tc = await cluster();
    const conn = tc.connection(0);
    await conn.put({ key: new TextEncoder().encode('f'), value: new TextEncoder().encode('1') });
    expect(conn.member).toBe(tc.members[0]);
    await tc.members[0].stop();
    const res = await conn.range({ key: new TextEncoder().encode('f') });
    expect(res.kvs).toHaveLength(1);
    expect(conn.member).toBe(tc.members[1]);
    await tc.members[1].stop();
    await tc.members[2].stop();
    await expect(conn.range({ key: new TextEncoder().encode('f') })).rejects.toBeInstanceOf(EtcdUnavailableError);
  });

  it('sends keep-alives to the leader whichever member it talks to; an unknown lease gets TTL 0', async () => {
    const tc = await cluster();
    const leader = await tc.leader();
    const follower = tc.members.findIndex((m) => m !== leader);
    const conn = tc.connection(follower);
    const { ID } = await conn.leaseGrant({ TTL: 5, ID: 0n });
    // The follower itself refuses: only the leader's clock decides expiry.
    await expect(tc.members[follower].leaseKeepAlive(ID)).rejects.toThrow('etcdserver: not leader');
    expect(await conn.leaseKeepAlive({ ID })).toMatchObject({ ID, TTL: 5 });
    expect(await conn.leaseKeepAlive({ ID: 424242n })).toMatchObject({ ID: 424242n, TTL: 0 });
    await expect(conn.leaseRevoke({ ID: 424242n })).rejects.toBeInstanceOf(EtcdLeaseNotFoundError);
  });

  it('reports a member cut off from the leader as etcd\'s request timeout', async () => {
    const tc = await cluster();
    const leader = await tc.leader();
    const follower = tc.members.findIndex((m) => m !== leader);
    const conn = tc.connection(follower);
    for (const m of tc.members) {
      if (m === tc.members[follower]) continue;
      tc.transports[follower].faults.block(m.id);
      tc.transports[tc.members.indexOf(m)].faults.block(tc.members[follower].id);
    }
    const err = await conn.put({ key: new TextEncoder().encode('t'), value: new Uint8Array(0) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EtcdRequestTimeoutError);
    expect(err).toMatchObject({ code: 14, message: 'etcdserver: request timed out' });
  });

  it('maps member and MVCC errors to etcd\'s typed errors by message', () => {
    expect(toEtcdError(new MemberError('timeout', 'etcdserver: request timed out'))).toBeInstanceOf(EtcdRequestTimeoutError);
    expect(toEtcdError(new MemberError('stopped', 'etcdserver: server stopped'))).toBeInstanceOf(EtcdServerStoppedError);
    expect(toEtcdError(new MemberError('no-leader', 'etcdserver: no leader'))).toBeInstanceOf(EtcdNoLeaderError);
    const notFound = toEtcdError(Errors.leaseNotFound());
    expect(notFound).toBeInstanceOf(EtcdLeaseNotFoundError);
    expect(notFound).toMatchObject({ code: 5, message: 'etcdserver: requested lease not found', name: 'EtcdLeaseNotFoundError' });
    const other = toEtcdError(new MvccError(3, 'etcdserver: something new'));
    expect(other).toBeInstanceOf(EtcdError);
    expect(other).toMatchObject({ code: 3, message: 'etcdserver: something new' });
    expect(errorFromStatus(11, 'etcdserver: mvcc: required revision is a future revision').name).toBe('EtcdFutureRevisionError');
    const bug = new TypeError('a bug');
    expect(toEtcdError(bug)).toBe(bug);
  });

  it('client.close() cancels watchers and stops keep-alives', async () => {
    const tc = await cluster();
    const c = tc.client();
    const w = await c.watch().key('z').create();
    const lease = c.lease(1);
    await lease.grant();
    let renewals = 0;
    lease.on('keepaliveSucceeded', () => renewals++);
    c.close();
    expect(w.isCanceled).toBe(true);
    const before = renewals;
    await sleep(800);
    expect(renewals).toBe(before);
    await expect(c.get('z').string()).rejects.toBeInstanceOf(EtcdUnavailableError);
  });
});
