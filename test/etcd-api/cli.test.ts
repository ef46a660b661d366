// The `meshkv` command as a user runs it: node bin/meshkv.mjs, then etcdctl against it.

import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { etcdctl, requireEtcdctl, spawnEtcdctl, waitFor } from './harness.ts';
import { freePort, spawnCollecting } from '../helpers/processes.ts';
import { semiSpaceBytesMax } from '../../adapters/node/young-generation.ts';
import { signalingPath } from '../../adapters/node/config.ts';

const bin = new URL('../../bin/meshkv.mjs', import.meta.url).pathname;

interface Running {
  child: ChildProcess;
  logs: string[];
  exited: Promise<number | null>;
}

const started: Running[] = [];
const dirs: string[] = [];

beforeAll(() => requireEtcdctl());
afterEach(async () => {
  for (const r of started.splice(0)) {
    if (r.child.exitCode === null && r.child.signalCode === null && r.child.pid !== undefined) process.kill(r.child.pid, 'SIGKILL');
    await r.exited;
  }
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'meshkv-cli-'));
  dirs.push(d);
  return d;
}


function meshkv(args: string[], env: Record<string, string> = {}, nodeArgs: string[] = []): Running {
  const r = spawnCollecting(process.execPath, [...nodeArgs, bin, ...args], { env, stdout: false });
  started.push(r);
  return r;
}

/** Waits until the member serves and has a leader (a single member elects itself). */
async function ready(r: Running): Promise<void> {
  await waitFor('the member to be ready', () => r.logs.some((l) => l.includes('"msg":"ready: the cluster has a leader"')) || r.child.exitCode !== null, 15_000);
  if (r.child.exitCode !== null) throw new Error(`meshkv exited with ${r.child.exitCode}:\n${r.logs.join('\n')}`);
}

