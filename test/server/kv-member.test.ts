// The MVCC store replicated by three in-process members: what an etcd user observes.

import { afterEach, describe, expect, it } from 'vitest';
import { MemoryHub } from '../../adapters/transport/memory.ts';
import { MvccError } from '../../src/mvcc/errors.ts';
import { CompareResult, CompareTarget, type WatchResponse } from '../../src/mvcc/types.ts';
import { ConfChangeTransition, ConfChangeType } from '../../src/raft/confchange.ts';
import { StateRole } from '../../src/raft/types.ts';
import { KvMember } from '../../src/server/kv-member.ts';
import { startKvMember, steadyTimings } from '../helpers/kv-members.ts';
import { waitFor } from '../helpers/wait.ts';

const enc = new TextEncoder();
const dec = new TextDecoder();
const b = (s: string) => enc.encode(s);

const running: KvMember[] = [];
afterEach(async () => {
  for (const m of running.splice(0)) await m.stop();
});

/**
 * Steady timings: three members share this process's event loop, and a stall of a few ticks
 * on a loaded machine (delivered as catch-up ticks) would elect a new leader mid-test and lose
 * the proposals in flight to the old one, which then time out, as etcd's do.
 */
async function cluster(): Promise<KvMember[]> {
  const hub = new MemoryHub();
  const members = await Promise.all([1, 2, 3].map((id) => startKvMember(hub, id, [1, 2, 3], steadyTimings)));
  running.push(...members);
  return members;
}


describe('kv member', () => {
  it('puts on one member and reads linearizably on another, with etcd revisions', async () => {
    const ms = await cluster();
    const leader = await waitFor('a leader', () => ms.find((m) => m.member.status().role === StateRole.Leader));
    const follower = ms.find((m) => m !== leader)!;
    const put = await follower.put({ key: b('foo'), value: b('bar') });
    expect(put.header.revision).toBe(2);
    const got = await ms[2].range({ key: b('foo') });
    expect(got.kvs.map((kv) => [dec.decode(kv.key), dec.decode(kv.value), kv.createRevision, kv.modRevision, kv.version])).toEqual([
      ['foo', 'bar', 2, 2, 1],
    ]);
    const second = await leader.put({ key: b('foo'), value: b('baz'), prevKv: true });
    expect(dec.decode(second.prevKv!.value)).toBe('bar');
    expect(second.header.revision).toBe(3);
  });

  it('compare-and-swap txn succeeds once and reports the failure branch after', async () => {
    const ms = await cluster();
    await waitFor('a leader', () => ms.some((m) => m.member.isLeader()));
    await ms[0].put({ key: b('k'), value: b('v1') });
    const cas = (expectRev: number) =>
      ms[1].txn({
        compare: [{ key: b('k'), target: CompareTarget.MOD, result: CompareResult.EQUAL, modRevision: expectRev }],
        success: [{ requestPut: { key: b('k'), value: b('v2') } }],
        failure: [{ requestRange: { key: b('k') } }],
      });
    const first = await cas(2);
    expect(first.succeeded).toBe(true);
    const again = await cas(2);
    expect(again.succeeded).toBe(false);
  });

  it('refuses an empty key with etcd\'s error before proposing it', async () => {
    const ms = await cluster();
    await expect(ms[0].put({ key: new Uint8Array(0), value: b('x') })).rejects.toThrow('etcdserver: key is not provided');
    await expect(ms[0].put({ key: new Uint8Array(0), value: b('x') })).rejects.toBeInstanceOf(MvccError);
  });

  it('a watch on a follower sees writes made through the leader, in order', async () => {
    const ms = await cluster();
    const leader = await waitFor('a leader', () => ms.find((m) => m.member.isLeader()));
    const follower = ms.find((m) => m !== leader)!;
    const seen: WatchResponse[] = [];
    const stream = follower.mvcc.watchHub.openStream({ send: (r) => (seen.push(r), true) });
    stream.watch({ key: b('w/'), rangeEnd: b('w0') });
    for (let i = 0; i < 5; i++) await leader.put({ key: b(`w/${i}`), value: b(String(i)) });
    await waitFor('five events', () => seen.flatMap((r) => r.events).length === 5);
    expect(seen.flatMap((r) => r.events).map((e) => dec.decode(e.kv.key))).toEqual(['w/0', 'w/1', 'w/2', 'w/3', 'w/4']);
  });

  it('an expired lease deletes its keys on every member, decided by the leader', async () => {
    const ms = await cluster();
    const leader = await waitFor('a leader', () => ms.find((m) => m.member.isLeader()));
    const grant = await ms[1].leaseGrant({ TTL: 1, ID: 0n });
    await ms[2].put({ key: b('ephemeral'), value: b('x'), lease: grant.ID });
    const alive = await leader.leaseKeepAlive(grant.ID);
    expect(alive.TTL).toBe(1);
    await waitFor('the key to vanish everywhere', () => ms.every((m) => m.mvcc.range({ key: b('ephemeral') }).kvs.length === 0), 8000);
    await expect(ms[0].leaseTimeToLive(grant.ID, false)).resolves.toMatchObject({ TTL: -1 });
  });

  it('replicas that applied the same entries report the same HashKV', async () => {
    const ms = await cluster();
    await waitFor('a leader', () => ms.some((m) => m.member.isLeader()));
    for (let i = 0; i < 20; i++) await ms[i % 3].put({ key: b(`h${i % 7}`), value: b(`v${i}`) });
    await ms[0].deleteRange({ key: b('h3') });
    await Promise.all(ms.map((m) => m.range({ key: b('h0') })));
    const hashes = ms.map((m) => m.hashKV(0));
    expect(new Set(hashes.map((h) => h.hash)).size).toBe(1);
    expect(hashes[0].hashRevision).toBe(22);
  });
});

