// The etcd3 npm client (its own copy of etcd's protos) against a meshkv member.

import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serve, waitFor, type Served } from './harness.ts';

let s: Served;
let client: Etcd3;

beforeAll(async () => {
  s = await serve();
  client = new Etcd3({ hosts: `http://${s.endpoint}` });
});
afterAll(async () => {
  client?.close();
  await s?.stop();
});

describe('etcd3 npm client against meshkv', () => {
  it('put, get, prefix range, delete', async () => {
    await client.put('app/a').value('1');
    await client.put('app/b').value('2');
    await client.put('other').value('x');
    expect(await client.get('app/a').string()).toBe('1');
    expect(await client.getAll().prefix('app/').strings()).toEqual({ 'app/a': '1', 'app/b': '2' });
    expect(await client.getAll().prefix('app/').count()).toBe(2);
    await client.delete().key('app/a');
    expect(await client.get('app/a').string()).toBeNull();
  });

  it('txn compare-and-swap takes the else branch once the value changed', async () => {
    await client.put('cas').value('v1');
    const ok = await client.if('cas', 'Value', '==', 'v1').then(client.put('cas').value('v2')).else(client.get('cas')).commit();
    expect(ok.succeeded).toBe(true);
    const no = await client.if('cas', 'Value', '==', 'v1').then(client.put('cas').value('v3')).else(client.get('cas')).commit();
    expect(no.succeeded).toBe(false);
    expect(no.responses[0].response_range.kvs[0].value.toString()).toBe('v2');
  });

  it('watch sees put and delete events in order', async () => {
    const watcher = await client.watch().prefix('wk/').create();
    const seen: string[] = [];
    watcher.on('put', (kv) => seen.push(`put ${kv.key.toString()}=${kv.value.toString()}`));
    watcher.on('delete', (kv) => seen.push(`delete ${kv.key.toString()}`));
    await client.put('wk/1').value('a');
    await client.put('wk/1').value('b');
    await client.delete().key('wk/1');
    await waitFor('three events', () => seen.length === 3);
    expect(seen).toEqual(['put wk/1=a', 'put wk/1=b', 'delete wk/1']);
    await watcher.cancel();
  });

  it('a watch refused at a compacted revision leaves the client serving the next watcher (as etcd does)', async () => {
    await client.put('cw').value('1');
    await client.put('cw').value('2');
    const revision = Number((await client.put('cw').value('3')).header.revision);
    await client.kv.compact({ revision: String(revision) });
    const seen: string[] = [];
    const refused = await client.watch().key('cw').startRevision(String(revision - 2)).create();
    refused.on('error', (err) => seen.push(`refused: ${err.message}`));
    await waitFor('the compacted watch to be cancelled', () => seen.length === 1);
    expect(seen[0]).toMatch(/^refused: Watcher canceled/);
    // Issue 17 reported the next watcher on the same client failing with "14 UNAVAILABLE: Channel
    // closed before call started" where real etcd kept serving it. This sequence did not
    // reproduce it on this session's main either; the test pins what etcd users expect.
    const next = await client.watch().key('cw-next').create();
    next.on('put', (kv) => seen.push(`put ${kv.value.toString()}`));
    await client.put('cw-next').value('x');
    await waitFor('the next watcher to see the put', () => seen.length === 2);
    expect(seen[1]).toBe('put x');
    await next.cancel();
  });

  it('a lease keeps its key alive and revoking it deletes the key', async () => {
    const lease = client.lease(30, { autoKeepAlive: false });
    const id = await lease.grant();
    expect(id).toMatch(/^\d+$/);
    await lease.put('leased').value('v');
    const alive = await lease.keepaliveOnce();
    expect(alive.TTL).toBe('30');
    const other = await client.lease(30, { autoKeepAlive: false }).grant();
    expect(other).not.toBe(id);
    expect(await client.get('leased').string()).toBe('v');
    await lease.revoke();
    expect(await client.get('leased').string()).toBeNull();
  });
});