describe('meshkv CLI', () => {
  it('serves etcdctl, logs JSON lines, stops on SIGTERM and keeps its data across a restart', async () => {
    const dir = join(tempDir(), 'data');
    const port = await freePort();
    const endpoint = `127.0.0.1:${port}`;
    const args = ['--name', 'one', '--data-dir', dir, `--listen-client-urls=http://${endpoint}`];
    const first = meshkv(args);
    await ready(first);
    expect(await etcdctl(endpoint, ['put', 'persist', 'me'])).toMatchObject({ code: 0, stdout: 'OK\n' });
    expect((await etcdctl(endpoint, ['member', 'list'])).stdout).toMatch(new RegExp(`^[0-9a-f]+, started, one, http://localhost:2380, http://${endpoint}, false\\n$`));
    for (const line of first.logs) expect(() => JSON.parse(line), line).not.toThrow();
    // An open watch stream must not hold up the shutdown.
    const watch = spawnEtcdctl(endpoint, ['watch', 'persist']);
    await new Promise((r) => setTimeout(r, 300));
    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);
    watch.stop();
    expect(first.logs.some((l) => JSON.parse(l).msg === 'stopped')).toBe(true);

    const second = meshkv(args);
    await ready(second);
    expect((await etcdctl(endpoint, ['get', 'persist'])).stdout).toBe('persist\nme\n');
    const memberIds = (await etcdctl(endpoint, ['member', 'list'])).stdout.split(',')[0];
    expect(memberIds).toMatch(/^[0-9a-f]+$/);
    second.child.kill('SIGINT');
    expect(await second.exited).toBe(0);
  });

  it('serves puts, reads, watches, leases and endpoint status without loading grpc-js, protobufjs, ws or node-datachannel', async () => {
    // A probe in the member's process: on SIGUSR2 it logs the npm packages loaded so far (every
    // CommonJS module, imported or required, lands in require.cache).
    const probe = [
      "import { createRequire } from 'node:module';",
      "process.on('SIGUSR2', () => {",
      "  const names = Object.keys(createRequire(process.cwd() + '/').cache).map((f) => /node_modules\\/((?:@[^/]+\\/)?[^/]+)/.exec(f)?.[1]);",
      "  process.stderr.write('loaded-packages ' + JSON.stringify([...new Set(names.filter(Boolean))].sort()) + '\\n');",
      '});',
    ].join('\n');
    const endpoint = `127.0.0.1:${await freePort()}`;
    const member = meshkv(['--data-dir', join(tempDir(), 'data'), `--listen-client-urls=http://${endpoint}`], {}, ['--import', `data:text/javascript,${encodeURIComponent(probe)}`]);
    await ready(member);
    const loaded = async (): Promise<string[]> => {
      const seen = member.logs.length;
      member.child.kill('SIGUSR2');
      let line: string | undefined;
      await waitFor('the probe to answer', () => (line = member.logs.slice(seen).find((l) => l.startsWith('loaded-packages '))) !== undefined, 10_000);
      return JSON.parse(line!.slice('loaded-packages '.length)) as string[];
    };
    const watch = spawnEtcdctl(endpoint, ['watch', 'lazy']);
    await new Promise((r) => setTimeout(r, 300));
    const lease = (await etcdctl(endpoint, ['lease', 'grant', '60'])).stdout.split(' ')[1]!;
    expect(await etcdctl(endpoint, ['put', 'lazy', 'v', '--lease', lease])).toMatchObject({ code: 0, stdout: 'OK\n' });
    expect((await etcdctl(endpoint, ['get', 'lazy'])).stdout).toBe('lazy\nv\n');
    expect(await etcdctl(endpoint, ['txn'], 'value("lazy") = "v"\n\nput lazy w\n\n\n')).toMatchObject({ code: 0 });
    expect(await etcdctl(endpoint, ['lease', 'keep-alive', '--once', lease])).toMatchObject({ code: 0 });
    expect((await etcdctl(endpoint, ['endpoint', 'status'])).stdout).toContain('3.4.23');
    await waitFor('the watch to see both puts', () => watch.lines.filter((l) => l === 'PUT').length === 2, 10_000);
    watch.stop();
    const before = await loaded();
    expect(before).toContain('lmdb');
    expect(before.filter((p) => ['@grpc/grpc-js', '@grpc/proto-loader', 'protobufjs', 'ws'].includes(p))).toEqual([]);
    // Tabs may join (--browser-peers is on by default), but node-datachannel's native library is
    // mapped only once one connects: a member no tab reached does not carry its pages.
    expect(readFileSync(`/proc/${member.child.pid}/maps`, 'utf8')).not.toContain('node_datachannel');
    // A method protobufjs serves loads it (and so the probe sees loads): member list.
    expect((await etcdctl(endpoint, ['member', 'list'])).code).toBe(0);
    expect(await loaded()).toContain('protobufjs');
    // A WebSocket to the signaling endpoint (a tab or another member joining) loads ws.
    const socket = new WebSocket(`ws://${endpoint}${signalingPath}`);
    await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
    socket.close();
    expect(await loaded()).toContain('ws');
  });

  it('holds V8\'s new space to 2 x 4 MiB under a put load, unless node is given a young-generation flag', async () => {
    // A probe in the member's process: the largest new space seen after any collection, logged
    // on SIGUSR2. Left to itself V8 grows new space to 2 x 16 MiB under this load.
    const probe = [
      "import { getHeapSpaceStatistics } from 'node:v8';",
      "import { PerformanceObserver } from 'node:perf_hooks';",
      'let peak = 0;',
      "const see = () => { peak = Math.max(peak, getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size); };",
      "new PerformanceObserver(see).observe({ entryTypes: ['gc'] });",
      "process.on('SIGUSR2', () => { see(); process.stderr.write('new-space-peak ' + peak + '\\n'); });",
    ].join('\n');
    const newSpacePeak = async (nodeArgs: string[]): Promise<number> => {
      const endpoint = `127.0.0.1:${await freePort()}`;
      const member = meshkv(['--data-dir', join(tempDir(), 'data'), `--listen-client-urls=http://${endpoint}`], {}, [...nodeArgs, '--import', `data:text/javascript,${encodeURIComponent(probe)}`]);
      await ready(member);
      const load = spawnCollecting(process.execPath, [bin, 'bench', 'put', `--endpoints=${endpoint}`, '--total=2000', '--clients=64', '--conns=4', '--val-size=4096', '--json'], { stdout: true });
      expect(await load.exited).toBe(0);
      member.child.kill('SIGUSR2');
      let line: string | undefined;
      await waitFor('the probe to answer', () => (line = member.logs.find((l) => l.startsWith('new-space-peak '))) !== undefined, 10_000);
      member.child.kill('SIGTERM');
      expect(await member.exited).toBe(0);
      return Number(line!.slice('new-space-peak '.length));
    };
    expect(await newSpacePeak([])).toBeLessThanOrEqual(2 * semiSpaceBytesMax);
    // A person's own choice of the young generation wins, and this load does grow it past the bound.
    expect(await newSpacePeak(['--semi-space-growth-factor=2'])).toBeGreaterThan(2 * semiSpaceBytesMax);
  }, 240_000);

  it('keeps every acknowledged put across a SIGKILL that lands inside the backend\'s batch interval', async () => {
    // With a batch interval longer than the test, the puts acknowledged before the kill are in
    // the WAL alone, and the restart applies them again from it.
    const dir = join(tempDir(), 'data');
    const port = await freePort();
    const endpoint = `127.0.0.1:${port}`;
    const args = ['--name', 'one', '--data-dir', dir, `--listen-client-urls=http://${endpoint}`, '--backend-batch-interval=600s'];
    const first = meshkv(args);
    await ready(first);
    for (let i = 1; i <= 3; i++) expect(await etcdctl(endpoint, ['put', `crash${i}`, `v${i}`])).toMatchObject({ code: 0, stdout: 'OK\n' });
    first.child.kill('SIGKILL');
    expect(await first.exited).toBe(null);

    const second = meshkv(args);
    await ready(second);
    const got = await etcdctl(endpoint, ['get', 'crash', '--prefix']);
    expect(got.stdout).toBe('crash1\nv1\ncrash2\nv2\ncrash3\nv3\n');
    // Writes after the restart get revisions past the replayed ones.
    expect(await etcdctl(endpoint, ['put', 'after', 'x'])).toMatchObject({ code: 0 });
    const rev = JSON.parse((await etcdctl(endpoint, ['get', 'after', '-w', 'json'])).stdout).kvs[0].mod_revision;
    expect(rev).toBe(5);
    second.child.kill('SIGINT');
    expect(await second.exited).toBe(0);
  });

  it('refuses a data dir that another meshkv holds, naming the holder', async () => {
    const dir = join(tempDir(), 'data');
    const holder = meshkv(['--data-dir', dir, '--listen-client-urls', `http://127.0.0.1:${await freePort()}`]);
    await ready(holder);
    // The second one names a peer: it must stop at the lock, before it dials that peer or
    // listens for peers (a member that dialled first would reach the live member's cluster).
    let dialled = 0;
    const peer = createServer((socket) => {
      dialled++;
      socket.destroy();
    });
    await new Promise<void>((r) => peer.listen(0, '127.0.0.1', r));
    try {
      const peerUrl = `http://127.0.0.1:${(peer.address() as AddressInfo).port}`;
      const ownPeerUrl = `http://127.0.0.1:${await freePort()}`;
      const second = meshkv([
        '--name', 'second', '--data-dir', dir, '--listen-client-urls', `http://127.0.0.1:${await freePort()}`,
        '--listen-peer-urls', ownPeerUrl, '--initial-advertise-peer-urls', ownPeerUrl,
        '--initial-cluster', `second=${ownPeerUrl},other=${peerUrl}`, '--admission-secret', 'lock-test-secret',
      ]);
      expect(await second.exited).toBe(1);
      const error = JSON.parse(second.logs.find((l) => l.includes('"error"'))!);
      expect(error.msg).toBe(
        `data dir ${dir} is locked by process ${holder.child.pid}: stop that process first; if it is not a meshkv member, delete ${join(dir, 'LOCK')}`,
      );
      expect(second.logs.filter((l) => l.includes('dialling peer') || l.includes('serving peer traffic'))).toEqual([]);
      expect(dialled).toBe(0);
    } finally {
      await new Promise((r) => peer.close(r));
    }
  });

  it('refuses an occupied port with etcd\'s "listen tcp …: bind: address already in use"', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as AddressInfo).port;
    try {
      const r = meshkv(['--data-dir', join(tempDir(), 'data')], { MESHKV_LISTEN_CLIENT_URLS: `http://127.0.0.1:${port}` });
      expect(await r.exited).toBe(1);
      expect(r.logs.map((l) => JSON.parse(l)).find((l) => l.level === 'error').msg).toBe(`listen tcp 127.0.0.1:${port}: bind: address already in use`);
    } finally {
      blocker.close();
    }
  });

  it('refuses an occupied peer port with etcd\'s "listen tcp …: bind: address already in use"', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as AddressInfo).port;
    try {
      const r = meshkv([
        '--name', 'a', '--data-dir', join(tempDir(), 'data'), '--listen-client-urls', `http://127.0.0.1:${await freePort()}`,
        '--initial-cluster', `a=http://127.0.0.1:${port},b=http://127.0.0.1:${await freePort()}`,
        '--admission-secret', 'cli-test-admission-secret',
      ]);
      expect(await r.exited).toBe(1);
      expect(JSON.parse(r.logs.find((l) => l.includes('"error"'))!).msg).toBe(`listen tcp 127.0.0.1:${port}: bind: address already in use`);
    } finally {
      blocker.close();
    }
  });

  it('refuses unknown flags and bad URLs with a usage error', async () => {
    const unknown = meshkv(['--bogus', 'x']);
    expect(await unknown.exited).toBe(2);
    expect(unknown.logs).toEqual(['meshkv: unknown flag --bogus (see meshkv --help)']);
    const tls = meshkv(['--listen-client-urls', 'https://127.0.0.1:2379']);
    expect(await tls.exited).toBe(2);
    expect(tls.logs).toEqual(['meshkv: client URL https://127.0.0.1:2379 is https://: give --cert-file and --key-file']);
  });
});
