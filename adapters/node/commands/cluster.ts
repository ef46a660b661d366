// member, endpoint status and snapshot save: etcd's Cluster and Maintenance services, which the
// client (src/client) does not cover, called with grpc-js on meshkv's own protos.

import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import * as grpc from '@grpc/grpc-js';
import { packageDefinition } from '../../etcd-api/proto.ts';
import type { Wire } from '../../etcd-api/client-wire.ts';
import { errorFromStatus, StatusCode } from '../../../src/client/errors.ts';
import { command, parseHexId, print, printJson, UsageError, type Run } from './common.ts';

type ServiceClient = grpc.Client & Record<string, (...args: unknown[]) => unknown>;
type ServiceConstructor = new (address: string, credentials: grpc.ChannelCredentials, options?: grpc.ChannelOptions) => ServiceClient;
const services = (grpc.loadPackageDefinition(packageDefinition) as unknown as { etcdserverpb: Record<string, ServiceConstructor> }).etcdserverpb;

/** host:port from "host:port" or "http://host:port". */
function address(endpoint: string): string {
  const a = endpoint.replace(/^http:\/\//, '').replace(/\/+$/, '');
  if (!/^[^/\s]+:\d+$/.test(a)) throw new UsageError(`--endpoints: ${JSON.stringify(endpoint)} is not host:port`);
  return a;
}

/** A member's status as the client's typed error; a transport failure names the endpoint. */
function toError(endpoint: string, err: grpc.ServiceError): Error {
  const details = err.details ?? err.message;
  if (err.code === StatusCode.Unavailable && !details.startsWith('etcdserver:')) return new Error(`client: ${endpoint}: ${details}`);
  return errorFromStatus(err.code, details);
}

type Service = 'Cluster' | 'Maintenance' | 'Auth';

/** One unary call carrying `metadata` (the auth token, when there is one). */
function callWith(run: Run, endpoint: string, service: Service, name: string, request: Wire, metadata: grpc.Metadata): Promise<Wire> {
  const client = new services[service](address(endpoint), grpc.credentials.createInsecure());
  const deadline = Date.now() + run.flags.dialTimeoutMs + run.flags.commandTimeoutMs;
  return new Promise<Wire>((resolve, reject) => {
    client[name](request, metadata, { deadline }, (err: grpc.ServiceError | null, res: Wire) => (err ? reject(toError(endpoint, err)) : resolve(res)));
  }).finally(() => client.close());
}

/** The call metadata for `endpoint`: with --user, a simple token from Authenticate there first (as etcdctl does). */
async function metadataFor(run: Run, endpoint: string): Promise<grpc.Metadata> {
  const md = new grpc.Metadata();
  const user = run.flags.user;
  if (user === null) return md;
  const res = await callWith(run, endpoint, 'Auth', 'Authenticate', { name: user.name, password: user.password }, new grpc.Metadata());
  md.set('token', String(res.token));
  return md;
}

/** One unary call of `service` on one endpoint, within the command timeout. */
export async function call(run: Run, endpoint: string, service: Service, name: string, request: Wire): Promise<Wire> {
  return callWith(run, endpoint, service, name, request, await metadataFor(run, endpoint));
}

/** The call on the first endpoint that answers (a member's error is final; unreachable ones are skipped). */
export async function callAny(run: Run, service: Service, name: string, request: Wire): Promise<Wire> {
  let last: Error | null = null;
  for (const endpoint of run.flags.endpoints) {
    try {
      return await call(run, endpoint, service, name, request);
    } catch (err) {
      if (!(err as Error).message.startsWith('client: ')) throw err;
      last = err as Error;
    }
  }
  throw last!;
}

// ---- member ----

interface MemberWire {
  ID: string;
  name: string;
  peerURLs: string[];
  clientURLs: string[];
  isLearner: boolean;
}

/** etcdctl prints member ids in hex without padding (lease ids are padded with zeros). */
function memberHex(id: bigint | string): string {
  return BigInt(id).toString(16);
}

/** etcdctl's `%16x` in its member add/remove/promote messages: padded with spaces. */
function paddedHex(id: bigint | string): string {
  return memberHex(id).padStart(16, ' ');
}

function memberRow(m: MemberWire): string[] {
  return [memberHex(m.ID), m.name === '' ? 'unstarted' : 'started', m.name, m.peerURLs.join(','), m.clientURLs.join(','), String(m.isLearner)];
}

/** A table in etcdctl's --write-out=table layout (ruled header and body; cells left-aligned here). */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = `+${widths.map((w) => '-'.repeat(w + 2)).join('+')}+`;
  const row = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  return [line, row(header), line, ...rows.map(row), line].join('\n');
}

