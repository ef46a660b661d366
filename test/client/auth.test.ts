// The in-process connection with etcd auth (what a tab's or an embedded member's Client uses):
// given a user and password, its calls are checked as the etcd API checks them
// (src/server/auth-check.ts); without, it acts as the member. Three members in one process.

import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../adapters/clock/system.ts';
import { MemoryHub } from '../../adapters/transport/memory.ts';
import { Client } from '../../src/client/client.ts';
import { InProcessConnection } from '../../src/client/local-connection.ts';
import { PermType } from '../../src/server/auth-store.ts';
import type { KvMember } from '../../src/server/kv-member.ts';
import { startKvMember } from '../helpers/kv-members.ts';
import { waitFor } from '../helpers/wait.ts';

const running: KvMember[] = [];
const clients: Client[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const m of running.splice(0)) await m.stop();
});

const enc = (s: string) => new TextEncoder().encode(s);

async function authCluster(): Promise<KvMember[]> {
  const hub = new MemoryHub();
  const ids = [1, 2, 3];
  // Slower elections than the helper's, and a longer request timeout: each Authenticate and
  // password change costs a PBKDF2 hash, and the machine may be loaded.
  const options = { authCrypto: globalThis.crypto, tickMs: 20, electionTicks: 25, requestTimeoutMs: 10_000 };
  const members = await Promise.all(ids.map((id) => startKvMember(hub, id, ids, options)));
  running.push(...members);
  const leader = await waitFor('a leader', () => members.find((m) => m.isLeader()), 10_000);
  await leader.put({ key: enc('secret'), value: enc('root only') });
  await leader.userAdd('root', 'rootpw', false);
  await leader.authChange({ kind: 'userGrantRole', name: 'root', role: 'root' });
  await leader.authChange({ kind: 'roleAdd', name: 'todo' });
  await leader.authChange({ kind: 'roleGrantPermission', name: 'todo', perm: { permType: PermType.ReadWrite, key: enc('todo/'), rangeEnd: enc('todo0') } });
  await leader.userAdd('alice', 'alicepw', false);
  await leader.authChange({ kind: 'userGrantRole', name: 'alice', role: 'todo' });
  return members;
}

function client(members: KvMember[], credentials: { user?: string; password?: string }, preferred = 0): Client {
  const c = new Client({ connection: new InProcessConnection(members, { clock: systemClock, preferred, watchHealthCheckMs: 10, ...credentials }), clock: systemClock, watchRetryMs: 20 });
  clients.push(c);
  return c;
}

const message = (p: PromiseLike<unknown>) => Promise.resolve(p).then(() => 'ok', (err: Error) => err.message);

describe('the in-process connection with etcd auth', { timeout: 60_000 }, () => {
  it('checks each call for its user once auth is enabled, including on a member that has not applied the enable yet', async () => {
    const members = await authCluster();
    const alice = client(members, { user: 'alice', password: 'alicepw' }, 1);
    // Before auth is enabled, nothing is checked.
    expect(await message(alice.get('secret'))).toBe('ok');
    const leader = members.find((m) => m.isLeader())!;
    await leader.authChange({ kind: 'authEnable' });
    expect(await message(alice.put('todo/1').value('milk'))).toBe('ok');
    expect(await alice.get('todo/1').string()).toBe('milk');
    expect(await message(alice.put('secret').value('x'))).toBe('etcdserver: permission denied');
    expect(await message(alice.get('secret'))).toBe('etcdserver: permission denied');
    expect(await message(alice.getAll().prefix('todo').exec())).toBe('etcdserver: permission denied');
    // Txn: compares are reads, and both branches are checked.
    expect(await message(alice.if('todo/1', 'Value', '==', 'milk').then(alice.put('todo/2').value('x')).else(alice.delete().key('secret')).commit())).toBe('etcdserver: permission denied');
    expect(await message(alice.if('secret', 'Version', '>', 0).then(alice.put('todo/2').value('x')).commit())).toBe('etcdserver: permission denied');
    // A refused watch is answered canceled, as etcd answers it.
    const watcher = alice.watch().key('secret');
    await expect(watcher.create()).rejects.toThrow('etcdserver: permission denied');
    const wrong = client(members, { user: 'alice', password: 'nope' });
    expect(await message(wrong.get('todo/1'))).toBe('etcdserver: authentication failed, invalid user ID or password');
    // Without credentials the connection acts as its member.
    expect(await client(members, {}).get('secret').string()).toBe('root only');
  });

  it('authenticates again when its token is dropped (a password change)', async () => {
    const members = await authCluster();
    const leader = members.find((m) => m.isLeader())!;
    await leader.authChange({ kind: 'authEnable' });
    // On the leader, which has applied the password change (and dropped the token) when it resolves.
    const alice = client(members, { user: 'alice', password: 'alicepw' }, members.indexOf(leader));
    await alice.put('todo/1').value('a');
    await leader.userChangePassword('alice', 'newpw');
    expect(await message(alice.get('todo/1'))).toBe('etcdserver: authentication failed, invalid user ID or password');
    const again = client(members, { user: 'alice', password: 'newpw' });
    expect(await again.get('todo/1').string()).toBe('a');
  });
});
