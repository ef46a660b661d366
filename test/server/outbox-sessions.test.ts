// Exactly-once outbox entries (src/server/outbox-sessions.ts) on real in-process members: a
// retried entry is applied once, on every replica, after snapshots, after a restart of a member
// on fs-wal + LMDB, after a snapshot streamed from LMDB, and the session table stays within its
// bound, in memory and in the backend.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LmdbBackend } from '../../adapters/backend/lmdb.ts';
import { MemoryBackend } from '../../src/backend/memory.ts';
import { PrefetchedBackend } from '../../src/backend/prefetched.ts';
import { SlowBackend } from '../helpers/slow-backend.ts';
import { BoltReader } from '../../src/backend/bbolt.ts';
import { encodeSnapshotFile } from '../../adapters/etcd-api/snapshot-file.ts';
import { systemClock } from '../../adapters/clock/system.ts';
import { FsWalStorage } from '../../adapters/storage/fs-wal/index.ts';
import { MemoryHub } from '../../adapters/transport/memory.ts';
import { CompareResult, CompareTarget, type TxnRequest } from '../../src/mvcc/types.ts';
import { silentLogger } from '../../src/raft/config.ts';
import { KvMember, type KvMemberOptions } from '../../src/server/kv-member.ts';
import { OutboxSessions, outboxSessionKey, outboxSessionsMax, type OutboxOutcome } from '../../src/server/outbox-sessions.ts';
import type { MemberId } from '../../src/raft/types.ts';
import { ConfChangeTransition, ConfChangeType } from '../../src/raft/confchange.ts';
import { prng } from '../raft/prng.ts';
import { etcdTimings, startKvMember, steadyTimings, waitForAgreedLeader } from '../helpers/kv-members.ts';
import { waitFor } from '../helpers/wait.ts';

const b = (s: string) => new TextEncoder().encode(s);
const text = (u: Uint8Array) => new TextDecoder().decode(u);
const running: KvMember[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const m of running.splice(0)) await m.stop();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** put key=value if key's mod_revision is still `modRevision` (0: the key must not exist). */
function guardedPut(key: string, value: string, modRevision: number): TxnRequest {
  return {
    compare: [{ key: b(key), target: CompareTarget.MOD, result: CompareResult.EQUAL, modRevision }],
    success: [{ requestPut: { key: b(key), value: b(value) } }],
    failure: [{ requestRange: { key: b(key) } }],
  };
}

/**
 * A member on fs-wal + LMDB in `dir`, snapshots every 50 entries (the store stays in LMDB).
 * `timings`: steady by default; etcd's for a cluster that must keep one leader throughout.
 */
async function startOnLmdb(dir: string, hub: MemoryHub, id: MemberId, peers: MemberId[], timings: Partial<KvMemberOptions> = steadyTimings): Promise<{ kv: KvMember; backend: LmdbBackend }> {
  const storage = await FsWalStorage.open(join(dir, 'wal'), { logger: silentLogger });
  const backend = LmdbBackend.open(join(dir, 'backend'));
  const kv = await KvMember.start({
    id,
    peers,
    clock: systemClock,
    storage,
    transport: hub.connect(id),
    random: prng(11 + id),
    // Slow enough ticks that a loaded machine does not churn leaders (and drop proposals) mid-test.
    ...timings,
    snapshotEntries: 50,
    snapshotKeepEntries: 10,
    mvcc: { backend },
  });
  return { kv, backend };
}

/** What `m` remembers of each client's entries 1..seqMax (a retry is answered with it). */
function sessionTable(m: KvMember, clients: string[], seqMax: number): (OutboxOutcome | null)[][] {
  return clients.map((c) => Array.from({ length: seqMax }, (_, i) => m.outboxApplied(c, i + 1)));
}

