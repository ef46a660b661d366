// Members whose store sits on an asynchronous backend (as tabs on IndexedDB), in process: writes
// with reads inside (txn VALUE compares, prev_kv), ranges, a watch catching up from history, and
// a joiner that catches up from a snapshot the leader must encode from its asynchronous backend.

import { afterEach, describe, expect, it } from 'vitest';
import { MemoryHub } from '../../adapters/transport/memory.ts';
import { PrefetchedBackend } from '../../src/backend/prefetched.ts';
import { CompareResult, CompareTarget, type WatchResponse } from '../../src/mvcc/types.ts';
import { ConfChangeTransition, ConfChangeType } from '../../src/raft/confchange.ts';
import type { MemberId } from '../../src/raft/types.ts';
import type { KvMember } from '../../src/server/kv-member.ts';
import { startKvMember } from '../helpers/kv-members.ts';
import { SlowBackend } from '../helpers/slow-backend.ts';
import { waitFor } from '../helpers/wait.ts';

const b = (s: string) => new TextEncoder().encode(s);
const text = (u: Uint8Array | undefined) => (u === undefined ? undefined : new TextDecoder().decode(u));

const running: KvMember[] = [];
afterEach(async () => {
  for (const m of running.splice(0)) await m.stop();
});

async function start(hub: MemoryHub, id: MemberId, peers: MemberId[]): Promise<KvMember> {
  const backend = await PrefetchedBackend.open(new SlowBackend());
  const m = await startKvMember(hub, id, peers, {
    mvcc: { backend, lessor: { minTtlSeconds: 1 } },
    snapshotEntries: 100,
    snapshotKeepEntries: 0,
    // Generous: the machine running the tests may be loaded (5 ms ticks lose leaders there).
    tickMs: 50,
    requestTimeoutMs: 20_000,
  });
  backend.openingDone();
  running.push(m);
  return m;
}

describe('kv members on an asynchronous backend', () => {
  it('apply txns and prev_kv, serve ranges and watch catch-ups, and send a joiner a snapshot from the backend', async () => {
    const hub = new MemoryHub();
    const ms = await Promise.all([1, 2, 3].map((id) => start(hub, id, [1, 2, 3])));
    const leader = await waitFor('a leader', () => ms.find((m) => m.member.isLeader()), 20_000);
    for (let i = 0; i < 300; i++) await leader.put({ key: b(`k/${i % 50}`), value: b(`v${i}`) });
    const cas = await leader.txn({
      compare: [{ key: b('k/7'), target: CompareTarget.VALUE, result: CompareResult.EQUAL, value: b('v257') }],
      success: [{ requestPut: { key: b('k/7'), value: b('swapped'), prevKv: true } }],
      failure: [],
    });
    expect(cas.succeeded).toBe(true);
    const prev = await leader.put({ key: b('k/8'), value: b('again'), prevKv: true });
    expect(text(prev.prevKv?.value)).toBe('v258');
    const follower = ms.find((m) => m !== leader)!;
    const range = await follower.range({ key: b('k/7') });
    expect(text(range.kvs[0].value)).toBe('swapped');

    // A watcher from an old revision catches up through fetched history.
    const seen: WatchResponse[] = [];
    follower.mvcc.watchHub.openStream({ send: (r) => (seen.push(r), true) }).watch({ key: b('k/1'), startRevision: 2, prevKv: true });
    await waitFor('the watcher to catch up', () => seen.flatMap((r) => r.events).length >= 6, 20_000);
    expect(seen.flatMap((r) => r.events).map((e) => text(e.kv.value))).toEqual(['v1', 'v51', 'v101', 'v151', 'v201', 'v251']);

    // Past snapshotEntries with the log cut: a learner can only catch up from a snapshot, which the
    // leader encodes from its asynchronous backend (sent once encoded, on a resend).
    const joiner = await start(hub, 4, []);
    await leader.member.changeMembership({ transition: ConfChangeTransition.Auto, changes: [{ type: ConfChangeType.AddLearnerNode, memberId: 4 }], context: null });
    await waitFor('the learner to catch up', () => joiner.mvcc.currentRevision === leader.mvcc.currentRevision, 30_000);
    expect(joiner.mvcc.keyCount).toBe(50);
    expect(text((await joiner.range({ key: b('k/8'), serializable: true })).kvs[0].value)).toBe('again');
  }, 90_000);
});
