// The Client over gRPC against a real meshkv member: key-value operations, transactions,
// namespaces, typed errors, 64-bit lease ids, endpoint failover.

import { describe, expect, it } from 'vitest';
import { GrpcConnection } from '../../adapters/etcd-api/grpc-connection.ts';
import {
  EtcdCompactedError,
  EtcdEmptyKeyError,
  EtcdFutureRevisionError,
  EtcdLeaseNotFoundError,
  EtcdUnavailableError,
} from '../../src/client/errors.ts';
import { deadEndpoint, grpcMember, text, waitFor } from './helpers.ts';

const enc = new TextEncoder();

describe('client over gRPC: kv', () => {
  it('put, get, getAll, delete with the values and revisions the member stores', async () => {
    const m = await grpcMember();
    const c = m.client();
    await c.put('s').value('hello');
    await c.put(new Uint8Array([0xff, 0x00])).value(new Uint8Array([1, 2, 3]));
    for (const k of ['dir/b', 'dir/a', 'dir/c']) await c.put(k).value(`v-${k}`);
    expect(await c.get('s')).toBe('hello');
    expect(await c.get(new Uint8Array([0xff, 0x00])).buffer()).toEqual(new Uint8Array([1, 2, 3]));
    expect(await c.get('missing').string()).toBeNull();
    const kv = await c.get('s').kv();
    expect(kv).toMatchObject({ version: 1, lease: 0n, createRevision: 2, modRevision: 2 });
    expect(await c.getAll().prefix('dir/').limit(2).sort('key', 'desc').keys()).toEqual(['dir/c', 'dir/b']);
    expect(await c.getAll().prefix('dir/').sort('create', 'asc').keys()).toEqual(['dir/b', 'dir/a', 'dir/c']);
    const limited = await c.getAll().prefix('dir/').limit(1).exec();
    expect([limited.kvs.length, limited.more, limited.count]).toEqual([1, true, 3]);
    expect(await c.put('s').value('bye').getPrevious()).toMatchObject({ value: enc.encode('hello'), version: 1 });
    const gone = await c.delete().prefix('dir/').getPrevious();
    expect(gone.map((g) => text(g.key))).toEqual(['dir/a', 'dir/b', 'dir/c']);
    expect(await c.getAll().count()).toBe(2);
    // What the gRPC client wrote is what the member holds.
    expect(text(m.kv.mvcc.range({ key: enc.encode('s') }).kvs[0].value)).toBe('bye');
  });

  it('transactions: compares, both branches, nested txns and their responses', async () => {
    const c = (await grpcMember()).client();
    const first = await c
      .if('lock', 'Create', '==', 0)
      .then(c.put('lock').value('me'), c.get('lock'))
      .else(c.get('lock'))
      .commit();
    expect(first.succeeded).toBe(true);
    expect(first.responses).toHaveLength(2);
    const second = await c.if('lock', 'Create', '==', 0).then(c.put('lock').value('you')).else(c.get('lock')).commit();
    expect(second.succeeded).toBe(false);
    const read = second.responses[0] as { responseRange: { kvs: { value: Uint8Array }[] } };
    expect(text(read.responseRange.kvs[0].value)).toBe('me');
    const mod = (await c.get('lock').kv())!.modRevision;
    const nested = await c
      .if('lock', 'Mod', '==', mod)
      .and('lock', 'Value', '==', 'me')
      .and('lock', 'Version', '>', 0)
      .and('lock', 'Lease', '==', 0n)
      .then(c.if('other', 'Version', '==', 0).then(c.put('other').value('1')))
      .commit();
    expect(nested.succeeded).toBe(true);
    expect(nested.responses[0]).toMatchObject({ responseTxn: { succeeded: true } });
    expect(await c.get('other')).toBe('1');
  });

  it('namespace views read and write under their prefix', async () => {
    const c = (await grpcMember()).client();
    const ns = c.namespace('app/');
    await ns.put('a').value('1');
    await ns.put('b').value('2');
    await c.put('outside').value('x');
    expect(await ns.getAll().keys()).toEqual(['a', 'b']);
    expect(await c.getAll().prefix('app/').keys()).toEqual(['app/a', 'app/b']);
    const w = await ns.watch().key('a').create();
    const seen = w.next('put');
    await c.put('app/a').value('3');
    const [kv] = await seen;
    expect(text(kv.key)).toBe('a');
    await ns.delete().all();
    expect(await c.getAll().keys()).toEqual(['outside']);
  });

  it('maps the member\'s gRPC errors to the same typed errors as the in-process connection', async () => {
    const c = (await grpcMember()).client();
    const first = await c.put('h').value('one');
    await c.put('h').value('two');
    await expect(c.get('h').revision(1000).string()).rejects.toBeInstanceOf(EtcdFutureRevisionError);
    await c.compact((await c.put('h').value('three')).header.revision);
    const compacted = await c.get('h').revision(first.header.revision).string().catch((e: unknown) => e);
    expect(compacted).toBeInstanceOf(EtcdCompactedError);
    expect(compacted).toMatchObject({ code: 11, message: 'etcdserver: mvcc: required revision has been compacted' });
    const notFound = await c.connection.leaseRevoke({ ID: 424242n }).catch((e: unknown) => e);
    expect(notFound).toBeInstanceOf(EtcdLeaseNotFoundError);
    expect(notFound).toMatchObject({ code: 5, message: 'etcdserver: requested lease not found' });
    await expect(c.connection.put({ key: new Uint8Array(0), value: enc.encode('v') })).rejects.toBeInstanceOf(EtcdEmptyKeyError);
    expect(await c.connection.leaseKeepAlive({ ID: 424242n })).toMatchObject({ ID: 424242n, TTL: 0 });
  });

  it('a lease id beyond 2^53 round-trips exactly', async () => {
    const m = await grpcMember();
    const c = m.client();
    const id = 2n ** 62n + 12345n; // not representable as a double: Number(id) !== id
    expect(BigInt(Number(id))).not.toBe(id);
    const granted = await c.connection.leaseGrant({ TTL: 5, ID: id });
    expect(granted.ID).toBe(id);
    expect((await m.kv.leaseLeases()).leases.map((l) => l.ID)).toContain(id); // as the member holds it
    await c.connection.put({ key: enc.encode('big'), value: enc.encode('v'), lease: id });
    expect((await c.get('big').kv())!.lease).toBe(id);
    expect(await c.leases()).toContain(id);
    expect(await c.connection.leaseKeepAlive({ ID: id })).toMatchObject({ ID: id, TTL: 5 });
    const ttl = await c.connection.leaseTimeToLive({ ID: id, keys: true });
    expect(ttl).toMatchObject({ ID: id, grantedTTL: 5 });
    expect(ttl.keys.map(text)).toEqual(['big']);
    const txn = await c.if('big', 'Lease', '==', id).then(c.get('big')).commit();
    expect(txn.succeeded).toBe(true);
    await c.connection.leaseRevoke({ ID: id });
    expect(await c.get('big').exists()).toBe(false);
  });

  it('skips an endpoint it cannot connect to, for reads and writes; none reachable is EtcdUnavailableError', async () => {
    const m = await grpcMember();
    const dead = await deadEndpoint();
    const c = m.client([dead, `http://${m.endpoint}`], { connectTimeoutMs: 500 });
    expect(() => new GrpcConnection([`https://${m.endpoint}`])).toThrow('TLS endpoints are not supported yet');
    await c.put('f').value('1'); // the write never reached `dead`: safe to send to the next endpoint
    expect(await c.get('f')).toBe('1');
    expect((c.connection as GrpcConnection).endpoint).toBe(m.endpoint);
    await m.stopServing();
    const err = await c.get('f').string().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EtcdUnavailableError);
    expect((err as Error).message).toContain('no endpoint is reachable');
    await m.startServing();
    // grpc-js reconnects within its (shortened) backoff.
    let value: string | null = null;
    for (let i = 0; i < 100 && value === null; i++) value = await c.get('f').string().catch(() => null);
    expect(value).toBe('1');
  });

  it('moves to the next endpoint when the server it talks to stops, and carries on there', async () => {
    const m = await grpcMember();
    const second = await m.serveAlso();
    const c = m.client([m.endpoint, second.endpoint], { connectTimeoutMs: 500 });
    const w = await c.watch().key('w').create();
    const values: string[] = [];
    w.on('put', (kv) => values.push(text(kv.value)));
    await c.put('w').value('1');
    expect((c.connection as GrpcConnection).endpoint).toBe(m.endpoint);
    await m.stopServing();
    expect(await c.get('w')).toBe('1');
    await c.put('w').value('2');
    expect((c.connection as GrpcConnection).endpoint).toBe(second.endpoint);
    expect(await c.lease(1).grant()).toBeGreaterThan(0n);
    await c.put('w').value('3');
    await waitFor('the watch to resume on the second endpoint', () => values.length === 3);
    expect(values).toEqual(['1', '2', '3']);
  });
});
