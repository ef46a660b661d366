// A real 3-member in-process cluster (memory storage and transport, real time) and clients on it.

import { afterEach } from 'vitest';
import { systemClock } from '../../adapters/clock/system.ts';
import { MemoryHub, type MemoryTransport } from '../../adapters/transport/memory.ts';
import { Client } from '../../src/client/client.ts';
import { InProcessConnection } from '../../src/client/local-connection.ts';
import { KvMember } from '../../src/server/kv-member.ts';
import { startKvMember, steadyTimings } from '../helpers/kv-members.ts';
import { waitFor } from '../helpers/wait.ts';

export interface TestCluster {
  members: KvMember[];
  transports: MemoryTransport[];
  /** A client on its own connection, starting at member `preferred`. */
  client(preferred?: number): Client;
  connection(preferred?: number): InProcessConnection;
  leader(): Promise<KvMember>;
}

const running: KvMember[] = [];
const clients: Client[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const m of running.splice(0)) await m.stop();
});

export async function cluster(): Promise<TestCluster> {
  const hub = new MemoryHub();
  const ids = [1, 2, 3];
  const transports = ids.map((id) => hub.connect(id));
  // Steady timings: with 5 ms ticks a loaded machine churned leaders and timed requests out (CI).
  const members = await Promise.all(ids.map((id, i) => startKvMember(hub, id, ids, { transport: transports[i], ...steadyTimings })));
  running.push(...members);
  const connection = (preferred = 0) => new InProcessConnection(members, { clock: systemClock, preferred, watchHealthCheckMs: 10 });
  const c: TestCluster = {
    members,
    transports,
    connection,
    client(preferred = 0) {
      const client = new Client({ connection: connection(preferred), clock: systemClock, watchRetryMs: 20 });
      clients.push(client);
      return client;
    },
    leader: () => waitFor('a leader', () => members.find((m) => !m.member.isStopped() && m.member.isLeader())),
  };
  await c.leader();
  return c;
}

export { waitFor };

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Resolves with whether `p` settled within `ms`. */
export async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let settled = false;
  p.then(
    () => (settled = true),
    () => (settled = true),
  );
  await sleep(ms);
  return settled;
}

export const text = (b: Uint8Array) => new TextDecoder().decode(b);
