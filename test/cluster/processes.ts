// Real meshkv processes on 127.0.0.1 for cluster tests: free ports, spawn, wait, kill by PID.

import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { etcdctl } from '../etcd-api/harness.ts';
import { waitFor } from '../helpers/wait.ts';
import { freePort, spawnCollecting } from '../helpers/processes.ts';

const bin = new URL('../../bin/meshkv.mjs', import.meta.url).pathname;
/** The admission secret every member started here shares (unless a test gives its own). */
export const testAdmissionSecret = 'test-cluster-admission-secret';


export interface MemberSpec {
  name: string;
  clientPort: number;
  peerPort: number;
  dataDir: string;
}

export interface Proc {
  spec: MemberSpec;
  child: ChildProcess;
  logs: string[];
  exited: Promise<number | null>;
  endpoint: string;
}

export class Processes {
  private readonly procs: Proc[] = [];
  readonly root = mkdtempSync(join(tmpdir(), 'meshkv-cluster-'));

  async spec(name: string): Promise<MemberSpec> {
    return { name, clientPort: await freePort(), peerPort: await freePort(), dataDir: join(this.root, `${name}.data`) };
  }

  /** An https scheme needs the peer or client TLS flags in `extra`. */
  start(spec: MemberSpec, initialCluster: MemberSpec[], extra: string[] = [], schemes: { peer?: 'https'; client?: 'https' } = {}): Proc {
    const peerScheme = schemes.peer ?? 'http';
    const args = [
      bin,
      '--name', spec.name,
      '--data-dir', spec.dataDir,
      '--listen-client-urls', `${schemes.client ?? 'http'}://127.0.0.1:${spec.clientPort}`,
      '--listen-peer-urls', `${peerScheme}://127.0.0.1:${spec.peerPort}`,
      '--initial-advertise-peer-urls', `${peerScheme}://127.0.0.1:${spec.peerPort}`,
      '--initial-cluster', initialCluster.map((m) => `${m.name}=${peerScheme}://127.0.0.1:${m.peerPort}`).join(','),
      '--initial-cluster-token', 'test-cluster',
      ...(extra.some((f) => f.startsWith('--admission-secret')) ? [] : ['--admission-secret', testAdmissionSecret]),
      ...extra,
    ];
    const { child, logs, exited } = spawnCollecting(process.execPath, args);
    const p = { spec, child, logs, exited, endpoint: `127.0.0.1:${spec.clientPort}` };
    this.procs.push(p);
    return p;
  }

  async kill9(p: Proc): Promise<void> {
    if (p.child.exitCode === null && p.child.signalCode === null && p.child.pid !== undefined) process.kill(p.child.pid, 'SIGKILL');
    await p.exited;
  }

  /** Kills every process started here, by PID, and removes the data dirs. */
  async cleanup(): Promise<void> {
    for (const p of this.procs) await this.kill9(p);
    rmSync(this.root, { recursive: true, force: true });
  }
}

/**
 * Waits until the member logs that the cluster has a leader. Generous by default: no test here
 * measures start-up, and on a loaded machine a member took over 20 s to log its first line.
 */
export async function ready(p: Proc, timeoutMs = 45_000): Promise<void> {
  try {
    await waitFor(`${p.spec.name} to be ready`, () => p.logs.some((l) => l.includes('"msg":"ready: the cluster has a leader"')) || p.child.exitCode !== null, timeoutMs);
  } catch (err) {
    // What the member did meanwhile is the only clue a CI log gets.
    throw new Error(`${(err as Error).message}; its log:\n${p.logs.join('\n')}`);
  }
  if (p.child.exitCode !== null) throw new Error(`${p.spec.name} exited with ${p.child.exitCode}:\n${p.logs.join('\n')}`);
}

export interface EndpointStatus {
  memberId: number;
  leader: number;
}

/** `etcdctl endpoint status -w json` for one endpoint; null when it does not answer. */
export async function endpointStatus(endpoint: string): Promise<EndpointStatus | null> {
  const r = await etcdctl(endpoint, ['endpoint', 'status', '-w', 'json', '--command-timeout=2s']);
  if (r.code !== 0) return null;
  const [s] = JSON.parse(r.stdout) as { Status: { header: { member_id: number }; leader: number } }[];
  return { memberId: s.Status.header.member_id, leader: s.Status.leader };
}

/** Polls the async `fn` every 100 ms (each poll is a request or a process) until it gives something truthy. */
export function eventually<T>(what: string, fn: () => Promise<T | undefined | null | false>, timeoutMs: number): Promise<T> {
  return waitFor(what, fn, timeoutMs, 100);
}

/**
 * `etcdctl member add`, again while the answer is "unhealthy cluster": etcd's strict
 * reconfiguration check wants every voter connected for 5 s, and a member restarted or added
 * by an earlier test may have been up for less.
 */
export async function addMember(endpoint: string, args: string[]) {
  return eventually(
    'the cluster to accept a new member',
    async () => {
      const r = await etcdctl(endpoint, ['member', 'add', ...args]);
      if (r.code !== 0 && !r.stderr.includes('Error: etcdserver: unhealthy cluster')) throw new Error(`member add failed: ${r.stderr}`);
      return r.code === 0 && r;
    },
    15_000,
  );
}
