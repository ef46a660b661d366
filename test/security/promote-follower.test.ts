// MemberPromote through a follower with auth enabled. Only the leader can promote (it alone
// knows whether the learner caught up), so a follower forwards the call; the forward carries the
// caller's token, and the leader checks that caller again: root's promote through a follower
// works, and a non-root user's is refused there as on the leader. Two voters and a learner in
// one process, each voter serving etcd's API; the real etcdctl talks to the follower.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdListener } from '../../adapters/etcd-api/listener.ts';
import { MemoryHub } from '../../adapters/transport/memory.ts';
import type { MemberId } from '../../src/raft/types.ts';
import type { KvMember } from '../../src/server/kv-member.ts';
import { etcdctl, requireEtcdctl } from '../etcd-api/harness.ts';
import { startKvMember } from '../helpers/kv-members.ts';
import { waitFor } from '../helpers/wait.ts';

const voters = [1, 2];
const learner = 3;
const kvs = new Map<MemberId, KvMember>();
const listeners = new Map<MemberId, EtcdListener>();
const endpoint = (id: MemberId) => `127.0.0.1:${listeners.get(id)!.port}`;
const errorLine = (stderr: string) => stderr.split('\n').find((l) => l.startsWith('Error:')) ?? stderr;
let leader: MemberId;
let follower: MemberId;

beforeAll(async () => {
  requireEtcdctl();
  const hub = new MemoryHub();
  const initialMembers = voters.map((id) => ({ id, name: `m${id}`, peerURLs: [`memory://${id}`], clientURLs: [], isLearner: false }));
  // Slower elections than the helper's default, so that the leader stays put under a loaded machine.
  const options = { authCrypto: globalThis.crypto, tickMs: 20, electionTicks: 25 };
  for (const id of voters) kvs.set(id, await startKvMember(hub, id, voters, { initialMembers, ...options }));
  kvs.set(learner, await startKvMember(hub, learner, [], options));
  for (const id of voters) {
    const kv = kvs.get(id)!;
    listeners.set(
      id,
      await EtcdListener.listen({
        kv,
        host: '127.0.0.1',
        port: 0,
        clusterId: '1',
        // The follower finds the leader's client URL here, as a Node member does in its table.
        members: (m) => (listeners.has(m) ? { name: `m${m}`, peerURLs: [`memory://${m}`], clientURLs: [`http://${endpoint(m)}`] } : undefined),
        membership: { newMemberId: () => learner, activeSince: () => null, peerListener: false },
      }),
    );
  }
  const leading = await waitFor('a leader', () => voters.map((id) => kvs.get(id)!).find((kv) => kv.isLeader()), 10_000);
  leader = leading.id;
  follower = voters.find((id) => id !== leader)!;
  await leading.addMember(learner, [`memory://${learner}`], true);
  await waitFor('the learner to catch up', () => kvs.get(learner)!.status().applied >= leading.status().commit, 10_000);
  for (const args of [
    ['user', 'add', 'root:rootpw'],
    ['role', 'add', 'app'],
    ['role', 'grant-permission', 'app', 'readwrite', '--prefix=true', 'app/'],
    ['user', 'add', 'alice:alicepw'],
    ['user', 'grant-role', 'alice', 'app'],
    ['auth', 'enable'],
  ]) {
    const r = await etcdctl(endpoint(leader), args);
    if (r.code !== 0) throw new Error(`etcdctl ${args.join(' ')}: ${r.stderr}`);
  }
}, 60_000);

afterAll(async () => {
  for (const l of listeners.values()) await l.close();
  for (const kv of kvs.values()) await kv.stop();
});

const learnerIsVoter = () => kvs.get(leader)!.status().confState.voters.includes(learner);

describe('MemberPromote through a follower with auth enabled', () => {
  it('refuses a caller without a token and a non-root user, at the follower and when forwarded', async () => {
    const anonymous = await etcdctl(endpoint(follower), ['member', 'promote', learner.toString(16)]);
    expect(errorLine(anonymous.stderr)).toBe('Error: etcdserver: user name is empty');
    const alice = await etcdctl(endpoint(follower), ['--user', 'alice:alicepw', 'member', 'promote', learner.toString(16)]);
    expect(errorLine(alice.stderr)).toBe('Error: etcdserver: permission denied');
    expect(learnerIsVoter()).toBe(false);
  });

  it("promotes the learner for root, the follower forwarding root's token to the leader", async () => {
    expect(kvs.get(leader)!.isLeader()).toBe(true);
    const r = await etcdctl(endpoint(follower), ['--user', 'root:rootpw', 'member', 'promote', learner.toString(16)]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(new RegExp(`^Member\\s+${learner.toString(16)} promoted in cluster`));
    expect(learnerIsVoter()).toBe(true);
  });
});
