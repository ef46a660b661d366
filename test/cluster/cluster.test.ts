// Three real meshkv processes on 127.0.0.1, driven with the real etcdctl: a cluster forms, a
// killed leader is replaced without losing an acknowledged write, and a wiped member is
// removed, re-added and caught up from a snapshot. The tests share one cluster and run in order.

import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { etcdctl, requireEtcdctl } from '../etcd-api/harness.ts';
import { addMember, endpointStatus, eventually, Processes, ready, type MemberSpec, type Proc } from './processes.ts';
import { freePort } from '../helpers/processes.ts';
import { clusterIdOf, memberIdOf } from '../../adapters/node/config.ts';

/** Small, so that a member away for a few hundred writes must catch up from a snapshot. */
const snapshotCount = 20;
/** The member's default election timeout is 10 ticks of 100 ms. */
const electionTimeoutMs = 1000;

const procs = new Processes();
let specs: MemberSpec[] = [];
const running = new Map<string, Proc>();

function startMember(spec: MemberSpec, cluster: MemberSpec[], extra: string[] = []): Proc {
  const p = procs.start(spec, cluster, ['--snapshot-count', String(snapshotCount), ...extra]);
  running.set(spec.name, p);
  return p;
}

async function leaderOf(endpoints: string[]): Promise<{ leader: number; statuses: { endpoint: string; memberId: number; leader: number }[] } | null> {
  const statuses = [];
  for (const endpoint of endpoints) {
    const s = await endpointStatus(endpoint);
    if (s === null || s.leader === 0) return null;
    statuses.push({ endpoint, ...s });
  }
  const leaders = new Set(statuses.map((s) => s.leader));
  return leaders.size === 1 ? { leader: statuses[0].leader, statuses } : null;
}

beforeAll(async () => {
  requireEtcdctl();
  specs = [await procs.spec('m1'), await procs.spec('m2'), await procs.spec('m3')];
  for (const s of specs) startMember(s, specs);
  for (const p of running.values()) await ready(p);
}, 60_000);

beforeEach(({ onTestFailed }) => {
  // A CI log then shows what each member did, the only clue to a failure that needs load.
  onTestFailed(() => {
    for (const p of running.values()) console.log(`--- ${p.spec.name}, last 80 log lines:\n${p.logs.slice(-80).join('\n')}`);
  });
});

afterAll(async () => {
  await procs.cleanup();
});