describe('outbox sessions', () => {
  it('applies a retried entry once on every replica and answers the retry with the first outcome', async () => {
    const hub = new MemoryHub();
    const ids = [1, 2, 3];
    // etcd's timings: at 5 ms ticks (50 ms elections) a loaded machine churned leaders throughout
    // this test, and at 200 ms elections still now and then; a proposal a leader change drops
    // fails only at its request timeout (session 11, headroom).
    const ms = await Promise.all(ids.map((id) => startKvMember(hub, id, ids, etcdTimings)));
    running.push(...ms);
    const leader = await waitForAgreedLeader(ms);
    const follower = ms.find((m) => m !== leader)!;

    const first = await follower.proposeOutboxEntry({ client: 'tab-a', seq: 1, txn: guardedPut('k', 'v1', 0) });
    expect(first.duplicate).toBe(false);
    expect(first.outcome).toEqual({ kind: 'committed', revision: 2 });
    // The crash-between-propose-and-answer case: the same entry again, from another member.
    const retry = await leader.proposeOutboxEntry({ client: 'tab-a', seq: 1, txn: guardedPut('k', 'v1', 0) });
    expect(retry).toEqual({ outcome: { kind: 'committed', revision: 2 }, duplicate: true, txn: null });
    // A guard that fails is a conflict; its retry is too, and the store did not move.
    const conflict = await follower.proposeOutboxEntry({ client: 'tab-a', seq: 2, txn: guardedPut('k', 'v2', 0) });
    expect(conflict.outcome).toEqual({ kind: 'conflict', revision: 2 });
    // The failure branch read the current value, for the app to see.
    expect(conflict.txn?.responses).toMatchObject([{ responseRange: { kvs: [{ value: b('v1') }] } }]);
    expect((await leader.proposeOutboxEntry({ client: 'tab-a', seq: 2, txn: guardedPut('k', 'v2', 0) })).duplicate).toBe(true);
    // Another client's seq 1 is its own.
    expect((await leader.proposeOutboxEntry({ client: 'tab-b', seq: 1, txn: guardedPut('k', 'b', 2) })).outcome).toEqual({ kind: 'committed', revision: 3 });
    await waitFor('every replica applied', () => ms.every((m) => m.currentRevision === 3));
    for (const m of ms) {
      expect(m.outboxApplied('tab-a', 2)).toEqual({ kind: 'conflict', revision: 2 });
      expect(m.outboxApplied('tab-b', 1)).toEqual({ kind: 'committed', revision: 3 });
      expect(m.outboxApplied('tab-b', 2)).toBeNull();
      expect(text((await m.range({ key: b('k'), serializable: true })).kvs[0].value)).toBe('b');
    }
  });

  it('applies a batch in order, each entry with its own revision and outcome, retried entries once', async () => {
    const hub = new MemoryHub();
    const m = await startKvMember(hub, 1, [1]);
    running.push(m);
    await waitFor('leadership', () => m.isLeader());
    await m.proposeOutboxEntry({ client: 'tab-a', seq: 1, txn: guardedPut('a', '1', 0) });
    const results = await m.proposeOutboxBatch({
      client: 'tab-a',
      entries: [
        { seq: 1, txn: guardedPut('a', '1', 0) }, // a retry: answered, not applied
        { seq: 2, txn: guardedPut('b', '1', 0) },
        { seq: 3, txn: guardedPut('b', '2', 3) }, // guarded by seq 2's revision, in the same batch
        { seq: 4, txn: guardedPut('a', 'x', 0) }, // a conflict: a exists
      ],
    });
    expect(results.map((r) => [r.duplicate, r.outcome])).toEqual([
      [true, { kind: 'committed', revision: 2 }],
      [false, { kind: 'committed', revision: 3 }],
      [false, { kind: 'committed', revision: 4 }],
      [false, { kind: 'conflict', revision: 4 }],
    ]);
    expect(text((await m.range({ key: b('b') })).kvs[0].value)).toBe('2');
    // The whole batch again (a drain that crashed before the answer): each entry's own outcome,
    // seq 1 too, which this batch repeated from the one before (found by the simulator, seed 58).
    const again = await m.proposeOutboxBatch({ client: 'tab-a', entries: [1, 2, 3, 4].map((seq) => ({ seq, txn: guardedPut('z', 'never', 0) })) });
    expect(again.map((r) => [r.duplicate, r.outcome])).toEqual([
      [true, { kind: 'committed', revision: 2 }],
      [true, { kind: 'committed', revision: 3 }],
      [true, { kind: 'committed', revision: 4 }],
      [true, { kind: 'conflict', revision: 4 }],
    ]);
    expect((await m.range({ key: b('z') })).kvs).toEqual([]);
    await expect(m.proposeOutboxBatch({ client: 'tab-a', entries: [] })).rejects.toThrow('an outbox batch holds 1 to 64 entries, not 0');
  });

  it('refuses a bad client id or sequence number with a clear error', async () => {
    const hub = new MemoryHub();
    const m = await startKvMember(hub, 1, [1]);
    running.push(m);
    await waitFor('leadership', () => m.isLeader());
    await expect(m.proposeOutboxEntry({ client: '', seq: 1, txn: {} })).rejects.toThrow('outbox client id must be a string of 1 to 64 characters');
    await expect(m.proposeOutboxEntry({ client: 'c', seq: 0, txn: {} })).rejects.toThrow('outbox sequence number 0 is not a positive integer');
  });

  it('keeps its sessions in snapshots: a member that catches up from one still recognises a retry', async () => {
    const hub = new MemoryHub();
    const ids = [1, 2, 3];
    const start = (id: number, peers: number[]) => startKvMember(hub, id, peers, { ...etcdTimings, snapshotEntries: 20, snapshotKeepEntries: 0 });
    const ms = await Promise.all(ids.map((id) => start(id, ids)));
    running.push(...ms);
    const leader = await waitForAgreedLeader(ms);
    for (let seq = 1; seq <= 60; seq++) await leader.proposeOutboxEntry({ client: 'tab-a', seq, txn: guardedPut(`k${seq}`, 'v', 0) });
    const joiner = await start(4, []);
    running.push(joiner);
    await leader.member.changeMembership({ transition: ConfChangeTransition.Auto, changes: [{ type: ConfChangeType.AddLearnerNode, memberId: 4 }], context: null });
    await waitFor('the learner caught up', () => joiner.currentRevision === leader.currentRevision, 15_000);
    expect(joiner.member.snapshotBytes()).toBeGreaterThan(0);
    expect(joiner.outboxApplied('tab-a', 60)).toEqual({ kind: 'committed', revision: 61 });
    const retry = await leader.proposeOutboxEntry({ client: 'tab-a', seq: 60, txn: guardedPut('k60', 'v', 0) });
    expect(retry.duplicate).toBe(true);
    await waitFor('the joiner applied the retry', () => joiner.status().applied === leader.status().applied);
    expect(joiner.hashKV(0)).toEqual(leader.hashKV(0));
  });

  it('survives a restart on fs-wal and LMDB, entries replayed after the last snapshot included', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'meshkv-outbox-'));
    dirs.push(dir);
    const open = async () => {
      const storage = await FsWalStorage.open(join(dir, 'wal'), { logger: silentLogger });
      const backend = LmdbBackend.open(join(dir, 'backend'));
      const kv = await KvMember.start({
        id: 1,
        peers: [1],
        clock: systemClock,
        storage,
        transport: new MemoryHub().connect(1),
        random: prng(11),
        tickMs: 5,
        electionTicks: 10,
        snapshotEntries: 50,
        snapshotKeepEntries: 10,
        mvcc: { backend },
      });
      await waitFor('leadership', () => kv.isLeader());
      return { kv, backend };
    };
    let m = await open();
    // 70 entries: a snapshot at 50 or so, and entries after it that the restart replays.
    let last: OutboxOutcome | null = null;
    for (let seq = 1; seq <= 70; seq++) last = (await m.kv.proposeOutboxEntry({ client: 'tab-a', seq, txn: guardedPut(`k${seq}`, 'v', 0) })).outcome;
    const revision = m.kv.currentRevision;
    expect(last).toEqual({ kind: 'committed', revision });
    await m.kv.stop();
    await m.backend.close();
    m = await open();
    try {
      // Entry 70 came after the last snapshot: the restart replayed it over a backend that held
      // it, and the retry still hears the outcome it had (the crash between propose and answer).
      const retry = await m.kv.proposeOutboxEntry({ client: 'tab-a', seq: 70, txn: guardedPut('k70', 'v', 0) });
      expect(retry).toEqual({ outcome: { kind: 'committed', revision }, duplicate: true, txn: null });
      expect(m.kv.currentRevision).toBe(revision);
      const next = await m.kv.proposeOutboxEntry({ client: 'tab-a', seq: 71, txn: guardedPut('k71', 'v', 0) });
      expect(next).toMatchObject({ duplicate: false, outcome: { kind: 'committed', revision: revision + 1 } });
    } finally {
      await m.kv.stop();
      await m.backend.close();
    }
  });

  it('keeps equal session tables on three members on LMDB after one restarts, and the restarted one answers a retry as the others', async () => {
    const hub = new MemoryHub();
    const ids = [1, 2, 3];
    const dirOf = new Map(ids.map((id) => [id, mkdtempSync(join(tmpdir(), 'meshkv-outbox-'))]));
    dirs.push(...dirOf.values());
    const ms = new Map<MemberId, { kv: KvMember; backend: LmdbBackend }>();
    // etcd's timings: 75 proposals go to one leader, and at 200 ms elections a loaded machine
    // changed leaders mid-loop now and then; a proposal a leader change drops fails only at its
    // request timeout.
    for (const id of ids) ms.set(id, await startOnLmdb(dirOf.get(id)!, hub, id, ids, etcdTimings));
    try {
      const agreed = await waitForAgreedLeader([...ms.values()].map((m) => m.kv));
      const leader = [...ms.values()].find((m) => m.kv === agreed)!;
      const clients = ['tab-a', 'tab-b', 'tab-c'];
      // 75 entries: a snapshot at 50 or so, then entries every member's backend holds past it.
      const outcomes = new Map<string, OutboxOutcome>();
      for (let seq = 1; seq <= 25; seq++) {
        for (const client of clients) {
          const r = await leader.kv.proposeOutboxEntry({ client, seq, txn: guardedPut(`${client}/${seq % 5}`, `${seq}`, seq <= 5 ? 0 : 1) });
          outcomes.set(`${client}/${seq}`, r.outcome);
        }
      }
      const followerId = ids.find((id) => ms.get(id) !== leader)!;
      const follower = ms.get(followerId)!;
      await waitFor('the follower applied everything', () => follower.kv.status().applied === leader.kv.status().applied, 10_000);
      await follower.kv.stop();
      await follower.backend.close();
      const restarted = await startOnLmdb(dirOf.get(followerId)!, hub, followerId, ids, etcdTimings);
      ms.set(followerId, restarted);
      await waitFor('the restarted member caught up', () => restarted.kv.status().applied === leader.kv.status().applied, 10_000);
      const tables = [...ms.values()].map((m) => sessionTable(m.kv, clients, 26));
      expect(tables[1]).toEqual(tables[0]);
      expect(tables[2]).toEqual(tables[0]);
      expect(restarted.kv.outboxApplied('tab-c', 25)).toEqual(outcomes.get('tab-c/25'));
      // A retry through the restarted member is answered there with the first outcome.
      const retry = await restarted.kv.proposeOutboxEntry({ client: 'tab-c', seq: 25, txn: guardedPut('tab-c/0', 'again', 0) });
      expect(retry).toEqual({ outcome: outcomes.get('tab-c/25'), duplicate: true, txn: null });
      await waitFor('every member applied the retry', () => [...ms.values()].every((m) => m.kv.status().applied === restarted.kv.status().applied), 10_000);
      const hashes = [...ms.values()].map((m) => m.kv.hashKV(0));
      expect(new Set(hashes.map((h) => JSON.stringify(h))).size).toBe(1);
    } finally {
      for (const m of ms.values()) {
        await m.kv.stop();
        await m.backend.close();
      }
    }
  });

  it('answers a retry with the original outcome on a member caught up by a snapshot streamed from LMDB', async () => {
    const hub = new MemoryHub();
    const leaderDir = mkdtempSync(join(tmpdir(), 'meshkv-outbox-'));
    const joinerDir = mkdtempSync(join(tmpdir(), 'meshkv-outbox-'));
    dirs.push(leaderDir, joinerDir);
    const leader = await startOnLmdb(leaderDir, hub, 1, [1]);
    const joiner = await startOnLmdb(joinerDir, hub, 2, []);
    try {
      await waitFor('leadership', () => leader.kv.isLeader());
      // 60 entries: the latest snapshot is at 50 or so; the streamed backend is at 60 or more.
      let last: OutboxOutcome | null = null;
      for (let seq = 1; seq <= 60; seq++) last = (await leader.kv.proposeOutboxEntry({ client: 'tab-a', seq, txn: guardedPut(`k${seq}`, 'v', 0) })).outcome;
      await leader.kv.addMember(2, ['http://joiner'], false);
      await waitFor('the joiner caught up', () => joiner.kv.status().applied === leader.kv.status().applied, 20_000);
      expect(joiner.kv.member.snapshotStreams).toMatchObject({ received: 1, receiveFailed: 0 });
      expect(joiner.kv.outboxApplied('tab-a', 60)).toEqual(last);
      const retry = await joiner.kv.proposeOutboxEntry({ client: 'tab-a', seq: 60, txn: guardedPut('k60', 'v', 0) });
      expect(retry).toEqual({ outcome: last, duplicate: true, txn: null });
      expect(sessionTable(joiner.kv, ['tab-a'], 61)).toEqual(sessionTable(leader.kv, ['tab-a'], 61));
    } finally {
      for (const m of [joiner, leader]) {
        await m.kv.stop();
        await m.backend.close();
      }
    }
  });

  it('sends a joiner the sessions as of the store image a leader on an asynchronous backend (a tab) encodes', async () => {
    const hub = new MemoryHub();
    const backend = await PrefetchedBackend.open(new SlowBackend());
    const slow = { tickMs: 50, requestTimeoutMs: 20_000, snapshotEntries: 20, snapshotKeepEntries: 0 };
    const leader = await startKvMember(hub, 1, [1], { ...slow, mvcc: { backend } });
    backend.openingDone();
    running.push(leader);
    await waitFor('leadership', () => leader.isLeader(), 20_000);
    // 30 entries: the snapshot is at 20 or so, the store image encoded later is at 30 or more.
    let last: OutboxOutcome | null = null;
    for (let seq = 1; seq <= 30; seq++) last = (await leader.proposeOutboxEntry({ client: 'tab-a', seq, txn: guardedPut(`k${seq}`, 'v', 0) })).outcome;
    const joiner = await startKvMember(hub, 2, [], slow);
    running.push(joiner);
    await leader.member.changeMembership({ transition: ConfChangeTransition.Auto, changes: [{ type: ConfChangeType.AddLearnerNode, memberId: 2 }], context: null });
    await waitFor('the learner caught up', () => joiner.status().applied === leader.status().applied, 30_000);
    expect(joiner.outboxApplied('tab-a', 30)).toEqual(last);
    expect(sessionTable(joiner, ['tab-a'], 31)).toEqual(sessionTable(leader, ['tab-a'], 31));
  }, 60_000);

  it('keeps its records out of the etcd-format snapshot file: etcd finds only its own meta keys', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'meshkv-outbox-'));
    dirs.push(dir);
    const m = await startOnLmdb(dir, new MemoryHub(), 1, [1]);
    try {
      await waitFor('leadership', () => m.kv.isLeader());
      await m.kv.proposeOutboxEntry({ client: 'tab-a', seq: 1, txn: guardedPut('k', 'v', 0) });
      await m.kv.compact({ revision: 2 });
      await m.kv.mvcc.durable();
      expect(m.backend.get('meta', outboxSessionKey('tab-a'))).toBeDefined();
      const file = encodeSnapshotFile(m.kv.mvcc.snapshot(), { members: [], authRevision: 1 });
      const meta = new BoltReader(file).entries('meta')!.map((e) => new TextDecoder().decode(e.key));
      expect(meta.sort()).toEqual(['consistent_index', 'finishedCompactRev', 'scheduledCompactRev']);
    } finally {
      await m.kv.stop();
      await m.backend.close();
    }
  });

  it('stores each client\'s record in the backend\'s meta bucket, evictions deleted, and loads the same table back', async () => {
    const backend = new MemoryBackend();
    const s = new OutboxSessions();
    let index = 1;
    for (let i = 0; i <= outboxSessionsMax; i++) {
      index++;
      await backend.commit({ clear: false, ops: s.record(`c${i}`, 1, { kind: 'committed', revision: i + 2 }, index), appliedIndex: index });
    }
    index++;
    await backend.commit({ clear: false, ops: s.record('c1', 2, { kind: 'conflict', revision: 9 }, index), appliedIndex: index });
    expect(backend.get('meta', outboxSessionKey('c0'))).toBeUndefined();
    // etcd's own meta keys stay as they were.
    expect(backend.get('meta', new TextEncoder().encode('consistent_index'))).toBeDefined();
    const loaded = new OutboxSessions();
    loaded.load(backend);
    expect(loaded.encodeImage()).toEqual(s.encodeImage());
    // Eviction order survived the load: c2 is the least recently used now.
    const evicted = loaded.record('new', 1, { kind: 'committed', revision: 99 }, index + 1);
    expect(evicted.map((op) => [new TextDecoder().decode(op.key), op.value === null])).toEqual([
      ['meshkv_outbox/new', false],
      ['meshkv_outbox/c2', true],
    ]);
    await backend.commit({ clear: false, ops: [{ bucket: 'meta', key: outboxSessionKey('bad'), value: new Uint8Array([1]) }], appliedIndex: index + 1 });
    expect(() => new OutboxSessions().load(backend)).toThrow('stored outbox session of bad: not [seq, index, outcomes]');
  });

  it(`remembers at most ${outboxSessionsMax} clients, forgetting the least recently used`, () => {
    const s = new OutboxSessions();
    for (let i = 0; i <= outboxSessionsMax; i++) s.record(`c${i}`, 1, { kind: 'committed', revision: i + 2 }, i + 2);
    expect(s.size).toBe(outboxSessionsMax);
    expect(s.applied('c0', 1)).toBeNull();
    expect(s.applied('c1', 1)).toEqual({ outcome: { kind: 'committed', revision: 3 } });
    const copy = new OutboxSessions();
    copy.restoreImage(s.encodeImage());
    copy.record('c1', 2, { kind: 'conflict', revision: 9 }, 9000);
    copy.record('new', 1, { kind: 'conflict', revision: 9 }, 9001);
    // c1 was used last, so c2 goes first; c1's entry 1 was in an older batch: applied, outcome forgotten.
    expect(copy.applied('c1', 1)).toEqual({ outcome: { kind: 'unknown' } });
    expect(copy.applied('c1', 2)).toEqual({ outcome: { kind: 'conflict', revision: 9 } });
    expect(copy.applied('c2', 1)).toBeNull();
    expect(() => copy.restoreImage(new Uint8Array([0x93, 1, 2, 3]))).toThrow('outbox sessions image');
  });
});