describe('kv member snapshots', () => {
  it('serializes snapshots in the background and a new member catches up from one with an equal HashKV', async () => {
    const hub = new MemoryHub();
    const ids = [1, 2, 3];
    // etcd's timings (100 ms ticks, a 1 s election timeout), slower than cluster()'s: a batch
    // of 100 puts stalls the event loop the four members share, and on a loaded machine (load
    // 40) stalls of over a second, delivered as catch-up ticks, made the leader step down
    // (check-quorum) and the next one too, mid-batch; the puts in flight to a deposed leader
    // are lost and time out, as etcd's do.
    const timings = { tickMs: 100, electionTicks: 10, requestTimeoutMs: 10_000 };
    const start = (id: number, peers: number[]) => startKvMember(hub, id, peers, { snapshotEntries: 100, snapshotKeepEntries: 0, ...timings });
    const ms = await Promise.all(ids.map((id) => start(id, ids)));
    running.push(...ms);
    const leader = await waitFor('a leader', () => ms.find((m) => m.member.isLeader()));
    // 4000 records: the snapshot goes through the member's background path (an O(1) view of
    // the store, serialized frame by frame on ticks) before the joiner receives it.
    for (let i = 0; i < 40; i++) {
      await Promise.all(Array.from({ length: 100 }, (_, j) => leader.put({ key: b(`k/${i}/${j}`), value: b('x'.repeat(64)) })));
    }
    const joiner = await start(4, []);
    running.push(joiner);
    await leader.member.changeMembership({
      transition: ConfChangeTransition.Auto,
      changes: [{ type: ConfChangeType.AddLearnerNode, memberId: 4 }],
      context: null,
    });
    await waitFor('the learner caught up', () => joiner.mvcc.currentRevision === leader.mvcc.currentRevision, 15_000);
    // It received the leader's snapshot (it makes none of its own this early).
    expect(joiner.member.snapshotBytes()).toBeGreaterThan(0);
    expect(joiner.mvcc.keyCount).toBe(4000);
    expect(joiner.hashKV(0)).toEqual(leader.hashKV(0));
  }, 60_000);
});
