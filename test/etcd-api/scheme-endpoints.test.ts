// etcdctl with endpoints as most people type them (`http://127.0.0.1:2379`) against a 3-member
// meshkv cluster: the per-endpoint commands send `:authority: http://host:port`, which nghttp2
// refuses on its own; the authority shim (adapters/etcd-api/authority-shim.ts) lets them through.
// Every command runs with both spellings and must print the same thing, as with real etcd.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdListener } from '../../adapters/etcd-api/listener.ts';
import { MemoryHub } from '../../adapters/transport/memory.ts';
import type { KvMember } from '../../src/server/kv-member.ts';
import { startKvMember } from '../helpers/kv-members.ts';
import { etcdctl, requireEtcdctl, waitFor } from './harness.ts';

const ids = [0xa1, 0xb2, 0xc3];
let members: KvMember[] = [];
let listeners: EtcdListener[] = [];
/** host:port of each member, in `ids` order. */
let hostPorts: string[] = [];

beforeAll(async () => {
  requireEtcdctl();
  const hub = new MemoryHub();
  // Elections slower than the helper's default: a leader change mid-command would fail the
  // move-leader test on a loaded machine for reasons that have nothing to do with endpoints.
  members = await Promise.all(ids.map((id) => startKvMember(hub, id, ids, { tickMs: 20, electionTicks: 25 })));
  await waitFor('a leader', () => members.some((m) => m.member.isLeader()), 10_000);
  listeners = await Promise.all(
    members.map((kv) =>
      EtcdListener.listen({
        kv,
        host: '127.0.0.1',
        port: 0,
        clusterId: '324952591200643719',
        members: (id) => {
          const i = ids.indexOf(id);
          if (i < 0) return undefined;
          return { name: `m${i}`, peerURLs: [`http://127.0.0.1:${2380 + i}`], clientURLs: [`http://${hostPorts[i]}`] };
        },
      }),
    ),
  );
  hostPorts = listeners.map((l) => `127.0.0.1:${l.port}`);
}, 30_000);

afterAll(async () => {
  await Promise.all(listeners.map((l) => l.close()));
  await Promise.all(members.map((m) => m.stop()));
});

const leader = (): KvMember => members.find((m) => m.member.isLeader())!;

/** Runs etcdctl with all three endpoints, written with the scheme or without. */
async function ctl(scheme: boolean, ...args: string[]): Promise<string> {
  const eps = hostPorts.map((hp) => (scheme ? `http://${hp}` : hp)).join(',');
  const r = await etcdctl(eps, args);
  if (r.code !== 0) throw new Error(`etcdctl ${args.join(' ')} with ${eps} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** `endpoint health` reports on stderr (etcdctl 3.4 does so against real etcd too): its lines, sorted. */
async function health(scheme: boolean, ...args: string[]): Promise<string[]> {
  const eps = hostPorts.map((hp) => (scheme ? `http://${hp}` : hp)).join(',');
  const r = await etcdctl(eps, ['endpoint', 'health', ...args]);
  expect(r.code).toBe(0);
  return (r.stdout + r.stderr)
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('{"level"'))
    .map((l) => l.replace(/took = .*$/, 'took = T'))
    .sort();
}

describe('etcdctl with http:// endpoints against 3 members', () => {
  it.each([true, false])('endpoint status, hashkv, health, defrag name every member (scheme %s)', async (scheme) => {
    const shown = scheme ? hostPorts.map((hp) => `http://${hp}`) : hostPorts;
    const status = (await ctl(scheme, 'endpoint', 'status')).split('\n').filter((l) => l !== '');
    expect(status).toHaveLength(3);
    status.forEach((line, i) => {
      expect(line).toMatch(new RegExp(`^${shown[i]}, ${ids[i]!.toString(16)}, 3\\.4\\.23, \\d+ B, (true|false), false, \\d+, \\d+, \\d+, $`));
    });
    const hashes = (await ctl(scheme, 'endpoint', 'hashkv')).trim().split('\n');
    expect(hashes.map((l) => l.split(', ')[0])).toEqual(shown);
    await waitFor('equal hashes', () => new Set(members.map((m) => m.hashKV(0).hash)).size === 1, 10_000);
    expect(await health(scheme)).toEqual(
      [...shown].sort().map((ep) => `${ep} is healthy: successfully committed proposal: took = T`),
    );
    expect(await ctl(scheme, 'defrag')).toBe(shown.map((ep) => `Finished defragmenting etcd member[${ep}]\n`).join(''));
  });

  it('--cluster expands the member list (http:// URLs) and reaches every member', async () => {
    for (const scheme of [true, false]) {
      const json = JSON.parse(await ctl(scheme, 'endpoint', 'status', '--cluster', '-w', 'json')) as { Endpoint: string; Status: { header: { member_id: number } } }[];
      expect(json.map((e) => e.Endpoint).sort()).toEqual(hostPorts.map((hp) => `http://${hp}`).sort());
      expect(json.map((e) => e.Status.header.member_id).sort()).toEqual([...ids].sort());
      expect((await ctl(scheme, 'endpoint', 'hashkv', '--cluster')).trim().split('\n')).toHaveLength(3);
      expect(await health(scheme, '--cluster')).toEqual(
        hostPorts.map((hp) => `http://${hp} is healthy: successfully committed proposal: took = T`).sort(),
      );
    }
  });

  it('move-leader with an http:// endpoint hands leadership over', async () => {
    const from = leader();
    const to = members.find((m) => m !== from)!;
    const fromEp = `http://${hostPorts[members.indexOf(from)]}`;
    const r = await etcdctl(fromEp, ['move-leader', to.id.toString(16)]);
    expect(r, r.stderr).toMatchObject({ code: 0, stdout: `Leadership transferred from ${from.id.toString(16)} to ${to.id.toString(16)}\n` });
    await waitFor('the new leader', () => to.member.isLeader(), 10_000);
  });

  it('a lease granted through a follower has the follower\'s id on top, and every member holds that id', async () => {
    const follower = members.find((m) => !m.member.isLeader())!;
    const r = await etcdctl(`http://${hostPorts[members.indexOf(follower)]}`, ['lease', 'grant', '60']);
    const m = /^lease ([0-9a-f]{16}) granted with TTL\(60s\)\n$/.exec(r.stdout);
    expect(m, r.stdout + r.stderr).not.toBeNull();
    const id = BigInt('0x' + m![1]);
    expect(id >> 48n).toBe(BigInt(follower.id & 0xffff));
    for (const kv of members) {
      await waitFor('the lease on every member', () => kv.mvcc.leaseLeases().leases.some((l) => l.ID === id), 10_000);
    }
  });

  it('put, get, txn and watch work the same with either spelling', async () => {
    expect(await ctl(true, 'put', 'scheme', 'yes')).toBe('OK\n');
    expect(await ctl(false, 'get', 'scheme')).toBe('scheme\nyes\n');
    expect(await ctl(true, 'get', 'scheme', '-w', 'fields')).toContain('"Value" : "yes"');
  });
});
