// The gRPC services driven by a raw grpc-js client on meshkv's own protos: watch ids, cancel,
// progress, compaction, flow control, and error mapping.

import { connect } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdApiError, Status, toApiError } from '../../adapters/etcd-api/api.ts';
import { packageDefinition } from '../../adapters/etcd-api/proto.ts';
import { MemberError } from '../../src/server/member.ts';
import { serve, waitFor, type Served } from './harness.ts';

type Wire = Record<string, any>;
type ClientCtor = new (address: string, creds: grpc.ChannelCredentials, options?: object) => grpc.Client & Record<string, any>;
const pb = grpc.loadPackageDefinition(packageDefinition).etcdserverpb as unknown as Record<string, ClientCtor>;

let s: Served;
let kvClient: grpc.Client & Record<string, any>;
let watchClient: grpc.Client & Record<string, any>;
const enc = new TextEncoder();

beforeAll(async () => {
  s = await serve();
  kvClient = new pb.KV(s.endpoint, grpc.credentials.createInsecure());
  // etcd's own client accepts responses of any size (a catch-up response can be large).
  watchClient = new pb.Watch(s.endpoint, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': -1 });
});
afterAll(async () => {
  kvClient?.close();
  watchClient?.close();
  await s?.stop();
});

function unaryCall(client: grpc.Client & Record<string, any>, method: string, req: Wire): Promise<Wire> {
  return new Promise((resolve, reject) => client[method](req, (err: grpc.ServiceError | null, res: Wire) => (err ? reject(err) : resolve(res))));
}

function openWatch() {
  const call = watchClient.Watch() as grpc.ClientDuplexStream<Wire, Wire>;
  const got: Wire[] = [];
  call.on('data', (r: Wire) => got.push(r));
  call.on('error', () => {});
  return { call, got };
}

describe('gRPC services', () => {
  it('answers with etcd\'s header and exact 64-bit values', async () => {
    const put = await unaryCall(kvClient, 'Put', { key: Buffer.from('g'), value: Buffer.from('1'), lease: '0' });
    expect(put.header).toEqual({
      cluster_id: '324952591200643719',
      member_id: String(s.kv.id),
      revision: String(s.kv.mvcc.currentRevision),
      raft_term: String(s.kv.member.status().term),
    });
  });

  it('maps errors to etcd\'s status codes and messages', async () => {
    await expect(unaryCall(kvClient, 'Range', { key: Buffer.alloc(0) })).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: 'etcdserver: key is not provided',
    });
    const lease = new pb.Lease(s.endpoint, grpc.credentials.createInsecure());
    await expect(unaryCall(lease, 'LeaseRevoke', { ID: '12345' })).rejects.toMatchObject({
      code: grpc.status.NOT_FOUND,
      details: 'etcdserver: requested lease not found',
    });
    lease.close();
    const cluster = new pb.Cluster(s.endpoint, grpc.credentials.createInsecure());
    await expect(unaryCall(cluster, 'MemberAdd', { peerURLs: ['http://x:2380'] })).rejects.toMatchObject({
      code: grpc.status.FAILED_PRECONDITION,
      details:
        'meshkv: cannot add a member at http://x:2380: this member has no peer listener, so it could not reach that member; ' +
        'restart it with --listen-peer-urls http://<host>:<port> and --initial-advertise-peer-urls set to the same URL (its data stays), then try again. ' +
        '(member remove and member promote work without one.)',
    });
    cluster.close();
    expect(toApiError(new MemberError('timeout', 'etcdserver: request timed out'))).toEqual(
      new EtcdApiError(Status.Unavailable, 'etcdserver: request timed out'),
    );
  });

  it('a request beyond gRPC\'s receive limit gets RESOURCE_EXHAUSTED and the server keeps serving', async () => {
    const big = new pb.KV(s.endpoint, grpc.credentials.createInsecure(), { 'grpc.max_send_message_length': -1 });
    await expect(unaryCall(big, 'Put', { key: Buffer.from('huge'), value: Buffer.alloc(3 * 1024 * 1024) })).rejects.toMatchObject({
      code: grpc.status.RESOURCE_EXHAUSTED,
    });
    big.close();
    await expect(unaryCall(kvClient, 'Put', { key: Buffer.from('small'), value: Buffer.from('ok') })).resolves.toHaveProperty('header');
  });

  it('garbage on the client port (after an HTTP/2 preface or not) closes that connection only', async () => {
    const [host, port] = s.endpoint.split(':');
    for (const junk of ['PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\xff\xff\xff garbage', '\x16\x03\x01 not http at all\r\n\r\n']) {
      const socket = connect(Number(port), host);
      socket.on('error', () => {});
      socket.resume(); // read the server's answer, so its close is seen
      socket.end(Buffer.from(junk, 'latin1'));
      await new Promise((r) => socket.on('close', r));
    }
    await expect(unaryCall(kvClient, 'Range', { key: Buffer.from('g') })).resolves.toHaveProperty('header');
  });

  it('watch: chosen ids, duplicate ids refused, cancel, progress', async () => {
    const { call, got } = openWatch();
    call.write({ create_request: { key: Buffer.from('p'), watch_id: '7' } });
    call.write({ create_request: { key: Buffer.from('q'), watch_id: '7' } });
    await waitFor('two answers', () => got.length === 2);
    expect(got[0]).toMatchObject({ watch_id: '7', created: true, canceled: false });
    expect(got[1]).toMatchObject({ watch_id: '-1', created: true, canceled: true, cancel_reason: 'mvcc: duplicate watch ID provided on the WatchStream' });
    call.write({ progress_request: {} });
    await waitFor('progress', () => got.length === 3);
    expect(got[2]).toMatchObject({ watch_id: '-1', created: false, events: [], header: { revision: String(s.kv.mvcc.currentRevision) } });
    call.write({ cancel_request: { watch_id: '7' } });
    await waitFor('canceled', () => got.length === 4);
    expect(got[3]).toMatchObject({ watch_id: '7', canceled: true });
    call.end();
  });

  it('watch from a compacted revision is canceled with the compact revision', async () => {
    for (let i = 0; i < 3; i++) await s.kv.put({ key: enc.encode('c'), value: enc.encode(String(i)) });
    const compactTo = s.kv.mvcc.currentRevision;
    await s.kv.compact({ revision: compactTo });
    const { call, got } = openWatch();
    call.write({ create_request: { key: Buffer.from('c'), start_revision: String(compactTo - 1) } });
    await waitFor('created and canceled', () => got.length === 2);
    expect(got[1]).toMatchObject({ canceled: true, compact_revision: String(compactTo) });
    call.end();
  });

  it('a client that stops reading holds events back without losing or reordering any', async () => {
    const { call, got } = openWatch();
    call.write({ create_request: { key: Buffer.from('flow/'), range_end: Buffer.from('flow0') } });
    await waitFor('created', () => got.length === 1);
    call.pause();
    const value = enc.encode('v'.repeat(64 * 1024));
    const puts = 200;
    let heldBack = false;
    for (let i = 0; i < puts; i++) {
      await s.kv.put({ key: enc.encode(`flow/${i}`), value });
      heldBack ||= s.kv.mvcc.watchHub.unsyncedCount > 0;
    }
    expect(heldBack).toBe(true);
    call.resume();
    await waitFor('every event', () => got.flatMap((r) => r.events).length === puts, 20_000);
    expect(got.flatMap((r) => r.events).map((e: Wire) => e.kv.key.toString())).toEqual(Array.from({ length: puts }, (_, i) => `flow/${i}`));
    call.end();
  });
});
