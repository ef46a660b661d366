// Moving up: `etcdctl make-mirror` copies a meshkv member's keys into a real etcd (3.4.23) and keeps
// them in sync through a watch. Both servers are real processes, killed by PID in afterAll.

import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../cluster/processes.ts';
import { etcdctl, etcdctlPath, requireEtcdctl, waitFor } from './harness.ts';
import { freePort, spawnCollecting } from '../helpers/processes.ts';

const bin = new URL('../../bin/meshkv.mjs', import.meta.url).pathname;
const etcdPath = '/usr/bin/etcd';

interface Proc {
  child: ChildProcess;
  logs: string[];
  exited: Promise<number | null>;
}

const procs: Proc[] = [];
let root: string;
let meshkvEndpoint: string;
let etcdEndpoint: string;
let source: Etcd3;

function start(cmd: string, args: string[], env: Record<string, string> = {}): Proc {
  const p = spawnCollecting(cmd, args, { env, stdout: true });
  procs.push(p);
  return p;
}

async function killByPid(p: Proc): Promise<void> {
  if (p.child.exitCode === null && p.child.signalCode === null && p.child.pid !== undefined) process.kill(p.child.pid, 'SIGKILL');
  await p.exited;
}

/** `etcdctl make-mirror` from meshkv into etcd; it runs until killed. */
function makeMirror(extra: string[] = []): Proc {
  return start(etcdctlPath, [`--endpoints=${meshkvEndpoint}`, 'make-mirror', ...extra, etcdEndpoint], { ETCDCTL_API: '3' });
}

interface Kv {
  key: string; // base64, as etcdctl -w json prints it
  value: string;
  lease?: number;
}

/** Every key of the server, base64 key -> kv, from `etcdctl get "" --from-key -w json`. */
async function dump(endpoint: string): Promise<Map<string, Kv>> {
  const r = await etcdctl(endpoint, ['get', '', '--from-key', '-w', 'json']);
  if (r.code !== 0) throw new Error(`etcdctl get on ${endpoint} failed: ${r.stderr}`);
  const kvs = (JSON.parse(r.stdout) as { kvs?: Kv[] }).kvs ?? [];
  return new Map(kvs.map((kv) => [kv.key, kv]));
}

/** base64 key -> base64 value, optionally only the keys starting with `prefix`. */
function values(m: Map<string, Kv>, prefix?: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, kv] of m) {
    if (prefix !== undefined && !Buffer.from(k, 'base64').toString('latin1').startsWith(prefix)) continue;
    out[k] = kv.value ?? '';
  }
  return out;
}

const b64 = (s: string | Buffer) => (typeof s === 'string' ? Buffer.from(s, 'utf8') : s).toString('base64');

/** Waits until etcd holds exactly meshkv's keys and values (under `prefix`, when given). */
async function converged(prefix?: string): Promise<Record<string, string>> {
  let last = '';
  try {
    return await eventually(
      'etcd to hold what meshkv holds',
      async () => {
        const [want, got] = [values(await dump(meshkvEndpoint), prefix), values(await dump(etcdEndpoint), prefix === undefined ? undefined : '')];
        last = `meshkv ${Object.keys(want).length} keys, etcd ${Object.keys(got).length} keys`;
        return JSON.stringify(sortKeys(want)) === JSON.stringify(sortKeys(got)) && want;
      },
      20_000,
    );
  } catch (e) {
    throw new Error(`${(e as Error).message} (${last})`);
  }
}

