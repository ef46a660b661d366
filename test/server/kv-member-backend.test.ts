// A KvMember on the real Node parts — fs-wal and the LMDB backend in a temp directory — stopped
// and restarted: the restart opens the backend and replays only the WAL entries it lacks.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LmdbBackend } from '../../adapters/backend/lmdb.ts';
import { systemClock } from '../../adapters/clock/system.ts';
import { FsWalStorage } from '../../adapters/storage/fs-wal/index.ts';
import { MemoryHub } from '../../adapters/transport/memory.ts';
import { silentLogger } from '../../src/raft/config.ts';
import { KvMember } from '../../src/server/kv-member.ts';
import { prng } from '../raft/prng.ts';
import { waitFor } from '../helpers/wait.ts';

const b = (s: string) => new TextEncoder().encode(s);
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function startMember(dir: string, id = 1, peers = [1], hub = new MemoryHub()): Promise<{ kv: KvMember; backend: LmdbBackend }> {
  const storage = await FsWalStorage.open(join(dir, 'wal'), { logger: silentLogger });
  const backend = LmdbBackend.open(join(dir, 'backend'));
  let kv: KvMember;
  try {
    kv = await KvMember.start({
      id,
      peers,
      clock: systemClock,
      storage,
      transport: hub.connect(id),
      random: prng(7 + id),
      tickMs: 5,
      electionTicks: 10,
      snapshotEntries: 50,
      snapshotKeepEntries: 10,
      mvcc: { backend, lessor: { minTtlSeconds: 1 } },
    });
  } catch (err) {
    await backend.close();
    await storage.close();
    throw err;
  }
  if (peers.length > 0) await waitFor('leadership', () => kv.member.isLeader());
  return { kv, backend };
}

async function stop(m: { kv: KvMember; backend: LmdbBackend }): Promise<void> {
  await m.kv.stop();
  await m.backend.close();
}

/** Writes that leave history, deletes, a compaction and a lease behind. */
async function fill(kv: KvMember): Promise<bigint> {
  const lease = await kv.leaseGrant({ TTL: 3600, ID: 0n });
  for (let i = 0; i < 120; i++) await kv.put({ key: b(`k/${i % 40}`), value: b(`v${i}`), lease: i % 10 === 0 ? lease.ID : 0n });
  await kv.deleteRange({ key: b('k/3'), rangeEnd: b('k/4') });
  await kv.compact({ revision: 60 });
  for (let i = 0; i < 7; i++) await kv.put({ key: b(`late/${i}`), value: b('x'.repeat(300)) });
  return lease.ID;
}

function state(kv: KvMember): unknown {
  return {
    revision: kv.mvcc.currentRevision,
    compacted: kv.mvcc.compactRevision,
    hash: kv.mvcc.hash(),
    hashKV: kv.hashKV(0),
    keys: kv.mvcc.keyCount,
  };
}

describe('KvMember on fs-wal and LMDB', () => {
  it('restarts from the backend and the WAL tail with the same state, and keeps writing revisions on from there', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'meshkv-kv-backend-'));
    dirs.push(dir);
    let m = await startMember(dir);
    const lease = await fill(m.kv);
    const before = state(m.kv);
    const revision = m.kv.mvcc.currentRevision;
    await stop(m);

    m = await startMember(dir);
    expect(state(m.kv)).toEqual(before);
    expect((await m.kv.leaseTimeToLive(lease, true)).keys.map((k) => new TextDecoder().decode(k))).toEqual(['k/0', 'k/10', 'k/20']);
    const put = await m.kv.put({ key: b('after'), value: b('restart') });
    expect(put.header.revision).toBe(revision + 1);
    // Put i took revision i + 2: at 61, k/5 held the value of put 45.
    const history = await m.kv.range({ key: b('k/5'), revision: 61 });
    expect(history.kvs.map((kv) => new TextDecoder().decode(kv.value))).toEqual(['v45']);
    await stop(m);
  });

  it('cuts its log at snapshots that leave the store in the backend, and refuses to start without that backend', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'meshkv-kv-backend-'));
    dirs.push(dir);
    const m = await startMember(dir);
    await fill(m.kv);
    // Snapshots every 50 entries hold the member table only: the store stays in the backend.
    expect(m.kv.member.snapshotBytes()).toBeGreaterThan(0);
    expect(m.kv.member.snapshotBytes()).toBeLessThan(200);
    await stop(m);
    // As if the backend's directory were lost: the WAL alone cannot rebuild the store.
    rmSync(join(dir, 'backend'), { recursive: true, force: true });
    await expect(startMember(dir)).rejects.toThrow(/keeps the store in the backend, which holds only up to index 0: restore the data dir from a backup/);
  });

  it('sends a member that joins late the store from its backend, and the joiner ends with an equal state', async () => {
    const hub = new MemoryHub();
    const leaderDir = mkdtempSync(join(tmpdir(), 'meshkv-kv-backend-'));
    const joinerDir = mkdtempSync(join(tmpdir(), 'meshkv-kv-backend-'));
    dirs.push(leaderDir, joinerDir);
    const leader = await startMember(leaderDir, 1, [1], hub);
    const joiner = await startMember(joinerDir, 2, [], hub);
    try {
      await fill(leader.kv);
      // The log before the last snapshot is gone: the joiner can only catch up from a snapshot.
      await leader.kv.addMember(2, ['http://joiner'], true);
      // Generous: both sides start a worker thread (from the sources, tsx compiles its imports first).
      await waitFor('the joiner caught up', () => joiner.kv.mvcc.currentRevision === leader.kv.mvcc.currentRevision, 60_000);
      expect(state(joiner.kv)).toEqual(state(leader.kv));
      // It got there through one stream of the leader's backend; both keep only the small
      // snapshot (the member table and the marker), the store staying in their backends.
      // (The leader hears the stream is done just after the joiner adopted it.)
      await waitFor('the leader saw the stream done', () => leader.kv.member.snapshotStreams.sent === 1, 10_000);
      expect(leader.kv.member.snapshotStreams.sendFailed).toBe(0);
      expect(joiner.kv.member.snapshotStreams).toMatchObject({ received: 1, receiveFailed: 0 });
      expect(leader.kv.member.snapshotBytes()).toBeLessThan(200);
      expect(joiner.kv.member.snapshotBytes()).toBeLessThan(200);
      // It keeps applying after the snapshot: writes reach it with the same revisions.
      const put = await leader.kv.put({ key: b('after'), value: b('join') });
      await waitFor('the joiner applied the put', () => joiner.kv.mvcc.currentRevision === put.header.revision);
      expect(state(joiner.kv)).toEqual(state(leader.kv));
    } finally {
      await stop(joiner);
      await stop(leader);
    }
  }, 120_000);
});
