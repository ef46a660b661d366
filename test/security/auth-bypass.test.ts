// Attempts to get around etcd's RBAC on a meshkv member with auth enabled, each through a real
// client (etcdctl 3.4, the etcd3 npm client, the JSON gateway over HTTP): a watch on a forbidden
// prefix, a lease revoke that would delete keys one cannot write, a snapshot and a membership
// change as a non-root user, tokens that were never issued, and ranges that reach past a grant.
// Txn compares on forbidden keys are in test/etcd-api/auth-transcript.test.ts, against etcd.

import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectGrpc } from '../../adapters/etcd-api/grpc-connection.ts';
import { etcdctl, requireEtcdctl, serve, spawnEtcdctl, waitFor, type Served } from '../etcd-api/harness.ts';

let s: Served;
const root = ['--user', 'root:rootpw'];
const alice = ['--user', 'alice:alicepw'];
const ctl = (...args: string[]) => etcdctl(s.endpoint, args);
const errorLine = (stderr: string) => stderr.split('\n').find((l) => l.startsWith('Error:')) ?? stderr;
const b64 = (t: string) => Buffer.from(t).toString('base64');

async function post(path: string, body: unknown, token?: string): Promise<{ status: number; json: any }> {
  const res = await fetch(`http://${s.endpoint}${path}`, {
    method: 'POST',
    body: JSON.stringify(body),
    headers: token === undefined ? {} : { Authorization: token },
  });
  return { status: res.status, json: await res.json() };
}

beforeAll(async () => {
  requireEtcdctl();
  s = await serve();
  for (const args of [
    ['user', 'add', 'root:rootpw'],
    ['role', 'add', 'app'],
    ['role', 'grant-permission', 'app', 'readwrite', '--prefix=true', 'app/'],
    ['user', 'add', 'alice:alicepw'],
    ['user', 'grant-role', 'alice', 'app'],
    ['auth', 'enable'],
  ]) {
    const r = await ctl(...args);
    if (r.code !== 0) throw new Error(`etcdctl ${args.join(' ')}: ${r.stderr}`);
  }
}, 60_000);
afterAll(async () => {
  await s?.stop();
});

