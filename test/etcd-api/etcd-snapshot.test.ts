// Snapshots between meshkv and a real etcd 3.4.23, both ways, with etcd's own tools:
// `etcdctl snapshot save` against meshkv, `etcdctl snapshot status` and `snapshot restore` on
// the file, then a real etcd started on the restored directory must serve the same keys,
// values, create/mod revisions, versions, leases and compaction point.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, spawnCollecting, type Spawned } from '../helpers/processes.ts';
import { etcdctl, requireEtcdctl, serve, waitFor, type Served } from './harness.ts';

const etcdPath = '/usr/bin/etcd';
const enc = new TextEncoder();

let meshkv: Served;
let dir: string;
const started: Spawned[] = [];

/** Starts a real etcd on `dataDir` (restored or fresh); resolves with its client endpoint once healthy. */
async function startEtcd(name: string, dataDir: string, peerPort: number): Promise<string> {
  const client = await freePort();
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  const etcd = spawnCollecting(etcdPath, [
    '--name', name, '--data-dir', dataDir,
    '--listen-client-urls', `http://127.0.0.1:${client}`, '--advertise-client-urls', `http://127.0.0.1:${client}`,
    '--listen-peer-urls', peerUrl, '--initial-advertise-peer-urls', peerUrl, '--initial-cluster', `${name}=${peerUrl}`,
  ]);
  started.push(etcd);
  const endpoint = `127.0.0.1:${client}`;
  await waitFor(`etcd on ${dataDir} to serve`, async () => (await etcdctl(endpoint, ['endpoint', 'health'])).code === 0, 30_000, 200);
  return endpoint;
}

/** Every key with its revisions, version, value and lease, as etcdctl prints them in JSON (header dropped). */
async function allKeys(endpoint: string, rev?: number): Promise<unknown> {
  const r = await etcdctl(endpoint, ['get', '', '--from-key', '-w', 'json', ...(rev === undefined ? [] : [`--rev=${rev}`])]);
  expect(r, r.stderr).toMatchObject({ code: 0 });
  const { header, ...rest } = JSON.parse(r.stdout) as { header: { revision: number } };
  return { revision: header.revision, ...rest };
}

async function leases(endpoint: string): Promise<string[]> {
  const r = await etcdctl(endpoint, ['lease', 'list']);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.split('\n').slice(1).filter((l) => l !== '').sort();
}

beforeAll(async () => {
  requireEtcdctl();
  dir = mkdtempSync(join(tmpdir(), 'meshkv-etcdsnap-'));
  meshkv = await serve();
}, 30_000);

afterAll(async () => {
  for (const { child, exited } of started) {
    if (child.pid !== undefined && child.exitCode === null) {
      process.kill(child.pid, 'SIGTERM');
      await exited;
    }
  }
  await meshkv?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('meshkv → etcd: etcdctl snapshot save, status, restore, and a real etcd on it', () => {
  it('serves the same keys, history, leases and compaction point', async () => {
    const kv = meshkv.kv;
    const put = (key: string, value: string | Uint8Array, lease?: bigint) =>
      kv.put({ key: enc.encode(key), value: typeof value === 'string' ? enc.encode(value) : value, ...(lease === undefined ? {} : { lease }) });
    await put('a', '1');
    await put('b', '2');
    await put('a', '3');
    await kv.deleteRange({ key: enc.encode('b') });
    const lease = (await kv.leaseGrant({ ID: 0n, TTL: 600 })).ID;
    await put('leased', 'v', lease);
    // Enough records for many leaf pages and a branch level; one value spans overflow pages.
    for (let i = 0; i < 400; i++) await put(`many/${String(i).padStart(3, '0')}`, `value ${i} `.repeat(8));
    await put('huge', new Uint8Array(20_000).fill(0x68));
    await put('a', '4');
    const compactAt = 5;
    await kv.compact({ revision: compactAt });
    await put('after', 'compaction');

    const file = join(dir, 'from-meshkv.db');
    expect(await etcdctl(meshkv.endpoint, ['snapshot', 'save', file])).toMatchObject({ code: 0, stdout: `Snapshot saved at ${file}\n` });

    const status = await etcdctl(meshkv.endpoint, ['snapshot', 'status', file, '-w', 'json']);
    expect(status.code, status.stderr).toBe(0);
    const parsed = JSON.parse(status.stdout) as { revision: number; totalKey: number };
    expect(parsed.revision).toBe(kv.currentRevision);
    const table = await etcdctl(meshkv.endpoint, ['snapshot', 'status', file, '-w', 'table']);
    expect(table.stdout.split('\n')[1]).toBe('|   HASH   | REVISION | TOTAL KEYS | TOTAL SIZE |');

    const peer = await freePort();
    const restored = join(dir, 'restored');
    const restore = await etcdctl(meshkv.endpoint, [
      'snapshot', 'restore', file, '--data-dir', restored, '--name', 'r1',
      '--initial-cluster', `r1=http://127.0.0.1:${peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
    ]);
    expect(restore.code, restore.stderr).toBe(0);
    const etcd = await startEtcd('r1', restored, peer);

    expect(await allKeys(etcd)).toEqual(await allKeys(meshkv.endpoint));
    // History above the compaction point is there; below it, both refuse alike.
    expect(await allKeys(etcd, compactAt + 1)).toEqual(await allKeys(meshkv.endpoint, compactAt + 1));
    const below = await etcdctl(etcd, ['get', 'a', `--rev=${compactAt - 1}`]);
    expect(below.stderr).toContain('etcdserver: mvcc: required revision has been compacted');
    expect(await etcdctl(meshkv.endpoint, ['get', 'a', `--rev=${compactAt - 1}`])).toMatchObject({ stderr: expect.stringContaining('required revision has been compacted') });
    expect(await leases(etcd)).toEqual(await leases(meshkv.endpoint));
    const ttl = await etcdctl(etcd, ['lease', 'timetolive', lease.toString(16), '--keys']);
    expect(ttl.stdout).toMatch(new RegExp(`^lease ${lease.toString(16)} granted with TTL\\(600s\\), remaining\\(\\d+s\\), attached keys\\(\\[leased\\]\\)\n$`));
    // And etcd goes on from the same revision.
    const next = await etcdctl(etcd, ['put', 'next', 'x', '-w', 'json']);
    expect((JSON.parse(next.stdout) as { header: { revision: number } }).header.revision).toBe(kv.currentRevision + 1);
  }, 120_000);
});
