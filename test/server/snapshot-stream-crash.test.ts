// A new member's process is killed with SIGKILL in the middle of receiving the leader's store as
// a snapshot stream (real `meshkv` processes, TCP, fs-wal and LMDB). Restarted, it starts with
// the state it had, the leader's stream fails and is sent again, and the member ends with the
// leader's data (etcdctl endpoint hashkv).

import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { connectGrpc } from '../../adapters/etcd-api/grpc-connection.ts';
import { requireEtcdctl } from '../etcd-api/harness.ts';
import { addLearner, clientEndpoint, hashKv, launchCli, peerUrl, readyLine, revisionOf, waitForLine, type CliMemberSpec } from '../helpers/cli-members.ts';
import { freePort, type Spawned } from '../helpers/processes.ts';
import { waitFor } from '../helpers/wait.ts';

const root = mkdtempSync(join(tmpdir(), 'meshkv-stream-crash-'));
const procs: Spawned[] = [];
afterAll(async () => {
  for (const p of procs) {
    if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    await p.exited;
  }
  rmSync(root, { recursive: true, force: true });
});

/** `keys` keys of 1 KiB values, 100 puts per transaction, 8 transactions at a time. */
async function fillKiB(client: ReturnType<typeof connectGrpc>, keys: number): Promise<void> {
  const value = 'v'.repeat(1024);
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < keys) {
        const from = next;
        next = Math.min(keys, next + 100);
        const puts = [];
        for (let i = from; i < next; i++) puts.push(client.put(`k/${i}`).value(value));
        await client.txn().then(...puts).commit();
      }
    }),
  );
}

function launch(spec: CliMemberSpec): Spawned {
  const p = launchCli(spec);
  procs.push(p);
  return p;
}

describe('a member killed while it receives a snapshot stream', () => {
  it('restarts with its old state, takes the stream again, and ends with the leader\'s data', async () => {
    requireEtcdctl();
    const leaderSpec: CliMemberSpec = { name: 'm0', dataDir: join(root, 'm0'), peerPort: await freePort(), clientPort: await freePort(), initialCluster: '', state: 'new', snapshotCount: 500 };
    leaderSpec.initialCluster = `m0=${peerUrl(leaderSpec)}`;
    const leader = launch(leaderSpec);
    await waitForLine(leader, readyLine, 30_000);
    const endpoint = clientEndpoint(leaderSpec);
    const client = connectGrpc([endpoint]);
    try {
      // 60 MB of values: long enough a stream to be inside it when the kill comes.
      await fillKiB(client, 60_000);
    } finally {
      client.close();
    }
    const joinerSpec: CliMemberSpec = {
      name: 'm1',
      dataDir: join(root, 'm1'),
      peerPort: await freePort(),
      clientPort: await freePort(),
      initialCluster: '',
      state: 'existing',
      snapshotCount: 500,
    };
    joinerSpec.initialCluster = `${leaderSpec.initialCluster},m1=${peerUrl(joinerSpec)}`;
    await addLearner(endpoint, 'm1', peerUrl(joinerSpec));
    const first = launch(joinerSpec);
    await waitForLine(leader, /streaming snapshot \d+ .* as stream 1"/, 30_000, 2).catch((err: Error) => {
      throw new Error(`${err.message}\n--- the joiner:\n${first.logs.slice(-20).join('\n')}`);
    });
    // Let a few chunks land in its staging area, then kill it.
    const stagedBytes = (): number => statSync(join(joinerSpec.dataDir, 'backend', 'data.mdb'), { throwIfNoEntry: false })?.size ?? 0;
    await waitFor('chunks staged', () => stagedBytes() > 4 * 2 ** 20, 10_000, 2);
    first.child.kill('SIGKILL');
    await first.exited;
    expect(first.logs.some((l) => l.includes('adopted snapshot'))).toBe(false);

    const second = launch(joinerSpec);
    // The restarted member serves its old state (an empty store: it had adopted nothing yet).
    await waitForLine(second, readyLine, 30_000);
    if (!second.logs.some((l) => l.includes('adopted snapshot'))) expect(await revisionOf(clientEndpoint(joinerSpec))).toBe(1);
    await waitForLine(second, /adopted snapshot \d+ .* streamed by member/, 90_000);
    const revision = await revisionOf(endpoint);
    await waitFor('the joiner caught up', async () => (await revisionOf(clientEndpoint(joinerSpec))) === revision, 30_000, 200);
    expect(await hashKv(clientEndpoint(joinerSpec), revision)).toBe(await hashKv(endpoint, revision));
    // The first stream ended in a failure the leader reported, the second one in success.
    expect(leader.logs.some((l) => /snapshot stream 1 to member .* failed/.test(l))).toBe(true);
    expect(leader.logs.some((l) => /snapshot stream \d+ to member .* done/.test(l))).toBe(true);
  }, 240_000);
});
