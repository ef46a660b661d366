// Snapshots between meshkv and a real etcd 3.4.23, both ways, with etcd's own tools:
// `etcdctl snapshot save` against meshkv, `etcdctl snapshot status` and `snapshot restore` on
// the file, then a real etcd started on the restored directory must serve the same keys,
// values, create/mod revisions, versions, leases and compaction point. And the other way: a
// file a real etcd made, `meshkv snapshot restore`, and the meshkv member started on it.

import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, spawnCollecting, type Spawned } from '../helpers/processes.ts';
import { etcdctl, requireEtcdctl, serve, waitFor, type Served } from './harness.ts';
import { snapshotStepRecordsMax } from '../../adapters/etcd-api/snapshot-file.ts';
import { clusterIdOf, memberIdOf } from '../../adapters/node/config.ts';

const etcdPath = '/usr/bin/etcd';
const bin = new URL('../../bin/meshkv.mjs', import.meta.url).pathname;
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
    // Enough records for many leaf pages and a branch level, and for Maintenance.Snapshot to
    // write in more than one step (snapshotStepRecordsMax); one value spans overflow pages.
    for (let i = 0; i < 4500; i += 100) {
      await Promise.all(Array.from({ length: 100 }, (_, j) => put(`many/${String(i + j).padStart(4, '0')}`, `value ${i + j} `.repeat(8))));
    }
    await put('huge', new Uint8Array(20_000).fill(0x68));
    await put('a', '4');
    const compactAt = 5;
    await kv.compact({ revision: compactAt });
    await put('after', 'compaction');

    expect(kv.currentRevision).toBeGreaterThan(snapshotStepRecordsMax);
    const file = join(dir, 'from-meshkv.db');
    expect(await etcdctl(meshkv.endpoint, ['snapshot', 'save', file])).toMatchObject({ code: 0, stdout: `Snapshot saved at ${file}\n` });

    const status = await etcdctl(meshkv.endpoint, ['snapshot', 'status', file, '-w', 'json']);
    expect(status.code, status.stderr).toBe(0);
    const parsed = JSON.parse(status.stdout) as { revision: number; totalKey: number };
    expect(parsed.revision).toBe(kv.currentRevision);
    const table = await etcdctl(meshkv.endpoint, ['snapshot', 'status', file, '-w', 'table']);
    // etcd's table; columns are as wide as their widest cell.
    const [, head, , row] = table.stdout.split('\n');
    expect(head).toMatch(/^\| +HASH +\| REVISION \| TOTAL KEYS \| TOTAL SIZE \|$/);
    expect(row).toMatch(new RegExp(`^\\| +[0-9a-f]+ \\| +${kv.currentRevision} \\| +${parsed.totalKey} \\| +\\d+ kB \\|$`));

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

/** Runs the `meshkv` command (bin/meshkv.mjs) to its end. */
async function meshkvCommand(args: string[]): Promise<{ code: number | null; output: string }> {
  const run = spawnCollecting(process.execPath, [bin, ...args], { stdout: true });
  const code = await run.exited;
  return { code, output: run.logs.join('\n') };
}

