// `meshkv` member processes (bin/meshkv.mjs, the compiled dist/) for tests and benchmarks that
// need real processes: launch, wait for a log line, add a learner, read HashKV and memory.

import { readFileSync } from 'node:fs';
import { etcdctl } from '../etcd-api/harness.ts';
import { spawnCollecting, type Spawned } from './processes.ts';

const bin = new URL('../../bin/meshkv.mjs', import.meta.url).pathname;

export interface CliMemberSpec {
  name: string;
  dataDir: string;
  peerPort: number;
  clientPort: number;
  /** etcd's --initial-cluster: name=peer URL, comma-separated. */
  initialCluster: string;
  state: 'new' | 'existing';
  snapshotCount: number;
  /** Another build's bin/meshkv.mjs (a benchmark's A/B against a base checkout); this one's by default. */
  bin?: string;
  /** Flags for node itself, before the script (a benchmark's `--cpu-prof`). */
  nodeFlags?: string[];
}

export function peerUrl(spec: Pick<CliMemberSpec, 'peerPort'>): string {
  return `http://127.0.0.1:${spec.peerPort}`;
}

export function clientEndpoint(spec: Pick<CliMemberSpec, 'clientPort'>): string {
  return `127.0.0.1:${spec.clientPort}`;
}

/** Starts a member process listening on 127.0.0.1 only; stderr (its JSON log) is collected. */
export function launchCli(spec: CliMemberSpec): Spawned {
  return spawnCollecting(process.execPath, [
    ...(spec.nodeFlags ?? []),
    spec.bin ?? bin,
    '--name', spec.name,
    '--data-dir', spec.dataDir,
    '--listen-client-urls', `http://${clientEndpoint(spec)}`,
    '--listen-peer-urls', peerUrl(spec),
    '--initial-advertise-peer-urls', peerUrl(spec),
    '--initial-cluster', spec.initialCluster,
    '--initial-cluster-state', spec.state,
    '--initial-cluster-token', 'cli-members',
    '--admission-secret', 'cli-members-admission-secret',
    '--snapshot-count', String(spec.snapshotCount),
  ]);
}

/** Waits until a line of `proc`'s log matches; throws if it exits or the time runs out. */
export async function waitForLine(proc: Spawned, pattern: RegExp, timeoutMs: number, pollMs = 20): Promise<string> {
  const start = Date.now();
  for (;;) {
    const line = proc.logs.find((l) => pattern.test(l));
    if (line !== undefined) return line;
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) throw new Error(`process exited (${proc.child.exitCode ?? proc.child.signalCode}) before logging ${pattern}:\n${proc.logs.slice(-20).join('\n')}`);
    if (Date.now() - start > timeoutMs) throw new Error(`no line matching ${pattern} after ${timeoutMs} ms:\n${proc.logs.slice(-20).join('\n')}`);
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

export const readyLine = /"msg":"ready: the cluster has a leader"/;

/** etcdctl member add --learner through `endpoint`. */
export async function addLearner(endpoint: string, name: string, peer: string): Promise<void> {
  const r = await etcdctl(endpoint, ['member', 'add', name, '--learner', `--peer-urls=${peer}`, '--command-timeout=10s']);
  if (r.code !== 0) throw new Error(`member add ${name}: ${r.stderr}`);
}

/** etcdctl endpoint hashkv at `revision` on one endpoint. */
export async function hashKv(endpoint: string, revision: number): Promise<number> {
  const r = await etcdctl(endpoint, ['endpoint', 'hashkv', `--rev=${revision}`, '-w', 'json', '--command-timeout=30s']);
  if (r.code !== 0) throw new Error(`endpoint hashkv on ${endpoint}: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { HashKV: { hash: number } }[])[0].HashKV.hash;
}

/** The store revision `endpoint` serves (a serializable read: that member's own). */
export async function revisionOf(endpoint: string): Promise<number> {
  const r = await etcdctl(endpoint, ['get', 'x', '--consistency=s', '-w', 'json', '--command-timeout=10s']);
  if (r.code !== 0) throw new Error(`get on ${endpoint}: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { header: { revision: number } }).header.revision;
}

/** Resident memory now, at its peak, and its anonymous part now (VmRSS, VmHWM, RssAnon), bytes. Linux only. */
export function memoryOf(pid: number): { rssBytes: number; peakRssBytes: number; anonBytes: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  return { rssBytes: kib('VmRSS'), peakRssBytes: kib('VmHWM'), anonBytes: kib('RssAnon') };
}
