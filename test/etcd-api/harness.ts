// Starts one meshkv member with etcd's API on an ephemeral 127.0.0.1 port, in-process, and
// runs the real etcdctl against it.

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { systemClock } from '../../adapters/clock/system.ts';
import { DEFAULT_HTTP2_SERVER, EtcdListener, type EtcdListenerOptions, type Http2ServerKind } from '../../adapters/etcd-api/listener.ts';
import { MemoryStorage } from '../../adapters/storage/memory.ts';
import { MemoryHub } from '../../adapters/transport/memory.ts';
import { KvMember } from '../../src/server/kv-member.ts';
import { prng } from '../raft/prng.ts';
import { collectLines } from '../helpers/processes.ts';

export { waitFor } from '../helpers/wait.ts';

export const etcdctlPath = '/usr/bin/etcdctl';

/** The tests drive the real etcdctl: fail loudly (never skip) when it is missing. */
export function requireEtcdctl(): void {
  if (!existsSync(etcdctlPath)) {
    throw new Error(`${etcdctlPath} not found: install etcd's client (Debian: apt-get install -y etcd-client); CI installs it`);
  }
}

export interface Served {
  kv: KvMember;
  listener: EtcdListener;
  endpoint: string;
  stop(): Promise<void>;
}

export const memberId = 0x2e1259d415f2a;

/**
 * MESHKV_HTTP2_SERVER (the member flag's variable, which CLI members read too) picks the HTTP/2
 * server of in-process members as well, so the whole suite can run on either.
 */
function http2ServerFromEnv(): Http2ServerKind {
  const v = process.env.MESHKV_HTTP2_SERVER ?? DEFAULT_HTTP2_SERVER;
  if (v !== 'meshkv' && v !== 'node') throw new Error(`MESHKV_HTTP2_SERVER must be meshkv or node, not ${JSON.stringify(v)}`);
  return v;
}

/**
 * `staticRoot`: a directory served as static files. `minTtlSeconds`: the lessor's shortest
 * lease TTL (2 s unless given); shorter grants get it. `http2Server`: the client port's HTTP/2
 * server (MESHKV_HTTP2_SERVER, else the listener's default).
 */
export async function serve(options: Pick<EtcdListenerOptions, 'staticRoot' | 'http2Server'> & { minTtlSeconds?: number } = {}): Promise<Served> {
  const hub = new MemoryHub();
  const kv = await KvMember.start({
    id: memberId,
    peers: [memberId],
    clock: systemClock,
    storage: new MemoryStorage(),
    transport: hub.connect(memberId),
    random: prng(Date.now()),
    tickMs: 10,
    electionTicks: 10,
    requestTimeoutMs: 3000,
    mvcc: { lessor: { minTtlSeconds: options.minTtlSeconds ?? 2 } },
    authCrypto: globalThis.crypto,
  });
  for (let i = 0; !kv.member.isLeader(); i++) {
    if (i > 500) throw new Error('single member did not become leader');
    await new Promise((r) => setTimeout(r, 5));
  }
  const listener = await EtcdListener.listen({
    ...(options.staticRoot === undefined ? {} : { staticRoot: options.staticRoot }),
    http2Server: options.http2Server ?? http2ServerFromEnv(),
    kv,
    host: '127.0.0.1',
    port: 0,
    clusterId: '324952591200643719',
    members: (id) =>
      id === memberId ? { name: 'default', peerURLs: ['http://localhost:2380'], clientURLs: [`http://127.0.0.1:${listener.port}`] } : undefined,
    // As `npm start` runs: membership changes served, but no peer listener.
    membership: { newMemberId: () => 0x1234, activeSince: () => null, peerListener: false },
  });
  const endpoint = `127.0.0.1:${listener.port}`;
  return {
    kv,
    listener,
    endpoint,
    async stop() {
      await listener.close();
      await kv.stop();
    },
  };
}

export interface CtlResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs etcdctl with ETCDCTL_API=3 against `endpoint`; never throws on a non-zero exit. */
export function etcdctl(endpoint: string, args: string[], stdin?: string): Promise<CtlResult> {
  return new Promise((resolve) => {
    const child = execFile(
      etcdctlPath,
      [`--endpoints=${endpoint}`, ...args],
      { env: { ...process.env, ETCDCTL_API: '3' }, timeout: 15_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
    if (stdin !== undefined) {
      // etcdctl may exit before it reads its stdin (most commands never read it): the write then
      // fails with EPIPE, and the exit code and output above already say what happened.
      child.stdin!.on('error', () => {});
      child.stdin!.end(stdin);
    }
  });
}

/** A long-running etcdctl (watch, keep-alive) whose stdout lines are collected. */
export function spawnEtcdctl(endpoint: string, args: string[]): { child: ChildProcess; lines: string[]; stop(): void } {
  const child = spawn(etcdctlPath, [`--endpoints=${endpoint}`, ...args], { env: { ...process.env, ETCDCTL_API: '3' } });
  const lines: string[] = [];
  collectLines(child.stdout!, lines);
  return {
    child,
    lines,
    stop() {
      if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGTERM');
    },
  };
}
