// Key-value operations and transactions through the Client, on a real 3-member cluster.

import { describe, expect, it } from 'vitest';
import {
  EtcdCompactedError,
  EtcdDuplicateKeyError,
  EtcdEmptyKeyError,
  EtcdError,
  EtcdFutureRevisionError,
  EtcdLeaseNotFoundError,
} from '../../src/client/errors.ts';
import { cluster, text } from './helpers.ts';

describe('client kv', () => {
  it('get returns strings, buffers, json, numbers and existence', async () => {
    const c = (await cluster()).client();
    await c.put('s').value('hello');
    await c.put('j').value(JSON.stringify({ a: 1 }));
    await c.put('n').value(42);
    await c.put(new Uint8Array([0xff, 0x00])).value(new Uint8Array([1, 2, 3]));
    expect(await c.get('s').string()).toBe('hello');
    expect(await c.get('s')).toBe('hello');
    expect(await c.get('j').json()).toEqual({ a: 1 });
    expect(await c.get('n').number()).toBe(42);
    expect(await c.get(new Uint8Array([0xff, 0x00])).buffer()).toEqual(new Uint8Array([1, 2, 3]));
    expect(await c.get('s').exists()).toBe(true);
    expect(await c.get('missing').exists()).toBe(false);
    expect(await c.get('missing').string()).toBeNull();
    const kv = await c.get('s').kv();
    expect(kv).toMatchObject({ version: 1, lease: 0n });
    expect(kv!.createRevision).toBe(kv!.modRevision);
  });

  it('getAll narrows by prefix, sorts, limits and counts', async () => {
    const c = (await cluster()).client();
    for (const k of ['dir/b', 'dir/a', 'dir/c', 'dis', 'other']) await c.put(k).value(`v-${k}`);
    expect(await c.getAll().prefix('dir/').keys()).toEqual(['dir/a', 'dir/b', 'dir/c']);
    expect(await c.getAll().prefix('dir/').strings()).toEqual({ 'dir/a': 'v-dir/a', 'dir/b': 'v-dir/b', 'dir/c': 'v-dir/c' });
    expect(await c.getAll().prefix('dir/').count()).toBe(3);
    expect(await c.getAll().prefix('dir/').limit(2).sort('key', 'desc').keys()).toEqual(['dir/c', 'dir/b']);
    expect(await c.getAll().prefix('dir/').sort('create', 'asc').keys()).toEqual(['dir/b', 'dir/a', 'dir/c']);
    expect(await c.getAll().range('dir/b', 'dis').keys()).toEqual(['dir/b', 'dir/c']);
    expect(await c.getAll().keys()).toEqual(['dir/a', 'dir/b', 'dir/c', 'dis', 'other']);
    expect(await c.getAll().count()).toBe(5);
    expect(await c.getAll().prefix('').count()).toBe(5); // an empty prefix is every key, as in clientv3
    const limited = await c.getAll().prefix('dir/').limit(1).exec();
    expect([limited.kvs.length, limited.more, limited.count]).toEqual([1, true, 3]);
  });

  it('reads history with revision() and refuses compacted and future revisions', async () => {
    const c = (await cluster()).client();
    const first = await c.put('h').value('one');
    await c.put('h').value('two');
    expect(await c.get('h').revision(first.header.revision).string()).toBe('one');
    expect(await c.get('h').string()).toBe('two');
    await expect(c.get('h').revision(1000).string()).rejects.toBeInstanceOf(EtcdFutureRevisionError);
    const third = await c.put('h').value('three');
    await c.compact(third.header.revision);
    const err = await c.get('h').revision(first.header.revision).string().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EtcdCompactedError);
    expect((err as EtcdError).code).toBe(11);
    expect((err as EtcdError).message).toBe('etcdserver: mvcc: required revision has been compacted');
  });

  it('serializable reads are served by the member the client talks to', async () => {
    const tc = await cluster();
    const leader = await tc.leader();
    const follower = tc.members.indexOf(tc.members.find((m) => m !== leader)!);
    const c = tc.client(follower);
    await c.put('ser').value('x');
    // Serializable reads may lag; a linearizable read first makes the follower apply the put.
    expect(await c.get('ser').string()).toBe('x');
    expect(await c.get('ser').serializable().string()).toBe('x');
    tc.transports[follower].faults.block(leader.id);
    for (const m of tc.members) if (m !== tc.members[follower]) tc.transports[tc.members.indexOf(m)].faults.block(tc.members[follower].id);
    // Cut off from the leader, the follower still answers serializable reads from its own state.
    expect(await c.get('ser').serializable().string()).toBe('x');
  });

  it('put returns the previous value, keeps the lease with ignoreLease, and accepts bytes', async () => {
    const c = (await cluster()).client();
    expect(await c.put('p').value('1').getPrevious()).toBeNull();
    const prev = await c.put('p').value('2').getPrevious();
    expect(text(prev!.value)).toBe('1');
    const lease = c.lease(30);
    await lease.put('p').value('3');
    const id = await lease.grant();
    expect((await c.get('p').kv())!.lease).toBe(id);
    await c.put('p').value('4').ignoreLease();
    expect((await c.get('p').kv())!.lease).toBe(id);
    await c.put('p').value('5');
    expect((await c.get('p').kv())!.lease).toBe(0n);
    await expect(c.put('p').value('6').lease(12345n)).rejects.toBeInstanceOf(EtcdLeaseNotFoundError);
    await expect(c.put('').value('x')).rejects.toBeInstanceOf(EtcdEmptyKeyError);
  });

  it('delete removes one key, a prefix or everything, with the deleted values', async () => {
    const c = (await cluster()).client();
    for (const k of ['a', 'd/1', 'd/2', 'e']) await c.put(k).value(k.toUpperCase());
    expect((await c.delete().key('a')).deleted).toBe(1);
    const prev = await c.delete().prefix('d/').getPrevious();
    expect(prev.map((kv) => [text(kv.key), text(kv.value)])).toEqual([
      ['d/1', 'D/1'],
      ['d/2', 'D/2'],
    ]);
    expect(await c.getAll().keys()).toEqual(['e']);
    expect((await c.delete().all()).deleted).toBe(1);
    expect(await c.getAll().count()).toBe(0);
    expect(() => c.delete().exec()).toThrow(TypeError);
  });

  it('txn compares versions, values, revisions and leases; then or else runs', async () => {
    const c = (await cluster()).client();
    const put = await c.put('t').value('v1');
    const cas = (expected: string, next: string) => c.if('t', 'Value', '==', expected).then(c.put('t').value(next)).else(c.get('t')).commit();
    expect((await cas('v1', 'v2')).succeeded).toBe(true);
    const lost = await cas('v1', 'v3');
    expect(lost.succeeded).toBe(false);
    const r = lost.responses[0];
    expect('responseRange' in r && text(r.responseRange.kvs[0].value)).toBe('v2');
    expect((await c.if('t', 'Version', '==', 2).and('t', 'Create', '==', put.header.revision).then(c.delete().key('t')).commit()).succeeded).toBe(true);
    expect((await c.if('t', 'Create', '==', 0).then(c.put('t').value('again')).commit()).succeeded).toBe(true);
    expect((await c.if('t', 'Mod', '>', put.header.revision).commit()).succeeded).toBe(true);
    expect((await c.if('t', 'Mod', '<', put.header.revision).commit()).succeeded).toBe(false);
    expect((await c.if('t', 'Value', '!=', 'again').commit()).succeeded).toBe(false);
    expect((await c.if('t', 'Lease', '==', 0).commit()).succeeded).toBe(true);
  });

  it('txn range compares hold only when they hold for every key in the range', async () => {
    const c = (await cluster()).client();
    await c.put('r/a').value('1');
    await c.put('r/b').value('2');
    await c.put('s').value('9');
    expect((await c.if({ prefix: 'r/' }, 'Value', '<', '3').commit()).succeeded).toBe(true);
    expect((await c.if({ prefix: 'r/' }, 'Value', '<', '2').commit()).succeeded).toBe(false);
    expect((await c.if({ start: 'r/', end: 't' }, 'Version', '==', 1).commit()).succeeded).toBe(true);
    await c.put('s').value('10');
    expect((await c.if({ start: 'r/', end: 't' }, 'Version', '==', 1).commit()).succeeded).toBe(false);
  });

  it('txn runs nested transactions and reports etcd errors as typed errors', async () => {
    const c = (await cluster()).client();
    const res = await c
      .txn()
            // As in etcd, every compare (nested ones too) reads the store as it was before the txn.
      .then(c.put('n1').value('x'), c.if('n1', 'Version', '==', 0).then(c.put('n2').value('y')).else(c.put('n3').value('z')))
      .commit();
    expect(res.succeeded).toBe(true);
    expect(await c.getAll().prefix('n').strings()).toEqual({ n1: 'x', n2: 'y' });
    await expect(c.txn().then(c.put('dup').value('1'), c.put('dup').value('2')).commit()).rejects.toBeInstanceOf(EtcdDuplicateKeyError);
    // A txn builder's then() adds operations: awaiting the builder is a mistake, reported as such.
    await expect((async () => await (c.if('x', 'Version', '==', 0) as unknown as Promise<unknown>))()).rejects.toThrow(/commit\(\)/);
  });

  it('namespace prefixes keys and strips them from every result', async () => {
    const c = (await cluster()).client();
    const app = c.namespace('app/');
    await app.put('a').value('1');
    await app.put('dir/b').value('2');
    await c.put('outside').value('3');
    expect(await c.get('app/a').string()).toBe('1');
    expect(await app.getAll().keys()).toEqual(['a', 'dir/b']);
    expect(await app.getAll().prefix('dir/').strings()).toEqual({ 'dir/b': '2' });
    expect(text((await app.put('a').value('1b').getPrevious())!.key)).toBe('a');
    const res = await app.if('a', 'Value', '==', '1b').then(app.get('a')).commit();
    const r = res.responses[0];
    expect('responseRange' in r && text(r.responseRange.kvs[0].key)).toBe('a');
    expect((await app.if({ prefix: '' }, 'Version', '>', 0).commit()).succeeded).toBe(true);
    expect((await app.delete().all().getPrevious()).map((kv) => text(kv.key))).toEqual(['a', 'dir/b']);
    expect(await c.getAll().keys()).toEqual(['outside']);
    const lease = app.lease(30);
    await lease.put('leased').value('x');
    expect((await lease.timeToLive(true)).keys.map(text)).toEqual(['leased']);
  });
});
