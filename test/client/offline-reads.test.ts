// Connectivity (src/server/connectivity.ts) and the client's consistency choices
// (src/client/consistency.ts) on a real in-process cluster: a member cut off from its peers goes
// offline; local reads still answer with the replica's data and revision; linearizable reads
// and writes fail at once when the client asked to fail fast, and wait otherwise.

import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../adapters/clock/system.ts';
import { Client } from '../../src/client/client.ts';
import { OfflineError } from '../../src/client/errors.ts';
import { ConnectivityWatch, type Connectivity } from '../../src/server/connectivity.ts';
import { MemoryHub } from '../../adapters/transport/memory.ts';
import { InProcessConnection } from '../../src/client/local-connection.ts';
import type { KvMember } from '../../src/server/kv-member.ts';
import { startSteadyTrio } from '../helpers/kv-members.ts';
import { settlesWithin, waitFor } from '../client/helpers.ts';

const running: KvMember[] = [];
afterEach(async () => {
  for (const m of running.splice(0)) await m.stop();
});

/** Three members on steady timings, and clients that start at member `preferred`. */
async function cluster() {
  const { members, transports } = await startSteadyTrio(new MemoryHub());
  running.push(...members);
  const connection = (preferred = 0) => new InProcessConnection(members, { clock: systemClock, preferred });
  return {
    members,
    transports,
    connection,
    client: (preferred = 0) => new Client({ connection: connection(preferred), clock: systemClock }),
    leader: () => waitFor('a leader', () => members.find((m) => m.isLeader())),
  };
}

describe('offline reads', () => {
  it('a cut-off member goes offline, serves local reads with their revision, and fails fast when asked', async () => {
    const c = await cluster();
    const leader = await c.leader();
    const i = c.members.findIndex((m) => m !== leader);
    const member = c.members[i];
    const watch = new ConnectivityWatch(member, systemClock, 20);
    const changes: Connectivity['state'][] = [];
    watch.onChange((s) => changes.push(s.state));
    try {
      await waitFor('online', () => watch.current().state === 'online');
      const online = c.client(i);
      await online.put('k').value('before');
      await waitFor('the member applied the write', () => member.currentRevision === leader.currentRevision);
      const revision = member.currentRevision;

      for (const m of c.members) if (m !== member) c.transports[i].faults.block(m.id);
      await waitFor('offline', () => watch.current().state === 'offline', 10_000);
      expect(changes.at(-1)).toBe('offline');
      // The others write on: this member's replica does not see it.
      await c.client(c.members.indexOf(leader)).put('k').value('after');
      const offline = watch.current();
      expect(offline.lastLeaderRevision).toBe(revision);
      expect(offline.stalenessMs).toBeGreaterThan(0);

      const client = new Client({ connection: c.connection(i), clock: systemClock, connectivity: () => watch.current(), failFastOffline: true });
      const local = await client.get('k').consistency('local').exec();
      expect(new TextDecoder().decode(local.kvs[0].value)).toBe('before');
      expect(local.header.revision).toBe(revision);
      expect(await client.with({ consistency: 'local' }).get('k')).toBe('before');
      const started = Date.now();
      await expect(client.get('k')).rejects.toBeInstanceOf(OfflineError);
      await expect(client.put('k').value('x')).rejects.toThrow(/^meshkv: offline: a write needs a leader with a quorum, and this member has heard from none for \d+ ms/);
      expect(Date.now() - started).toBeLessThan(500);
      // Without fail-fast the read waits (for the quorum or the request timeout).
      expect(await settlesWithin(client.with({ failFastOffline: false }).get('k').then(String), 300)).toBe(false);

      c.transports[i].faults.heal();
      await waitFor('online again', () => watch.current().state === 'online', 10_000);
      expect(await client.get('k')).toBe('after');
      expect(changes.at(-1)).toBe('online');
      client.close();
    } finally {
      watch.stop();
    }
  });

  it('refuses a consistency it does not know and fail-fast without a connectivity source', async () => {
    const c = await cluster();
    const client = c.client();
    expect(() => client.get('k').consistency('eventual' as 'local')).toThrow(`consistency must be 'linearizable' or 'local', not "eventual"`);
    expect(() => new Client({ connection: c.connection(), clock: systemClock, failFastOffline: true })).toThrow('Client: failFastOffline needs a connectivity source');
  });
});