function sortKeys(r: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(r).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

beforeAll(async () => {
  requireEtcdctl();
  if (!existsSync(etcdPath)) throw new Error(`${etcdPath} not found: install etcd (Debian: apt-get install -y etcd-server)`);
  root = mkdtempSync(join(tmpdir(), 'meshkv-mirror-'));

  const mport = await freePort();
  meshkvEndpoint = `127.0.0.1:${mport}`;
  const meshkv = start(process.execPath, [bin, '--name', 'src', '--data-dir', join(root, 'meshkv.data'), '--listen-client-urls', `http://${meshkvEndpoint}`]);

  const [cport, pport] = [await freePort(), await freePort()];
  etcdEndpoint = `127.0.0.1:${cport}`;
  const etcd = start(etcdPath, [
    '--name', 'm',
    '--data-dir', join(root, 'etcd.data'),
    '--listen-client-urls', `http://${etcdEndpoint}`,
    '--advertise-client-urls', `http://${etcdEndpoint}`,
    '--listen-peer-urls', `http://127.0.0.1:${pport}`,
    '--initial-advertise-peer-urls', `http://127.0.0.1:${pport}`,
    '--initial-cluster', `m=http://127.0.0.1:${pport}`,
  ]);

  await waitFor('meshkv to be ready', () => meshkv.logs.some((l) => l.includes('"msg":"ready: the cluster has a leader"')) || meshkv.child.exitCode !== null, 15_000);
  if (meshkv.child.exitCode !== null) throw new Error(`meshkv exited with ${meshkv.child.exitCode}:\n${meshkv.logs.join('\n')}`);
  await eventually('etcd to be healthy', async () => etcd.child.exitCode === null && (await etcdctl(etcdEndpoint, ['endpoint', 'health'])).code === 0, 20_000).catch((e) => {
    throw new Error(`${(e as Error).message}\n${etcd.logs.slice(-20).join('\n')}`);
  });
  source = new Etcd3({ hosts: `http://${meshkvEndpoint}` });
}, 60_000);

afterAll(async () => {
  source?.close();
  for (const p of procs.splice(0)) await killByPid(p);
  if (root) rmSync(root, { recursive: true, force: true });
});

describe('etcdctl make-mirror from meshkv into etcd 3.4', () => {
  const deleted: string[] = [];

  it('copies every key (more than one 1000-key page), then streams puts and deletes until killed', async () => {
    // 1100 plain keys: make-mirror reads the source in pages of 1000 at one revision.
    for (let i = 0; i < 1100; i += 100) {
      await Promise.all(Array.from({ length: 100 }, (_, j) => source.put(`k/${String(i + j).padStart(4, '0')}`).value(`v${i + j}`)));
    }
    for (let i = 0; i < 1100; i += 7) await source.put(`k/${String(i).padStart(4, '0')}`).value(`overwritten ${i}`);
    for (let i = 3; i < 1100; i += 11) {
      const key = `k/${String(i).padStart(4, '0')}`;
      await source.delete().key(key);
      deleted.push(key);
    }
    // A directory, unicode, binary values and keys, an empty value, a key under a lease.
    for (let i = 0; i < 40; i++) await source.put(`dir/${i}`).value(`in dir ${i}`);
    await source.put('dir/ünïcødé/κλειδί').value('値 🚀 — ok');
    await source.put('unicode/emoji').value('🦀🐍🐹');
    await source.put('bin/value').value(Buffer.from([0, 1, 2, 0xff, 0xfe, 0x80, 10, 13, 0]));
    await source.put(Buffer.from([0x01, 0xff, 0x00, 0x7f])).value(Buffer.from([0xc3, 0x28, 0xa0, 0xa1]));
    await source.put('empty').value('');
    const lease = source.lease(600, { autoKeepAlive: false });
    await lease.put('leased').value('expires in meshkv');
    const leaseId = await lease.grant();

    const mirror = makeMirror();
    const before = await converged();
    expect(Object.keys(before).length).toBe(1100 - deleted.length + 40 + 6);
    for (const key of deleted) expect(before[b64(key)]).toBeUndefined();
    // Leases do not carry over: the key arrives in etcd without one, and etcd has no leases.
    expect(leaseId).toBeTruthy();
    expect((await dump(meshkvEndpoint)).get(b64('leased'))?.lease).toBeTruthy();
    expect((await dump(etcdEndpoint)).get(b64('leased'))?.lease).toBeUndefined();
    expect((await etcdctl(etcdEndpoint, ['lease', 'list'])).stdout).toBe('found 0 leases\n');

    // While make-mirror runs: new keys, overwrites, deletes, a range delete.
    await source.put('live/new').value('after the sync');
    await source.put('k/0000').value('changed while mirroring');
    await source.put('bin/live').value(Buffer.from([0xff, 0, 0xff]));
    await source.delete().key('k/0001');
    await source.delete().prefix('dir/1');
    await source.put('dir/1').value('back');
    await lease.revoke(); // deletes 'leased' in meshkv: make-mirror mirrors that delete
    deleted.push('k/0001', 'dir/10', 'dir/19', 'leased');
    await Promise.all(Array.from({ length: 50 }, (_, i) => source.put(`burst/${i}`).value(`b${i}`)));
    await converged();
    expect(mirror.child.exitCode).toBe(null);
    await killByPid(mirror);

    const [inMeshkv, inEtcd] = [await dump(meshkvEndpoint), await dump(etcdEndpoint)];
    for (const [key, kv] of inMeshkv) expect(inEtcd.get(key)?.value, Buffer.from(key, 'base64').toString()).toBe(kv.value);
    expect(inEtcd.size).toBe(inMeshkv.size);
    for (const key of deleted) expect(inEtcd.has(b64(key)), key).toBe(false);
    expect(inEtcd.get(b64('dir/1'))?.value).toBe(b64('back'));
    expect(inEtcd.get(b64('bin/live'))?.value).toBe(b64(Buffer.from([0xff, 0, 0xff])));
    expect(inEtcd.get(b64(Buffer.from([0x01, 0xff, 0x00, 0x7f])))?.value).toBe(b64(Buffer.from([0xc3, 0x28, 0xa0, 0xa1])));
  }, 90_000);

  it('--prefix mirrors one directory only', async () => {
    expect((await etcdctl(etcdEndpoint, ['del', '', '--from-key'])).code).toBe(0);
    const mirror = makeMirror(['--prefix=dir/']);
    const dir = await converged('dir/');
    expect(Object.keys(dir).length).toBe(40 - 11 + 1 + 1);
    await source.put('dir/late').value('arrives');
    await source.put('elsewhere').value('stays behind');
    await source.delete().key('dir/2');
    const after = await converged('dir/');
    expect(after[b64('dir/late')]).toBe(b64('arrives'));
    expect(after[b64('dir/2')]).toBeUndefined();
    await killByPid(mirror);
    const inEtcd = await dump(etcdEndpoint);
    expect([...inEtcd.keys()].every((k) => Buffer.from(k, 'base64').toString('latin1').startsWith('dir/'))).toBe(true);
    expect(inEtcd.size).toBe(Object.keys(after).length);
  }, 60_000);
});
