// The Client over gRPC on three real meshkv processes: when the member it talks to is killed
// (kill -9; the leader, here), reads and writes move to another endpoint, a watch resumes there without gap or
// duplicate, and a lease stays alive through the keep-alive stream's re-open.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectGrpc, type GrpcConnection } from '../../adapters/etcd-api/grpc-connection.ts';
import type { Client } from '../../src/client/client.ts';
import type { KeyValue } from '../../src/mvcc/types.ts';
import { requireEtcdctl } from '../etcd-api/harness.ts';
import { endpointStatus, eventually, Processes, ready, type Proc } from '../cluster/processes.ts';
import { sleep, text, waitFor } from './helpers.ts';

const procs = new Processes();
let members: Proc[] = [];
/** Closed after the test, whatever happened. */
let client: Client | undefined;

beforeAll(async () => {
  requireEtcdctl(); // finds the leader
  const specs = [await procs.spec('g1'), await procs.spec('g2'), await procs.spec('g3')];
  members = specs.map((s) => procs.start(s, specs));
  for (const p of members) await ready(p);
}, 60_000);

afterAll(async () => {
  client?.close();
  await procs.cleanup();
});

describe('client over gRPC: a three-process cluster', () => {
  it('fails over to another endpoint when its member is killed: kv, watch and lease carry on', async () => {
    // The leader first: killing it also takes an election and moves the lessor.
    const leader = await eventually('a leader', async () => (await endpointStatus(members[0].endpoint))?.leader, 10_000);
    const statuses = await Promise.all(members.map(async (p) => ({ p, id: (await endpointStatus(p.endpoint))?.memberId })));
    const endpoints = [...statuses.filter((s) => s.id === leader), ...statuses.filter((s) => s.id !== leader)].map((s) => s.p.endpoint);
    const c = (client = connectGrpc(
      endpoints,
      { connectTimeoutMs: 1000, callTimeoutMs: 5000, watchRetryMs: 50 },
    ));
    await eventually('a first write', () => c.put('c/0').value('0').then(() => true, () => false), 10_000);
    const values: string[] = [];
    const w = await c.watch().prefix('c/').startRevision((await c.get('c/0').kv())!.modRevision).create();
    w.on('put', (kv: KeyValue) => values.push(text(kv.value)));
    // 6 s: the client counts its lease lost when no renewal gets through for a TTL, and after
    // the kill a renewal needs the failover, an election (the followers wait 1 to 2 s before
    // campaigning, at the members' default timings) and the next keep-alive tick (every
    // TTL/3): a 3 s TTL left too little room for that on a loaded machine.
    const lease = c.lease(6);
    await lease.put('session').value('alive');
    for (let i = 1; i < 3; i++) await c.put(`c/${i}`).value(String(i));
    await waitFor('the events before the kill', () => values.length === 3);

    const used = (c.connection as GrpcConnection).endpoint;
    expect(used).toBe(endpoints[0]);
    await procs.kill9(members.find((p) => p.endpoint === used)!);
    expect(await eventually('a read elsewhere', () => c.get('c/2').string().catch(() => null), 10_000)).toBe('2');
    expect((c.connection as GrpcConnection).endpoint).not.toBe(used);
    // A killed leader needs an election first: retry each write until a member takes it.
    for (let i = 3; i < 6; i++) {
      await eventually(`write ${i}`, () => c.put(`c/${i}`).value(String(i)).then(() => true, () => false), 10_000);
    }
    await waitFor('every event', () => values.length >= 6, 10_000);
    await sleep(100);
    expect(values).toEqual(['0', '1', '2', '3', '4', '5']);

    await sleep(6500); // longer than the lease's TTL
    expect(lease.isLost).toBe(false);
    expect(await c.get('session').string()).toBe('alive');
  }, 60_000);
});
