// A learner catching up from a leader whose latest snapshot predates that leader's own addition.
// The snapshot's member table then lacks the leader; the learner restores it and must still
// answer that leader, whose appends bring the entry that adds it. Before the fix the learner
// forgot the leader's address on restoring and stalled for good (CI, session 8: the learner
// never saw itself as one). Real processes and the real etcdctl, as a user adds a member.

import { afterAll, beforeEach, expect, it } from 'vitest';
import { etcdctl, requireEtcdctl } from '../etcd-api/harness.ts';
import { addMember, endpointStatus, eventually, Processes, ready, type MemberSpec, type Proc } from './processes.ts';

const procs = new Processes();
const started: Proc[] = [];

function start(spec: MemberSpec, cluster: MemberSpec[], snapshotCount: number, extra: string[] = []): Proc {
  const p = procs.start(spec, cluster, ['--snapshot-count', String(snapshotCount), ...extra]);
  started.push(p);
  return p;
}

beforeEach(({ onTestFailed }) => {
  onTestFailed(() => {
    for (const p of started) console.log(`--- ${p.spec.name}, last 80 log lines:\n${p.logs.slice(-80).join('\n')}`);
  });
});

afterAll(async () => {
  await procs.cleanup();
});

it('a learner catches up from a leader added after the snapshot it sends', async () => {
  requireEtcdctl();
  const founders = [await procs.spec('a'), await procs.spec('b'), await procs.spec('c')];
  // Small, so that the founders compact their logs and a joiner gets a snapshot.
  for (const s of founders) start(s, founders, 20);
  for (const p of started) await ready(p);
  const endpoints = started.map((p) => p.endpoint);
  const lanes = 4;
  await Promise.all(
    Array.from({ length: lanes }, async (_, lane) => {
      for (let i = lane; i < 60; i += lanes) expect((await etcdctl(endpoints[i % 3], ['put', `k/${i}`, `v${i}`])).code).toBe(0);
    }),
  );

  // d joins from a snapshot taken before its own addition, and never takes one of its own.
  const d = await procs.spec('d');
  const addedD = await addMember(endpoints[0], [d.name, `--peer-urls=http://127.0.0.1:${d.peerPort}`]);
  const dId = /Member +([0-9a-f]+) added/.exec(addedD.stdout)![1];
  const dProc = start(d, [...founders, d], 1_000_000, ['--initial-cluster-state', 'existing']);
  await ready(dProc);
  const restored = await eventually('d to restore a snapshot', async () => dProc.logs.find((l) => l.includes('restored snapshot at')), 15_000);
  await eventually('d to serve the last write', async () => (await etcdctl(dProc.endpoint, ['get', 'k/59', '--consistency=s'])).stdout === 'k/59\nv59\n', 15_000);

  // d leads; its latest snapshot is the one it restored, whose table lacks d.
  const all = [...endpoints, dProc.endpoint].join(',');
  await eventually(
    'd to take over leadership',
    async () => {
      if ((await endpointStatus(dProc.endpoint))?.leader.toString(16) === dId) return true;
      // etcdctl finds the leader among the endpoints and asks it to hand over.
      await etcdctl(all, ['move-leader', dId]);
      return false;
    },
    20_000,
  );

  const e = await procs.spec('e');
  const addedE = await addMember(dProc.endpoint, [e.name, '--learner', `--peer-urls=http://127.0.0.1:${e.peerPort}`]);
  const eId = /Member +([0-9a-f]+) added/.exec(addedE.stdout)![1];
  const eProc = start(e, [...founders, d, e], 20, ['--initial-cluster-state', 'existing']);
  await ready(eProc);
  await eventually(
    'the learner to see itself as one',
    async () => JSON.parse((await etcdctl(eProc.endpoint, ['endpoint', 'status', '-w', 'json'])).stdout)[0]?.Status.isLearner === true,
    20_000,
  );
  // It restored the snapshot d restored (it predates d's addition), and then d's appends.
  const index = /restored snapshot at (\d+)/.exec(restored)![1];
  expect(eProc.logs.some((l) => l.includes(`restored snapshot at ${index} `))).toBe(true);
  expect((await etcdctl(eProc.endpoint, ['get', 'k/59', '--consistency=s'])).stdout).toBe('k/59\nv59\n');
  expect((await etcdctl(dProc.endpoint, ['member', 'list'])).stdout).toContain(`${eId}, started, e, `);
}, 120_000);
