// One meshkv member serving etcd's API on an ephemeral 127.0.0.1 port, in-process, and gRPC
// clients on it. The gRPC server can be stopped and started again on the same port while the
// member keeps running (its store and leases survive).

import { afterEach } from 'vitest';
import { systemClock } from '../../adapters/clock/system.ts';
import { connectGrpc, type ConnectGrpcOptions } from '../../adapters/etcd-api/grpc-connection.ts';
import { EtcdListener } from '../../adapters/etcd-api/listener.ts';
import { MemoryStorage } from '../../adapters/storage/memory.ts';
import { MemoryHub } from '../../adapters/transport/memory.ts';
import type { Client } from '../../src/client/client.ts';
import { KvMember } from '../../src/server/kv-member.ts';
import { prng } from '../raft/prng.ts';
import { waitFor } from '../client/helpers.ts';

export { settlesWithin, sleep, text, waitFor } from '../client/helpers.ts';

export interface GrpcMember {
  kv: KvMember;
  /** host:port; the same after restart(). */
  endpoint: string;
  /** A client over gRPC on `endpoints` (default: this member's). Closed after the test. */
  client(endpoints?: string[], opts?: ConnectGrpcOptions): Client;
  /** Stops serving: open streams and connections end. The member keeps running. */
  stopServing(): Promise<void>;
  /** Serves again on the same port. */
  startServing(): Promise<void>;
  /** A second gRPC server for the same member, on its own port: a stand-in for another member. */
  serveAlso(): Promise<{ endpoint: string; stop(): Promise<void> }>;
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const memberId = 0x5eed;

export async function grpcMember(): Promise<GrpcMember> {
  const kv = await KvMember.start({
    id: memberId,
    peers: [memberId],
    clock: systemClock,
    storage: new MemoryStorage(),
    transport: new MemoryHub().connect(memberId),
    random: prng(Date.now()),
    tickMs: 5,
    electionTicks: 10,
    requestTimeoutMs: 3000,
    mvcc: { lessor: { minTtlSeconds: 1 } },
  });
  cleanups.push(() => kv.stop());
  await waitFor('a leader', () => kv.member.isLeader());
  const listen = (port: number) =>
    EtcdListener.listen({ kv, host: '127.0.0.1', port, clusterId: '7', members: () => undefined });
  let listener: EtcdListener | null = await listen(0);
  const port = listener.port;
  cleanups.push(() => listener?.close());
  return {
    kv,
    endpoint: `127.0.0.1:${port}`,
    client(endpoints = [`127.0.0.1:${port}`], opts = {}) {
      const c = connectGrpc(endpoints, { watchRetryMs: 20, ...opts });
      cleanups.push(() => c.close());
      return c;
    },
    async stopServing() {
      await listener?.close();
      listener = null;
    },
    async startServing() {
      if (listener !== null) throw new Error('startServing: already serving');
      listener = await listen(port);
    },
    async serveAlso() {
      const other = await listen(0);
      cleanups.push(() => other.close());
      return { endpoint: `127.0.0.1:${other.port}`, stop: () => other.close() };
    },
  };
}

/** A 127.0.0.1 port that nothing listens on (it was just free). */
export async function deadEndpoint(): Promise<string> {
  const { createServer } = await import('node:net');
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((r) => server.close(() => r()));
  return `127.0.0.1:${port}`;
}
