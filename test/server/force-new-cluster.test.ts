// --force-new-cluster (Member's forceNewCluster): a member of a cluster whose quorum is gone for
// good restarts as the only voter of a new configuration, with everything it had committed, on
// real fs-wal storage.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../adapters/clock/system.ts';
import { FsWalStorage } from '../../adapters/storage/fs-wal/index.ts';
import { MemoryHub } from '../../adapters/transport/memory.ts';
import type { MemberId } from '../../src/raft/types.ts';
import { KvMember } from '../../src/server/kv-member.ts';
import { waitFor } from '../helpers/wait.ts';
import { prng } from '../raft/prng.ts';

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);
const dirs: string[] = [];
const running: KvMember[] = [];

afterEach(async () => {
  for (const m of running.splice(0)) await m.stop();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const initialMembers = [1, 2, 3].map((id) => ({ id, name: `n${id}`, peerURLs: [`http://127.0.0.1:${20000 + id}`], clientURLs: [], isLearner: false }));

async function start(hub: MemoryHub, id: MemberId, dir: string, forceNewCluster = false): Promise<KvMember> {
  const kv = await KvMember.start({
    id,
    peers: [1, 2, 3],
    clock: systemClock,
    storage: await FsWalStorage.open(dir),
    transport: hub.connect(id),
    random: prng(id * 7 + Date.now()),
    tickMs: 20,
    electionTicks: 10,
    requestTimeoutMs: 3000,
    snapshotEntries: 20,
    snapshotKeepEntries: 5,
    initialMembers,
    forceNewCluster,
  });
  running.push(kv);
  return kv;
}

async function stop(kv: KvMember): Promise<void> {
  running.splice(running.indexOf(kv), 1);
  await kv.stop();
}

describe('force new cluster', () => {
  it('restarts the last member of a lost quorum as the only voter, with every committed write', async () => {
    const hub = new MemoryHub();
    for (const id of [1, 2, 3]) dirs.push(mkdtempSync(join(tmpdir(), 'meshkv-force-')));
    const members = await Promise.all([1, 2, 3].map((id) => start(hub, id, dirs[id - 1])));
    const leader = await waitFor('a leader', () => members.find((m) => m.member.isLeader()));
    // Past a snapshot (every 20 entries) and a log tail after it.
    for (let i = 0; i < 45; i++) await leader.put({ key: enc(`k${i}`), value: enc(`v${i}`) });
    const survivor = members.find((m) => m !== leader)!;
    await waitFor('the survivor applied every write', () => survivor.mvcc.range({ key: enc('k44') }).kvs.length === 1);
    const id = survivor.id;
    for (const m of members) await stop(m);

    // Alone, it never has a quorum again.
    const alone = await start(new MemoryHub(), id, dirs[id - 1]);
    await new Promise((r) => setTimeout(r, 1000));
    expect(alone.member.status().lead).toBe(0);
    await stop(alone);

    const forced = await start(new MemoryHub(), id, dirs[id - 1], true);
    await waitFor('the forced member leads', () => forced.member.isLeader(), 5000);
    expect(forced.member.status().confState).toMatchObject({ voters: [id], learners: [] });
    expect(forced.members.list().map((m) => m.id)).toEqual([id]);
    const r = await forced.range({ key: enc('k'), rangeEnd: enc('l') });
    expect(r.count).toBe(45);
    await forced.put({ key: enc('after'), value: enc('force') });
    await stop(forced);

    // Started again without the flag, it is still the cluster, with its data.
    const again = await start(new MemoryHub(), id, dirs[id - 1]);
    await waitFor('it leads again', () => again.member.isLeader(), 5000);
    expect(dec((await again.range({ key: enc('after') })).kvs[0].value)).toBe('force');
    expect((await again.range({ key: enc('k'), rangeEnd: enc('l') })).count).toBe(45);
  });
});