function printMembers(run: Run, res: Wire): void {
  if (run.flags.writeOut === 'json') return printJson(res);
  const rows = (res.members as MemberWire[]).map(memberRow);
  if (run.flags.writeOut === 'table') return print(table(['ID', 'STATUS', 'NAME', 'PEER ADDRS', 'CLIENT ADDRS', 'IS LEARNER'], rows));
  for (const r of rows) print(r.join(', '));
}

function clusterId(res: Wire): string {
  return paddedHex((res.header as { cluster_id: string }).cluster_id);
}

export const member = command(
  'member list | add <name> --peer-urls=<url,...> [--learner] | remove <id> | promote <id>',
  { 'peer-urls': { type: 'string' }, learner: { type: 'boolean' } },
  async (run) => {
    const [sub, ...rest] = run.args;
    const needs = (n: number) => {
      if (rest.length !== n) throw new UsageError(`member ${sub} needs ${n} argument(s), got ${rest.length}`);
      return rest;
    };
    switch (sub) {
      case 'list':
        needs(0);
        printMembers(run, await callAny(run, 'Cluster', 'MemberList', { linearizable: false }));
        return 0;
      case 'add': {
        const [name] = needs(1);
        const peerURLs = (run.flag('peer-urls') ?? '').split(',').filter((u) => u !== '');
        if (peerURLs.length === 0) throw new UsageError('member add needs --peer-urls');
        const res = await callAny(run, 'Cluster', 'MemberAdd', { peerURLs, isLearner: run.has('learner') });
        if (run.flags.writeOut === 'json') return printJson(res), 0;
        const added = res.member as MemberWire;
        print(`Member ${paddedHex(added.ID)} added to cluster ${clusterId(res)}`);
        // What the new member needs to join, as etcdctl prints it.
        // Started members and the new one (by the name given here); other unstarted ones have no name yet.
        const named = (res.members as MemberWire[]).flatMap((m) => (m.ID === added.ID ? [{ ...m, name }] : m.name === '' ? [] : [m]));
        const cluster = named.flatMap((m) => m.peerURLs.map((u) => `${m.name}=${u}`));
        print('');
        print(`ETCD_NAME="${name}"`);
        print(`ETCD_INITIAL_CLUSTER="${cluster.join(',')}"`);
        print(`ETCD_INITIAL_ADVERTISE_PEER_URLS="${peerURLs.join(',')}"`);
        print('ETCD_INITIAL_CLUSTER_STATE="existing"');
        return 0;
      }
      case 'remove':
      case 'promote': {
        const id = parseHexId('<id>', needs(1)[0]);
        const res = await callAny(run, 'Cluster', sub === 'remove' ? 'MemberRemove' : 'MemberPromote', { ID: id.toString() });
        if (run.flags.writeOut === 'json') return printJson(res), 0;
        print(`Member ${paddedHex(id)} ${sub === 'remove' ? 'removed from' : 'promoted in'} cluster ${clusterId(res)}`);
        return 0;
      }
      default:
        throw new UsageError(sub === undefined ? 'member needs a subcommand' : `unknown member subcommand ${JSON.stringify(sub)}`);
    }
  },
);

// ---- endpoint status ----

