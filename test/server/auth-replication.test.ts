// The auth store is replicated state: users, roles, permissions and auth enable go through the
// log, survive a restart from storage, and reach a member that catches up from a snapshot.

import { afterEach, describe, expect, it } from 'vitest';
import { MemoryStorage } from '../../adapters/storage/memory.ts';
import { MemoryHub } from '../../adapters/transport/memory.ts';
import { ConfChangeTransition, ConfChangeType } from '../../src/raft/confchange.ts';
import { PermType } from '../../src/server/auth-store.ts';
import { KvMember } from '../../src/server/kv-member.ts';
import { startKvMember, steadyTimings } from '../helpers/kv-members.ts';
import { waitFor } from '../helpers/wait.ts';

const b = (s: string) => new TextEncoder().encode(s);
const authCrypto = globalThis.crypto;

const running: KvMember[] = [];
afterEach(async () => {
  for (const m of running.splice(0)) await m.stop();
});

/** root (with the root role) and alice, who may read and write under app/; auth enabled. */
async function setUp(kv: KvMember): Promise<void> {
  await kv.userAdd('root', 'rootpw', false);
  await kv.authChange({ kind: 'roleAdd', name: 'root' });
  await kv.authChange({ kind: 'userGrantRole', name: 'root', role: 'root' });
  await kv.authChange({ kind: 'roleAdd', name: 'app' });
  await kv.authChange({ kind: 'roleGrantPermission', name: 'app', perm: { permType: PermType.ReadWrite, key: b('app/'), rangeEnd: b('app0') } });
  await kv.userAdd('alice', 'alicepw', false);
  await kv.authChange({ kind: 'userGrantRole', name: 'alice', role: 'app' });
  await kv.authChange({ kind: 'authEnable' });
}

/** What a member's auth store says about alice, as a user of the API would observe it. */
function aliceView(kv: KvMember): unknown {
  const may = (key: string) => {
    try {
      kv.auth.checkRange('alice', b(key), new Uint8Array(0), 'write');
      return true;
    } catch {
      return false;
    }
  };
  return { enabled: kv.auth.enabled, roles: kv.auth.getUser('alice')?.roles, app: may('app/x'), other: may('other') };
}

describe('auth state', () => {
  it('survives a restart from storage, through the snapshot image', async () => {
    const hub = new MemoryHub();
    const storage = new MemoryStorage();
    const kv = await startKvMember(hub, 1, [1], { storage, authCrypto, snapshotEntries: 4, snapshotKeepEntries: 0 });
    running.push(kv);
    await waitFor('a leader', () => kv.member.isLeader());
    await setUp(kv);
    for (let i = 0; i < 10; i++) await kv.put({ key: b(`k${i}`), value: b('v') });
    await waitFor('a snapshot was taken', () => kv.member.snapshotBytes() > 0);
    const synced = storage.copyState('synced');
    await kv.stop();
    running.splice(running.indexOf(kv), 1);

    const back = await startKvMember(hub, 1, [], { storage: new MemoryStorage(synced), authCrypto });
    running.push(back);
    await waitFor('the restarted member leads', () => back.member.isLeader());
    expect(aliceView(back)).toEqual({ enabled: true, roles: ['app'], app: true, other: false });
    // The password hash came back too: alice authenticates, a wrong password does not.
    expect(await back.userOfToken(await back.authenticate('alice', 'alicepw'))).toBe('alice');
    await expect(back.authenticate('alice', 'wrong')).rejects.toThrow('etcdserver: authentication failed, invalid user ID or password');
  }, 60_000);

  it('reaches a member that catches up from a snapshot, and tokens issued on one member work on another', async () => {
    const hub = new MemoryHub();
    const ids = [1, 2, 3];
    // Steady timings: the members share this process's event loop, and a stall of a few 5 ms
    // ticks on a loaded machine would elect another leader mid-test (its proposals in flight
    // then time out, as etcd's do) and leave `leader` below pointing at a follower.
    const ms = await Promise.all(ids.map((id) => startKvMember(hub, id, ids, { authCrypto, snapshotEntries: 20, snapshotKeepEntries: 0, ...steadyTimings })));
    running.push(...ms);
    const leader = await waitFor('a leader', () => ms.find((m) => m.member.isLeader()));
    await setUp(leader);
    for (let i = 0; i < 60; i++) await leader.put({ key: b(`k${i}`), value: b('v') });
    const token = await leader.authenticate('alice', 'alicepw');
    const follower = ms.find((m) => m !== leader)!;
    await waitFor('the token reached a follower', () => follower.userOfToken(token).then((user) => user === 'alice', () => false));

    const joiner = await startKvMember(hub, 4, [], { authCrypto, ...steadyTimings });
    running.push(joiner);
    await leader.member.changeMembership({ transition: ConfChangeTransition.Auto, changes: [{ type: ConfChangeType.AddLearnerNode, memberId: 4 }], context: null });
    await waitFor('the learner caught up', () => joiner.mvcc.currentRevision === leader.mvcc.currentRevision, 15_000);
    // It received the leader's snapshot (it makes none of its own this early).
    expect(joiner.member.snapshotBytes()).toBeGreaterThan(0);
    expect(aliceView(joiner)).toEqual({ enabled: true, roles: ['app'], app: true, other: false });
    expect(joiner.auth.revision).toBe(leader.auth.revision);
  }, 60_000);
});