describe('etcd → meshkv: a snapshot a real etcd made, meshkv snapshot restore, and a member started on it', () => {
  it('serves the same keys, history, leases and compaction point', async () => {
    const etcd = await startEtcd('src', join(dir, 'etcd-src'), await freePort());
    const ctl = async (...args: string[]) => {
      const r = await etcdctl(etcd, args);
      expect(r.code, r.stderr).toBe(0);
      return r.stdout;
    };
    await ctl('put', 'a', '1');
    await ctl('put', 'b', '2');
    await ctl('put', 'a', '3');
    await ctl('del', 'b');
    const lease = /^lease ([0-9a-f]+) granted/.exec(await ctl('lease', 'grant', '900'))![1];
    await ctl('put', 'leased', 'v', `--lease=${lease}`);
    // Enough for several leaf pages (each put is an etcdctl process: kept few).
    const many = 60;
    for (let i = 0; i < many; i++) await ctl('put', `many/${i}`, `value ${i} `.repeat(40));
    await ctl('put', 'huge', 'h'.repeat(20_000));
    await ctl('compaction', '6');
    await ctl('put', 'a', 'after compaction');
    const file = join(dir, 'from-etcd.db');
    await ctl('snapshot', 'save', file);

    const dataDir = join(dir, 'meshkv-restored');
    const port = await freePort();
    const cluster = `m1=http://127.0.0.1:${await freePort()}`;
    const restored = await meshkvCommand(['snapshot', 'restore', file, '--name', 'm1', '--data-dir', dataDir, '--initial-cluster', cluster]);
    expect(restored, restored.output).toMatchObject({ code: 0 });
    expect(restored.output).toContain(`Restored snapshot ${file} into ${dataDir}: revision ${8 + many}, compacted at 6, `);
    // A second restore into the same directory is refused, as etcdctl refuses it.
    const again = await meshkvCommand(['snapshot', 'restore', file, '--name', 'm1', '--data-dir', dataDir, '--initial-cluster', cluster]);
    expect(again).toMatchObject({ code: 1, output: `Error: data-dir ${JSON.stringify(dataDir)} exists` });

    const member = spawnCollecting(process.execPath, [bin, '--name', 'm1', '--data-dir', dataDir, '--initial-cluster', cluster, `--listen-client-urls=http://127.0.0.1:${port}`, '--browser-peers=off']);
    started.push(member);
    const endpoint = `127.0.0.1:${port}`;
    await waitFor('the restored member to serve', async () => member.child.exitCode !== null || (await etcdctl(endpoint, ['endpoint', 'health'])).code === 0, 30_000, 200);
    expect(member.child.exitCode, member.logs.join('\n')).toBeNull();

    expect(await allKeys(endpoint)).toEqual(await allKeys(etcd));
    expect(await allKeys(endpoint, 7)).toEqual(await allKeys(etcd, 7));
    expect((await etcdctl(endpoint, ['get', 'a', '--rev=5'])).stderr).toContain('etcdserver: mvcc: required revision has been compacted');
    expect(await leases(endpoint)).toEqual(await leases(etcd));
    expect((await etcdctl(endpoint, ['lease', 'timetolive', lease, '--keys'])).stdout).toMatch(/granted with TTL\(900s\), remaining\(\d+s\), attached keys\(\[leased\]\)/);
    // The member goes on from etcd's revision.
    const next = await etcdctl(endpoint, ['put', 'next', 'x', '-w', 'json']);
    expect((JSON.parse(next.stdout) as { header: { revision: number } }).header.revision).toBe(9 + many);
  }, 180_000);

  it('refuses a damaged file and a bare database without --skip-hash-check, writing nothing', async () => {
    const etcd = await startEtcd('src2', join(dir, 'etcd-src2'), await freePort());
    expect((await etcdctl(etcd, ['put', 'k', 'v'])).code).toBe(0);
    const file = join(dir, 'good.db');
    expect((await etcdctl(etcd, ['snapshot', 'save', file])).code).toBe(0);
    const bytes = readFileSync(file);
    const damaged = join(dir, 'damaged.db');
    const flipped = Buffer.from(bytes);
    flipped[5000] ^= 0xff;
    writeFileSync(damaged, flipped);
    const bare = join(dir, 'bare.db');
    writeFileSync(bare, bytes.subarray(0, bytes.length - 32));
    const notEtcd = join(dir, 'not-etcd.db');
    writeFileSync(notEtcd, Buffer.alloc(4096 * 4 + 32));
    const cases: [string, string][] = [
      [damaged, 'Error: snapshot file: sha256 mismatch (the file is damaged or truncated)'],
      [bare, 'Error: snapshot file: snapshot missing hash but --skip-hash-check=false'],
      [join(dir, 'missing.db'), `Error: cannot read ${join(dir, 'missing.db')}: ENOENT`],
    ];
    for (const [input, message] of cases) {
      const target = join(dir, 'never-written');
      expect(await meshkvCommand(['snapshot', 'restore', input, '--data-dir', target])).toEqual({ code: 1, output: message });
      expect(existsSync(target)).toBe(false);
    }
    const zeros = await meshkvCommand(['snapshot', 'restore', notEtcd, '--data-dir', join(dir, 'never-written'), '--skip-hash-check']);
    expect(zeros.code).toBe(1);
    expect(zeros.output).toMatch(/^Error: snapshot file: not an etcd snapshot \(bbolt: no valid meta page/);
    // With the flag, the bare database restores.
    const ok = await meshkvCommand(['snapshot', 'restore', bare, '--data-dir', join(dir, 'from-bare'), '--skip-hash-check']);
    expect(ok, ok.output).toMatchObject({ code: 0 });
  }, 120_000);
});

describe('etcd → a three-member meshkv cluster', () => {
  it('every member restores the same file with its own --name; the cluster serves etcd\'s history', async () => {
    const etcd = await startEtcd('src3', join(dir, 'etcd-src3'), await freePort());
    for (const [k, v] of [['x', '1'], ['y', '2'], ['x', '3']]) expect((await etcdctl(etcd, ['put', k, v])).code).toBe(0);
    const file = join(dir, 'for-three.db');
    expect((await etcdctl(etcd, ['snapshot', 'save', file])).code).toBe(0);
    const names = ['t1', 't2', 't3'];
    const peers = await Promise.all(names.map(() => freePort()));
    const clients = await Promise.all(names.map(() => freePort()));
    const cluster = names.map((n, i) => `${n}=http://127.0.0.1:${peers[i]}`).join(',');
    for (const name of names) {
      const r = await meshkvCommand(['snapshot', 'restore', file, '--name', name, '--data-dir', join(dir, `three-${name}`), '--initial-cluster', cluster]);
      expect(r, r.output).toMatchObject({ code: 0 });
    }
    names.forEach((name, i) => {
      started.push(
        spawnCollecting(process.execPath, [
          bin, '--name', name, '--data-dir', join(dir, `three-${name}`), '--initial-cluster', cluster,
          `--listen-client-urls=http://127.0.0.1:${clients[i]}`, '--browser-peers=off', '--admission-secret', 'etcd-snapshot-test-secret',
        ]),
      );
    });
    const endpoints = clients.map((p) => `127.0.0.1:${p}`);
    const expected = await allKeys(etcd);
    for (const endpoint of endpoints) {
      await waitFor(`${endpoint} to serve`, async () => (await etcdctl(endpoint, ['endpoint', 'health'])).code === 0, 60_000, 250);
      expect(await allKeys(endpoint)).toEqual(expected);
    }
    const next = await etcdctl(endpoints[2], ['put', 'z', 'after', '-w', 'json']);
    expect((JSON.parse(next.stdout) as { header: { revision: number } }).header.revision).toBe(5);
    const members = await etcdctl(endpoints[0], ['member', 'list']);
    expect(members.stdout.split('\n').filter((l) => l !== '').map((l) => l.split(', ')[2]).sort()).toEqual(names);
    // A restore founds a new cluster: one id on every member, from the new --initial-cluster
    // (etcdctl prints it as a JSON number beyond 2^53: read as text).
    const status = await etcdctl(endpoints[0], ['endpoint', 'status', '--cluster', '-w', 'json']);
    const ids = [...status.stdout.matchAll(/"cluster_id":(\d+)/g)].map((m) => m[1]);
    expect(ids).toEqual(names.map(() => clusterIdOf(names.map(memberIdOf))));
  }, 180_000);
});