/** go-humanize's Bytes, which etcdctl uses for sizes: SI units, one decimal below 10. */
export function humanBytes(n: number): string {
  if (n < 10) return `${n} B`;
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB'];
  const e = Math.min(Math.floor(Math.log(n) / Math.log(1000)), units.length - 1);
  const v = Math.floor((n / 1000 ** e) * 10 + 0.5) / 10;
  return `${v < 10 ? v.toFixed(1) : halfEven(v)} ${units[e]}`;
}

/** Go's %.0f: a tie rounds to even (20.5 → "20"), unlike toFixed. */
function halfEven(v: number): string {
  const floor = Math.floor(v);
  if (v - floor !== 0.5) return Math.round(v).toFixed(0);
  return (floor % 2 === 0 ? floor : floor + 1).toFixed(0);
}

interface StatusWire {
  header: { member_id: string };
  version: string;
  dbSize: string;
  leader: string;
  raftIndex: string;
  raftTerm: string;
  raftAppliedIndex: string;
  errors: string[];
  isLearner: boolean;
}

function statusRow(endpoint: string, s: StatusWire): string[] {
  return [
    endpoint,
    memberHex(s.header.member_id),
    s.version,
    humanBytes(Number(s.dbSize)),
    String(s.leader === s.header.member_id),
    String(s.isLearner),
    s.raftTerm,
    s.raftIndex,
    s.raftAppliedIndex,
    s.errors.join(', '),
  ];
}

export const endpoint = command('endpoint status', {}, async (run) => {
  const [sub, ...rest] = run.args;
  if (sub !== 'status') {
    throw new UsageError(sub === undefined ? 'endpoint needs a subcommand' : `unknown endpoint subcommand ${JSON.stringify(sub)}`);
  }
  if (rest.length > 0) throw new UsageError('endpoint status takes no arguments');
  // Every endpoint is asked; unreachable ones are reported and make the exit code 1, as etcdctl.
  const answers = await Promise.allSettled(run.flags.endpoints.map((e) => call(run, e, 'Maintenance', 'Status', {})));
  const ok: { endpoint: string; status: StatusWire }[] = [];
  answers.forEach((a, i) => {
    if (a.status === 'fulfilled') ok.push({ endpoint: run.flags.endpoints[i], status: a.value as unknown as StatusWire });
    else process.stderr.write(`Failed to get the status of endpoint ${run.flags.endpoints[i]} (${(a.reason as Error).message})\n`);
  });
  if (run.flags.writeOut === 'json') printJson(ok.map((o) => ({ Endpoint: o.endpoint, Status: o.status })));
  else {
    const rows = ok.map((o) => statusRow(o.endpoint, o.status));
    const header = ['ENDPOINT', 'ID', 'VERSION', 'DB SIZE', 'IS LEADER', 'IS LEARNER', 'RAFT TERM', 'RAFT INDEX', 'RAFT APPLIED INDEX', 'ERRORS'];
    if (run.flags.writeOut === 'table') print(table(header, rows));
    else for (const r of rows) print(r.join(', '));
  }
  return ok.length === answers.length ? 0 : 1;
});

// ---- snapshot save ----

/** Redraws one progress line on a TTY; elsewhere prints only the final line. */
class Progress {
  private readonly tty = process.stderr.isTTY === true;

  update(received: number, total: number): void {
    if (this.tty) process.stderr.write(`\r${this.line(received, total)}`);
  }

  done(received: number): void {
    process.stderr.write(`${this.tty ? '\r' : ''}${this.line(received, received)}\n`);
  }