describe('RBAC bypass attempts', () => {
  it('a watch on a forbidden prefix delivers nothing, while a permitted one sees its events', async () => {
    const forbidden = spawnEtcdctl(s.endpoint, [...alice, 'watch', '--prefix', 'secret/']);
    const permitted = spawnEtcdctl(s.endpoint, [...alice, 'watch', '--prefix', 'app/']);
    try {
      // The permitted watch is a barrier: once it saw app/marker, secret/x (written first) went out too, had it been allowed.
      await waitFor('both watches are open', async () => {
        await ctl(...root, 'put', 'app/marker', String(Date.now()));
        return permitted.lines.includes('app/marker');
      }, 15_000);
      await ctl(...root, 'put', 'secret/x', 'classified');
      await ctl(...root, 'put', 'app/after', 'done');
      await waitFor('the permitted watch saw app/after', () => permitted.lines.includes('app/after'), 15_000);
      expect(forbidden.lines.join('\n')).not.toContain('classified');
      expect(forbidden.lines.join('\n')).not.toContain('secret/x');
      // The server canceled the forbidden watch, so etcdctl gave up on it.
      await waitFor('the forbidden watch ended', () => forbidden.child.exitCode !== null, 15_000);
    } finally {
      forbidden.stop();
      permitted.stop();
    }
  }, 60_000);

  it('revoking a lease is refused when it holds keys one cannot write, and the keys stay', async () => {
    const grant = await ctl(...root, 'lease', 'grant', '100');
    const id = grant.stdout.split(' ')[1];
    expect((await ctl(...root, 'put', '--lease', id, 'secret/leased', 'v')).code).toBe(0);
    expect(errorLine((await ctl(...alice, 'lease', 'revoke', id)).stderr)).toBe('Error: failed to revoke lease (etcdserver: permission denied)');
    expect((await ctl(...root, 'get', 'secret/leased')).stdout).toBe('secret/leased\nv\n');
    // A lease holding only keys alice may write is hers to revoke.
    const own = (await ctl(...root, 'lease', 'grant', '100')).stdout.split(' ')[1];
    await ctl(...root, 'put', '--lease', own, 'app/leased', 'v');
    expect((await ctl(...alice, 'lease', 'revoke', own)).code).toBe(0);
    expect((await ctl(...root, 'get', 'app/leased')).stdout).toBe('');
    // Attaching a forbidden key's lease to one's own put is refused too (etcd's checkLeasePuts).
    expect(errorLine((await ctl(...alice, 'put', '--lease', id, 'app/x', 'v')).stderr)).toBe('Error: etcdserver: permission denied');
  }, 60_000);

  it('a snapshot, a defragment and a membership change need root', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'meshkv-auth-snap-'));
    try {
      const file = join(dir, 'snap.db');
      expect(errorLine((await ctl(...alice, 'snapshot', 'save', file)).stderr)).toContain('etcdserver: permission denied');
      expect(existsSync(file)).toBe(false);
      expect((await ctl(...root, 'snapshot', 'save', file)).code).toBe(0);
      expect(existsSync(file)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(errorLine((await ctl(...alice, 'defrag')).stderr)).toContain('etcdserver: permission denied');
    expect(errorLine((await ctl(...alice, 'member', 'add', 'x', '--peer-urls', 'http://127.0.0.1:1')).stderr)).toBe('Error: etcdserver: permission denied');
    expect(errorLine((await ctl('member', 'remove', '1234')).stderr)).toBe('Error: etcdserver: user name is empty');
    // Listing members is open to anyone, as in etcd.
    expect((await ctl(...alice, 'member', 'list')).code).toBe(0);
  }, 60_000);

  it('the JSON gateway: no token, a forged token, a range past the grant, and a real token', async () => {
    await ctl(...root, 'put', 'app/k', 'v');
    expect(await post('/v3/kv/range', { key: b64('app/k') })).toMatchObject({ status: 400, json: { message: 'etcdserver: user name is empty' } });
    expect(await post('/v3/kv/range', { key: b64('app/k') }, 'not-a-token')).toMatchObject({ status: 401, json: { message: 'etcdserver: invalid auth token' } });
    const wrong = await post('/v3/auth/authenticate', { name: 'alice', password: 'nope' });
    expect(wrong).toMatchObject({ status: 400, json: { message: 'etcdserver: authentication failed, invalid user ID or password' } });
    const auth = await post('/v3/auth/authenticate', { name: 'alice', password: 'alicepw' });
    expect(auth.status).toBe(200);
    const token = auth.json.token as string;
    const ok = await post('/v3/kv/range', { key: b64('app/k') }, token);
    expect(ok.status).toBe(200);
    expect(ok.json.kvs[0].value).toBe(b64('v'));
    // [app/, app1) reaches past the granted prefix [app/, app0).
    expect(await post('/v3/kv/range', { key: b64('app/'), range_end: b64('app1') }, token)).toMatchObject({ status: 403, json: { message: 'etcdserver: permission denied' } });
    expect(await post('/v3/kv/put', { key: b64('secret/y'), value: b64('v') }, token)).toMatchObject({ status: 403 });
    expect(await post('/v3/auth/user/list', {}, token)).toMatchObject({ status: 403 });
  }, 60_000);

  it("the etcd3 client's auth option", async () => {
    const client = new Etcd3({ hosts: `http://${s.endpoint}`, auth: { username: 'alice', password: 'alicepw' } });
    const anonymous = new Etcd3({ hosts: `http://${s.endpoint}` });
    try {
      await client.put('app/from-etcd3').value('hi');
      expect(await client.get('app/from-etcd3').string()).toBe('hi');
      await expect(client.get('secret/x').string()).rejects.toThrow('etcdserver: permission denied');
      await expect(anonymous.get('app/from-etcd3').string()).rejects.toThrow('etcdserver: user name is empty');
    } finally {
      client.close();
      anonymous.close();
    }
  }, 60_000);

  it('the meshkv Client with user and password: allowed, denied, watched, and re-authenticated after its token is dropped', async () => {
    const client = connectGrpc([s.endpoint], { user: 'alice', password: 'alicepw' });
    try {
      await client.put('app/client').value('one');
      expect(await client.get('app/client')).toBe('one');
      await expect(client.get('secret/x')).rejects.toThrow('etcdserver: permission denied');
      await expect(client.put('secret/x').value('mine')).rejects.toThrow('etcdserver: permission denied');
      const seen: string[] = [];
      const watcher = await client.watch().prefix('app/').create();
      watcher.on('put', (kv) => seen.push(new TextDecoder().decode(kv.value)));
      // Disabling auth forgets every token, as etcd does; the client authenticates again by itself.
      expect((await ctl(...root, 'auth', 'disable')).code).toBe(0);
      expect((await ctl(...root, 'auth', 'enable')).code).toBe(0);
      await client.put('app/client').value('two');
      expect(await client.get('app/client')).toBe('two');
      await waitFor('the watch saw the second put', () => seen.includes('two'), 15_000);
      await watcher.cancel();
    } finally {
      client.close();
    }
  }, 60_000);
});