describe('a three-process cluster', () => {
  it('lists three members, reads on every member what was written on one, and agrees on one leader', async () => {
    const endpoints = [...running.values()].map((p) => p.endpoint);
    // Client URLs appear once each member's publish has applied.
    const list = await eventually(
      'every member to publish its client URL',
      async () => {
        const r = await etcdctl(endpoints[0], ['member', 'list']);
        const lines = r.stdout.trim().split('\n');
        return lines.length === 3 && lines.every((l) => /, started, m\d, http:\/\/127\.0\.0\.1:\d+, http:\/\/127\.0\.0\.1:\d+, false$/.test(l)) && lines;
      },
      10_000,
    );
    expect(list.map((l) => l.split(', ')[2]).sort()).toEqual(['m1', 'm2', 'm3']);

    expect(await etcdctl(endpoints[0], ['put', 'greeting', 'hello'])).toMatchObject({ code: 0, stdout: 'OK\n' });
    for (const e of endpoints.slice(1)) expect((await etcdctl(e, ['get', 'greeting'])).stdout).toBe('greeting\nhello\n');

    const agreed = await eventually('one leader seen by all', () => leaderOf(endpoints), 5000);
    expect(agreed.statuses.filter((s) => s.memberId === agreed.leader)).toHaveLength(1);
  }, 60_000);

  it('survives kill -9 of the leader mid-load without losing an acknowledged write; the killed member catches up after a restart', async () => {
    const endpoints = [...running.values()].map((p) => p.endpoint);
    const { leader, statuses } = (await eventually('a leader', () => leaderOf(endpoints), 5000))!;
    const leaderEndpoint = statuses.find((s) => s.memberId === leader)!.endpoint;
    const leaderProc = [...running.values()].find((p) => p.endpoint === leaderEndpoint)!;
    const followers = endpoints.filter((e) => e !== leaderEndpoint);

    const acknowledged: string[] = [];
    let loading = true;
    const load = (async () => {
      for (let i = 0; loading; i++) {
        const key = `load/${String(i).padStart(5, '0')}`;
        const r = await etcdctl(followers.join(','), ['put', key, `v${i}`, '--command-timeout=3s']);
        if (r.code === 0) acknowledged.push(key);
      }
    })();
    await eventually('some writes before the kill', async () => acknowledged.length >= 10, 20_000);
    const killedAt = Date.now();
    await procs.kill9(leaderProc);

    const next = await eventually(
      'a new leader among the survivors',
      async () => {
        const l = await leaderOf(followers);
        return l && l.leader !== leader ? l : null;
      },
      8 * electionTimeoutMs,
    );
    expect(next.leader).not.toBe(leader);
    expect(Date.now() - killedAt).toBeLessThan(8 * electionTimeoutMs);
    const beforeResume = acknowledged.length;
    await eventually('writes acknowledged under the new leader', async () => acknowledged.length >= beforeResume + 10, 20_000);
    loading = false;
    await load;

    const got = await etcdctl(followers[0], ['get', 'load/', '--prefix', '--keys-only']);
    const keys = new Set(got.stdout.split('\n').filter((l) => l !== ''));
    expect(acknowledged.filter((k) => !keys.has(k))).toEqual([]);

    // The killed member restarts from its data dir and catches up.
    const restarted = startMember(leaderProc.spec, specs);
    await ready(restarted);
    const last = acknowledged[acknowledged.length - 1];
    const expected = `${last}\nv${Number(last.slice(5))}\n`;
    await eventually(
      'the restarted member to serve the latest value locally',
      async () => (await etcdctl(restarted.endpoint, ['get', last, '--consistency=s'])).stdout === expected,
      15_000,
    );
  }, 90_000);

  it('removes a wiped follower, adds it back under a new name, and catches it up from a snapshot', async () => {
    const endpoints = [...running.values()].map((p) => p.endpoint);
    const { leader, statuses } = (await eventually('a leader', () => leaderOf(endpoints), 5000))!;
    const victimStatus = statuses.find((s) => s.memberId !== leader)!;
    const victim = [...running.values()].find((p) => p.endpoint === victimStatus.endpoint)!;
    await procs.kill9(victim);
    running.delete(victim.spec.name);
    const survivors = [...running.values()];

    const removed = await etcdctl(survivors[0].endpoint, ['member', 'remove', victimStatus.memberId.toString(16)]);
    expect(removed.stdout).toMatch(/^Member +[0-9a-f]+ removed from cluster +[0-9a-f]+\n$/);
    expect((await etcdctl(survivors[0].endpoint, ['member', 'list'])).stdout.trim().split('\n')).toHaveLength(2);

    // Enough writes that the log the newcomer needs has been compacted behind a snapshot; four
    // etcdctl processes at a time (one at a time spent most of this test starting them).
    const lanes = 4;
    await Promise.all(
      Array.from({ length: lanes }, async (_, lane) => {
        for (let i = lane; i < 5 * snapshotCount; i += lanes) {
          expect((await etcdctl(survivors[i % 2].endpoint, ['put', `after-remove/${i}`, `w${i}`])).code).toBe(0);
        }
      }),
    );

    const spec = await procs.spec(`${victim.spec.name}-again`);
    const added = await addMember(survivors[1].endpoint, [spec.name, `--peer-urls=http://127.0.0.1:${spec.peerPort}`]);
    expect(added.stdout).toContain('ETCD_INITIAL_CLUSTER_STATE="existing"');
    const newId = /Member +([0-9a-f]+) added/.exec(added.stdout)![1];
    expect(newId).not.toBe(victimStatus.memberId.toString(16));

    const cluster = [...survivors.map((p) => p.spec), spec];
    const joiner = startMember(spec, cluster, ['--initial-cluster-state', 'existing']);
    await ready(joiner);
    const lastKey = `after-remove/${5 * snapshotCount - 1}`;
    await eventually(
      'the new member to serve the latest value locally',
      async () => (await etcdctl(joiner.endpoint, ['get', lastKey, '--consistency=s'])).stdout === `${lastKey}\nw${5 * snapshotCount - 1}\n`,
      15_000,
    );
    expect(joiner.logs.some((l) => l.includes('restored snapshot'))).toBe(true);
    // Earlier data came with the snapshot too.
    expect((await etcdctl(joiner.endpoint, ['get', 'greeting', '--consistency=s'])).stdout).toBe('greeting\nhello\n');
    const list = await eventually(
      'the new member to publish its name',
      async () => {
        const out = (await etcdctl(survivors[0].endpoint, ['member', 'list'])).stdout;
        return out.includes(`${newId}, started, ${spec.name}, `) && out;
      },
      10_000,
    );
    expect(list.trim().split('\n')).toHaveLength(3);
    // The new member takes writes (forwarded to the leader) and linearizable reads.
    expect((await etcdctl(joiner.endpoint, ['put', 'from-new', 'yes'])).code).toBe(0);
    expect((await etcdctl(survivors[0].endpoint, ['get', 'from-new'])).stdout).toBe('from-new\nyes\n');
  }, 90_000);

  it('reports the founding cluster id on every member after the replacement, and after restarts', async () => {
    // etcdctl prints uint64 ids as JSON numbers, beyond 2^53: read them as text.
    const clusterIds = async (): Promise<Map<string, string>> => {
      const r = await etcdctl([...running.values()][0].endpoint, ['endpoint', 'status', '--cluster', '-w', 'json', '--command-timeout=3s']);
      expect(r.code, r.stderr).toBe(0);
      return new Map([...r.stdout.matchAll(/"Endpoint":"([^"]+)".*?"cluster_id":(\d+)/g)].map((m) => [m[1], m[2]]));
    };
    // The id etcd fixes when the cluster is founded, from the founding members (m1, m2, m3).
    const foundingId = clusterIdOf(specs.map((s) => memberIdOf(s.name)));
    const seen = await clusterIds();
    expect(seen.size).toBe(3);
    expect(new Set(seen.values())).toEqual(new Set([foundingId]));

    // The member added after the replacement learned the id from the cluster and kept it;
    // a founder keeps it too.
    const joiner = [...running.values()].find((p) => p.spec.name.endsWith('-again'))!;
    const founder = [...running.values()].find((p) => !p.spec.name.endsWith('-again'))!;
    const cluster = [...running.values()].map((p) => p.spec);
    for (const p of [joiner, founder]) {
      await procs.kill9(p);
      const again = startMember(p.spec, p === joiner ? cluster : specs, p === joiner ? ['--initial-cluster-state', 'existing'] : []);
      await ready(again);
    }
    const afterRestart = await eventually('every member to answer endpoint status', async () => {
      const ids = await clusterIds();
      return ids.size === 3 && ids;
    }, 15_000);
    expect(new Set(afterRestart.values())).toEqual(new Set([foundingId]));
  }, 90_000);

  it('serves lease keep-alives on a follower by forwarding them to the leader', async () => {
    const endpoints = [...running.values()].map((p) => p.endpoint);
    const { leader, statuses } = (await eventually('a leader', () => leaderOf(endpoints), 5000))!;
    const follower = statuses.find((s) => s.memberId !== leader)!.endpoint;
    const granted = await etcdctl(follower, ['lease', 'grant', '60']);
    const lease = /lease ([0-9a-f]+) granted/.exec(granted.stdout)![1];
    expect(await etcdctl(follower, ['lease', 'keep-alive', '--once', lease])).toMatchObject({ code: 0, stdout: `lease ${lease} keepalived with TTL(60)\n` });
  }, 30_000);

  it('adds a learner, refuses what etcd refuses, promotes it once caught up, updates its peer URLs, and removes it', async () => {
    const endpoints = [...running.values()].map((p) => p.endpoint);
    const { leader, statuses } = (await eventually('a leader', () => leaderOf(endpoints), 5000))!;
    const follower = statuses.find((s) => s.memberId !== leader)!.endpoint;
    const spec = await procs.spec('learner');
    const added = await addMember(follower, [spec.name, '--learner', `--peer-urls=http://127.0.0.1:${spec.peerPort}`]);
    const id = /Member +([0-9a-f]+) added/.exec(added.stdout)![1];
    expect((await etcdctl(follower, ['member', 'add', 'dup', `--peer-urls=http://127.0.0.1:${spec.peerPort}`])).stderr).toContain('Error: etcdserver: Peer URLs already exists');
    expect((await etcdctl(follower, ['member', 'remove', 'abc123'])).stderr).toContain('Error: etcdserver: member not found');
    expect((await etcdctl(follower, ['member', 'promote', leader.toString(16)])).stderr).toContain('Error: etcdserver: can only promote a learner member');
    // Not started yet, so not in sync: the leader refuses, and the follower passes that on.
    expect((await etcdctl(follower, ['member', 'promote', id])).stderr).toContain(
      'Error: etcdserver: can only promote a learner member which is in sync with leader',
    );

    const cluster = [...[...running.values()].map((p) => p.spec), spec];
    const learner = startMember(spec, cluster, ['--initial-cluster-state', 'existing']);
    await ready(learner);
    await eventually(
      'the learner to see itself as one',
      async () => JSON.parse((await etcdctl(learner.endpoint, ['endpoint', 'status', '-w', 'json'])).stdout)[0].Status.isLearner === true,
      10_000,
    );
    await eventually('the promotion to be accepted', async () => (await etcdctl(follower, ['member', 'promote', id])).code === 0, 15_000);
    const line = (await etcdctl(follower, ['member', 'list'])).stdout.split('\n').find((l) => l.startsWith(`${id},`));
    expect(line).toMatch(/, false$/);

    // MemberUpdate replaces the peer URLs in every member's table (and so whom they dial).
    const listsPeerUrl = (url: string, members: Proc[]) => async () => {
      for (const p of members) {
        if (!(await etcdctl(p.endpoint, ['member', 'list'])).stdout.includes(`${id}, started, learner, ${url}, `)) return false;
      }
      return true;
    };
    const moved = `http://127.0.0.1:${await freePort()}`;
    const update = await etcdctl(follower, ['member', 'update', id, `--peer-urls=${moved}`]);
    expect(update.stdout).toMatch(new RegExp(`^Member +${id} updated in cluster`));
    // Nobody listens at the new URL, so the learner itself does not hear of it.
    const others = [...running.values()].filter((p) => p !== learner);
    // Each applies it with the leader's next append or heartbeat (100 ms); most of the wait
    // is for the etcdctl processes of each poll, three of them, slow on a loaded machine.
    await eventually('every other member to list the new peer URL', listsPeerUrl(moved, others), 10_000);
    // Back to where it listens: the others dial it there again, so it hears of its removal.
    const home = `http://127.0.0.1:${spec.peerPort}`;
    expect((await etcdctl(follower, ['member', 'update', id, `--peer-urls=${home}`])).code).toBe(0);
    await eventually('every member to list the old peer URL again', listsPeerUrl(home, [...running.values()]), 10_000);

    const removed = await etcdctl(follower, ['member', 'remove', id]);
    expect(removed.code).toBe(0);
    running.delete(spec.name);
    for (const p of running.values()) expect((await etcdctl(p.endpoint, ['member', 'list'])).stdout).not.toContain(`${id},`);
    await procs.kill9(learner);
  }, 60_000);
});