  private line(received: number, total: number): string {
    const width = 30;
    const fraction = total > 0 ? Math.min(1, received / total) : 1;
    const filled = Math.round(fraction * width);
    return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${humanBytes(received)} / ${humanBytes(total)} ${Math.floor(fraction * 100)}%`;
  }
}

/** Streams one endpoint's snapshot into `file` (through file.part, renamed once complete). */
async function saveSnapshot(run: Run, endpoint: string, file: string): Promise<number> {
  const metadata = await metadataFor(run, endpoint);
  const client = new services.Maintenance(address(endpoint), grpc.credentials.createInsecure());
  const part = `${file}.part`;
  const out = createWriteStream(part);
  const progress = new Progress();
  let received = 0;
  try {
    const stream = client.Snapshot({}, metadata) as grpc.ClientReadableStream<{ remaining_bytes: string; blob: Buffer }>;
    await new Promise<void>((resolve, reject) => {
      stream.on('data', (chunk: { remaining_bytes: string; blob: Buffer }) => {
        received += chunk.blob.length;
        progress.update(received, received + Number(chunk.remaining_bytes));
        if (!out.write(chunk.blob)) {
          stream.pause();
          out.once('drain', () => stream.resume());
        }
      });
      stream.on('error', (err: grpc.ServiceError) => reject(toError(endpoint, err)));
      stream.on('end', resolve);
    });
    await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
    progress.done(received);
    await rename(part, file);
  } catch (err) {
    out.destroy();
    await rm(part, { force: true });
    throw err;
  } finally {
    client.close();
  }
  return received;
}

/** etcdctl's `snapshot restore` flags (meshkv's start flags of the same names). */
const restoreFlags = ['data-dir', 'name', 'initial-cluster', 'initial-cluster-token', 'initial-advertise-peer-urls'] as const;

/** `snapshot restore <file>`: a data dir for a new member from a snapshot file in etcd's format (snapshot-restore.ts). */
async function restore(run: Run, file: string): Promise<number> {
  const { parseConfig, ConfigError } = await import('../config.ts');
  const { restoreSnapshot, RestoreError } = await import('../snapshot-restore.ts');
  const { StorageError } = await import('../../storage/errors.ts');
  const argv = restoreFlags.flatMap((flag) => (typeof run.values[flag] === 'string' ? [`--${flag}`, run.values[flag]] : []));
  let config;
  try {
    const parsed = parseConfig(argv, {});
    if (parsed.kind !== 'start') throw new UsageError('snapshot restore: unexpected --help');
    config = parsed.config;
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(err.message);
    throw err;
  }
  try {
    const r = await restoreSnapshot(file, config, { skipHashCheck: run.values['skip-hash-check'] === true });
    for (const warning of r.dropped) process.stderr.write(`warning: ${warning}\n`);
    const compacted = r.compactRevision < 0 ? 'never compacted' : `compacted at ${r.compactRevision}`;
    print(`Restored snapshot ${file} into ${config.dataDir}: revision ${r.revision}, ${compacted}, ${r.records} records, ${r.leases} leases`);
    print(`Start the member with the same --name, --data-dir and --initial-cluster flags (every member of the new cluster restores the file with its own --name).`);
    return 0;
  } catch (err) {
    if (err instanceof RestoreError || err instanceof StorageError) throw new Error(err.message);
    throw err;
  }
}

export const snapshot = command(
  'snapshot save <file> | snapshot restore <file> [--data-dir] [--name] [--initial-cluster] [--initial-cluster-token] [--initial-advertise-peer-urls] [--skip-hash-check]',
  {
    ...Object.fromEntries(restoreFlags.map((flag) => [flag, { type: 'string' as const }])),
    'skip-hash-check': { type: 'boolean' },
  },
  async (run) => {
    const [sub, file, ...rest] = run.args;
    if (sub !== 'save' && sub !== 'restore') throw new UsageError(sub === undefined ? 'snapshot needs a subcommand' : `unknown snapshot subcommand ${JSON.stringify(sub)}`);
    if (file === undefined || rest.length > 0) throw new UsageError(`snapshot ${sub} needs exactly one <file>`);
    if (sub === 'restore') return restore(run, file);
    // etcdctl takes a snapshot from exactly one endpoint.
    if (run.flags.endpoints.length !== 1) throw new UsageError(`snapshot save needs exactly one endpoint, got ${run.flags.endpoints.length}`);
    await saveSnapshot(run, run.flags.endpoints[0], file);
    print(`Snapshot saved at ${file}`);
    return 0;
  },
);
