// Streams marked "hasleader" (as etcdctl and clientv3 mark them) end with etcd's "no leader"
// error when the serving member loses its leader.

import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../adapters/clock/system.ts';
import { EtcdListener } from '../../adapters/etcd-api/listener.ts';
import { packageDefinition } from '../../adapters/etcd-api/proto.ts';
import { MemoryStorage } from '../../adapters/storage/memory.ts';
import { MemoryHub, type MemoryTransport } from '../../adapters/transport/memory.ts';
import { KvMember } from '../../src/server/kv-member.ts';
import { prng } from '../raft/prng.ts';
import { waitFor } from './harness.ts';

type Wire = Record<string, any>;
type ClientCtor = new (address: string, creds: grpc.ChannelCredentials) => grpc.Client & Record<string, any>;
const pb = grpc.loadPackageDefinition(packageDefinition).etcdserverpb as unknown as Record<string, ClientCtor>;

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function followerWithApi() {
  const hub = new MemoryHub();
  const ids = [1, 2, 3];
  const transports = new Map<number, MemoryTransport>();
  const members = await Promise.all(
    ids.map((id) => {
      const transport = hub.connect(id);
      transports.set(id, transport);
      return KvMember.start({
        id,
        peers: ids,
        clock: systemClock,
        storage: new MemoryStorage(),
        transport,
        random: prng(id * 31 + Date.now()),
        tickMs: 10,
        electionTicks: 10,
        requestTimeoutMs: 3000,
      });
    }),
  );
  cleanups.push(async () => {
    for (const m of members) await m.stop();
  });
  const leader = await waitFor('a leader', () => members.find((m) => m.member.isLeader()));
  const follower = members.find((m) => m !== leader)!;
  await waitFor('the follower to know the leader', () => follower.member.status().lead === leader.id);
  const listener = await EtcdListener.listen({ kv: follower, host: '127.0.0.1', port: 0, clusterId: '1', members: () => undefined });
  cleanups.push(() => listener.close());
  const isolate = () => {
    for (const id of ids) if (id !== follower.id) transports.get(follower.id)!.faults.block(id);
  };
  return { endpoint: `127.0.0.1:${listener.port}`, isolate };
}

describe('hasleader streams', () => {
  it('a watch marked hasleader ends with "etcdserver: no leader" once its member loses the leader', async () => {
    const { endpoint, isolate } = await followerWithApi();
    const client = new pb.Watch(endpoint, grpc.credentials.createInsecure());
    cleanups.push(() => client.close());
    const md = new grpc.Metadata();
    md.set('hasleader', 'true');
    const call = client.Watch(md) as grpc.ClientDuplexStream<Wire, Wire>;
    const got: Wire[] = [];
    let error: grpc.ServiceError | null = null;
    call.on('data', (r: Wire) => got.push(r));
    call.on('error', (e: grpc.ServiceError) => (error = e));
    call.write({ create_request: { key: Buffer.from('k') } });
    await waitFor('created', () => got.length === 1);
    isolate();
    const err = await waitFor('the stream to fail', () => error, 5000);
    expect(err).toMatchObject({ code: grpc.status.UNAVAILABLE, details: 'etcdserver: no leader' });
  });

  it('a watch without the mark keeps waiting', async () => {
    const { endpoint, isolate } = await followerWithApi();
    const client = new pb.Watch(endpoint, grpc.credentials.createInsecure());
    cleanups.push(() => client.close());
    const call = client.Watch() as grpc.ClientDuplexStream<Wire, Wire>;
    let error: unknown = null;
    call.on('error', (e) => (error = e));
    const got: Wire[] = [];
    call.on('data', (r: Wire) => got.push(r));
    call.write({ create_request: { key: Buffer.from('k') } });
    await waitFor('created', () => got.length === 1);
    isolate();
    await new Promise((r) => setTimeout(r, 500));
    expect(error).toBeNull();
    call.cancel();
  });

  it('/metrics counts a proposal pending while the member is cut off, then failed once it times out', async () => {
    const { endpoint, isolate } = await followerWithApi();
    const metric = async (name: string) => {
      const text = await (await fetch(`http://${endpoint}/metrics`)).text();
      return Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1]);
    };
    const put = (key: string) => fetch(`http://${endpoint}/v3/kv/put`, { method: 'POST', body: JSON.stringify({ key: btoa(key), value: btoa('v') }) });
    const first = await put('before');
    expect([first.status, await first.text()]).toEqual([200, expect.anything()]);
    expect(await metric('etcd_server_proposals_failed_total')).toBe(0);
    expect(await metric('etcd_server_proposals_pending')).toBe(0);
    const committed = await metric('etcd_server_proposals_committed_total');
    expect(committed).toBeGreaterThan(0);
    expect(await metric('etcd_server_proposals_applied_total')).toBeGreaterThan(0);
    isolate();
    const lost = put('lost');
    // The request timeout is 3 s: well after this, the put is still waiting.
    await new Promise((r) => setTimeout(r, 300));
    expect(await metric('etcd_server_proposals_pending')).toBe(1);
    const res = await lost;
    expect(res.status).toBe(503);
    expect((await res.json()).message).toBe('etcdserver: request timed out');
    expect(await metric('etcd_server_proposals_failed_total')).toBe(1);
    expect(await metric('etcd_server_proposals_pending')).toBe(0);
    expect(await metric('etcd_server_proposals_committed_total')).toBe(committed);
  });
});
