// `meshkv <command>` (adapters/node/commands) as a user runs it: child processes of
// bin/meshkv.mjs against one in-process member, their output checked against what the real
// etcdctl prints for the same call where the two should agree.

import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { humanBytes } from '../../adapters/node/commands/cluster.ts';
import { spawnCollecting, type Spawned } from '../helpers/processes.ts';
import { deadEndpoint } from '../client-grpc/helpers.ts';
import { etcdctl, requireEtcdctl, serve, spawnEtcdctl, waitFor, type CtlResult, type Served } from './harness.ts';

const bin = fileURLToPath(new URL('../../bin/meshkv.mjs', import.meta.url));
/**
 * How long a wait for a child process's output may take. Each `meshkv` process costs about half a
 * second of CPU to start (0.37 s user + 0.12 s system for one `meshkv get`, measured in session 11
 * at load 25), and these tests start up to 14 at once, so on a loaded machine a start takes
 * seconds: at 5 s waits and 30 s per test, 7 of 11 tests failed beside three CPU hogs (load 20).
 * The limits are there to catch a hang, which they still do; they are only longer.
 */
const childWaitMs = 30_000;
const commandTestMs = 120_000;

let s: Served;
let dir: string;
const running: Spawned[] = [];

beforeAll(async () => {
  requireEtcdctl();
  s = await serve();
  dir = mkdtempSync(join(tmpdir(), 'meshkv-commands-'));
});
afterAll(async () => {
  for (const p of running) if (p.child.exitCode === null && p.child.pid !== undefined) process.kill(p.child.pid, 'SIGKILL');
  await s?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** One `meshkv <args> --endpoints=<member>` run to completion (stdin fed if given). */
function meshkv(args: string[], opts: { stdin?: string; endpoints?: string; env?: Record<string, string> } = {}): Promise<CtlResult> {
  const endpoints = opts.endpoints === '' ? [] : [`--endpoints=${opts.endpoints ?? s.endpoint}`];
  return new Promise((resolve) => {
    const env = { ...process.env, ...opts.env };
    const child = execFile(process.execPath, [bin, ...args, ...endpoints], { env, timeout: childWaitMs * 2 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
    child.stdin!.end(opts.stdin ?? '');
  });
}

/**
 * A long-running `meshkv <command> --endpoints=<member> <args>` (watch, lock, elect) whose stdout
 * and stderr lines are collected. The flag goes first: a lock's command follows `--`.
 */
function start([name, ...args]: string[]): Spawned {
  const p = spawnCollecting(process.execPath, [bin, name, `--endpoints=${s.endpoint}`, ...args], { stdout: true });
  running.push(p);
  return p;
}

function interrupt(p: Spawned): Promise<number | null> {
  process.kill(p.child.pid!, 'SIGINT');
  return p.exited;
}

const ctl = (...args: string[]) => etcdctl(s.endpoint, args);
/** etcdctl's error line (it logs a JSON retry warning before it). */
const errorLine = (stderr: string) => stderr.split('\n').find((l) => l.startsWith('Error:'));

describe('meshkv client commands', { timeout: commandTestMs }, () => {
  it('put, get (ranges, --keys-only, --print-value-only, --limit, -w json) and del print what etcdctl prints', async () => {
    expect(await meshkv(['put', 'k/a', '1'])).toMatchObject({ code: 0, stdout: 'OK\n' });
    expect(await meshkv(['put', 'k/b', '2', '--prev-kv'])).toMatchObject({ code: 0, stdout: 'OK\n' });
    expect(await meshkv(['put', 'k/b', '3', '--prev-kv'])).toMatchObject({ code: 0, stdout: 'OK\nk/b\n2\n' });
    const reads = [
      ['get', 'k/', '--prefix'],
      ['get', 'k/a', 'k/c', '--keys-only'],
      ['get', 'k/a', '--print-value-only'],
      ['get', 'k/', '--prefix', '--limit=1'],
      ['get', 'k/b', '--from-key'],
      ['get', 'k/b', '--consistency=s'],
    ];
    const [ours, theirs, json] = await Promise.all([
      Promise.all(reads.map((r) => meshkv(r))),
      Promise.all(reads.map((r) => ctl(...r))),
      meshkv(['get', 'k/a', '-w', 'json']),
    ]);
    expect(ours[0].stdout).toBe('k/a\n1\nk/b\n3\n');
    expect(ours.map((r) => r.stdout)).toEqual(theirs.map((r) => r.stdout));
    const parsed = JSON.parse(json.stdout) as { kvs: { key: string; value: string; version: number }[]; count: number };
    expect(parsed.count).toBe(1);
    expect(parsed.kvs[0]).toMatchObject({ key: Buffer.from('k/a').toString('base64'), value: Buffer.from('1').toString('base64'), version: 1 });
    expect(await meshkv(['del', 'k/', '--prefix', '--prev-kv'])).toMatchObject({ code: 0, stdout: '2\nk/a\n1\nk/b\n3\n' });
    expect(await meshkv(['get', 'k/', '--prefix'])).toMatchObject({ code: 0, stdout: '' });
  });

  it('txn reads compares, success and failure ops from stdin and prints like etcdctl txn', async () => {
    await meshkv(['put', 't', '1']);
    const input = 'value("t") = "1"\nmod("t") > "0"\n\nput t 2\nget t\n\ndel t\n';
    expect(await meshkv(['txn'], { stdin: input })).toMatchObject({ code: 0, stdout: 'SUCCESS\n\nOK\n\nt\n2\n' });
    // t is 2 now: the same input takes the failure branch; read-only, so etcdctl can run it too.
    // (etcdctl needs the blank line that ends the failure section; meshkv also takes EOF.)
    const readOnly = 'value("t") = "1"\n\nget t\n\nget t --print-value-only\nget "t" --keys-only\n\n';
    const [ours, theirs] = await Promise.all([meshkv(['txn'], { stdin: readOnly }), etcdctl(s.endpoint, ['txn'], readOnly)]);
    // As in etcdctl, a get inside a txn prints whole key-values (--print-value-only is not applied).
    expect(ours).toMatchObject({ code: 0, stdout: 'FAILURE\n\nt\n2\n\nt\n\n' });
    expect(ours.stdout).toBe(theirs.stdout);
    const bad = await meshkv(['txn'], { stdin: 'size("t") = "1"\n\n' });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('unknown compare target "size"');
  });

  it('watch prints PUT and DELETE events (from --rev) until Ctrl-C', async () => {
    const put = JSON.parse((await meshkv(['put', 'w/1', 'x', '-w', 'json'])).stdout) as { header: { revision: number } };
    await meshkv(['del', 'w/1']);
    const w = start(['watch', 'w/', '--prefix', `--rev=${put.header.revision}`]);
    await waitFor('the replayed events', () => w.logs.length >= 6, childWaitMs);
    expect(w.logs.slice(0, 6)).toEqual(['PUT', 'w/1', 'x', 'DELETE', 'w/1', '']);
    await meshkv(['put', 'w/2', 'y']);
    await waitFor('the live event', () => w.logs.length >= 9, childWaitMs);
    expect(w.logs.slice(6)).toEqual(['PUT', 'w/2', 'y']);
    expect(await interrupt(w)).toBe(0);
  });

  it('lease grant / timetolive --keys / list / keep-alive --once / revoke, with etcdctl messages', async () => {
    const granted = await meshkv(['lease', 'grant', '30']);
    const id = /^lease ([0-9a-f]{16}) granted with TTL\(30s\)\n$/.exec(granted.stdout)?.[1];
    expect(id, granted.stdout + granted.stderr).toBeDefined();
    await meshkv(['put', 'l/k', 'v', `--lease=${id}`]);
    const [ttl, ctlTtl, list, once] = await Promise.all([
      meshkv(['lease', 'timetolive', id!, '--keys']),
      ctl('lease', 'timetolive', id!, '--keys'),
      meshkv(['lease', 'list']),
      meshkv(['lease', 'keep-alive', '--once', id!]),
    ]);
    expect(ttl.stdout).toMatch(new RegExp(`^lease ${id} granted with TTL\\(30s\\), remaining\\(\\d+s\\), attached keys\\(\\[l/k\\]\\)\\n$`));
    expect(ttl.stdout.replace(/remaining\(\d+s\)/, '')).toBe(ctlTtl.stdout.replace(/remaining\(\d+s\)/, ''));
    expect(list.stdout).toBe(`found 1 leases\n${id}\n`);
    expect(once.stdout).toBe(`lease ${id} keepalived with TTL(30)\n`);
    const keeper = start(['lease', 'keep-alive', id!]);
    await waitFor('a keep-alive', () => keeper.logs.length >= 1, childWaitMs);
    expect(await interrupt(keeper)).toBe(0);
    expect(keeper.logs[0]).toBe(`lease ${id} keepalived with TTL(30)`);
    expect(await meshkv(['lease', 'revoke', id!])).toMatchObject({ code: 0, stdout: `lease ${id} revoked\n` });
    expect(await meshkv(['get', 'l/k'])).toMatchObject({ stdout: '' });
    const [again, ctlAgain, gone] = await Promise.all([
      meshkv(['lease', 'revoke', id!]),
      ctl('lease', 'revoke', id!),
      meshkv(['lease', 'timetolive', id!]),
    ]);
    expect(again.code).toBe(1);
    expect(again.stderr).toBe('Error: failed to revoke lease (etcdserver: requested lease not found)\n');
    expect(errorLine(again.stderr)).toBe(errorLine(ctlAgain.stderr));
    expect(gone.stdout).toBe(`lease ${id} already expired\n`);
  });

  it('lock holds until Ctrl-C; a second lock waits, then runs its command holding the lock', async () => {
    const holder = start(['lock', 'job']);
    const key = await waitFor('the lock key', () => holder.logs.find((l) => l.startsWith('job/')), childWaitMs);
    const waiter = start(['lock', 'job', '--', 'sh', '-c', 'echo "held $ETCD_LOCK_KEY"; exit 3']);
    // Queued once its own key is there behind the holder's (a fixed sleep proved nothing when the
    // waiter had not even started yet): it must not run its command while the lock is held.
    const lockKeys = async () => (await meshkv(['get', 'job/', '--prefix', '--keys-only'])).stdout.split('\n').filter(Boolean);
    await waitFor('the waiter queued', async () => (await lockKeys()).length === 2, childWaitMs, 200);
    expect(waiter.logs).toEqual([]);
    expect(await interrupt(holder)).toBe(0);
    expect(await waiter.exited).toBe(3); // the command's exit code
    expect(waiter.logs).toHaveLength(1);
    expect(waiter.logs[0]).toMatch(/^held job\/[0-9a-f]+$/);
    expect(waiter.logs[0]).not.toBe(`held ${key}`);
    expect(await meshkv(['get', 'job/', '--prefix'])).toMatchObject({ stdout: '' });
  });

  it('elect campaigns and holds leadership; elect -l (and etcdctl elect -l) observe it', async () => {
    const candidate = start(['elect', 'svc', 'one']);
    const key = await waitFor('leadership', () => candidate.logs.find((l) => l.startsWith('svc/')), childWaitMs);
    expect(candidate.logs).toEqual([key, 'one']);
    const observer = start(['elect', '-l', 'svc']);
    const ctlObserver = spawnEtcdctl(s.endpoint, ['elect', '-l', 'svc']);
    try {
      await waitFor('the observed leader', () => observer.logs.length >= 2 && ctlObserver.lines.length >= 2, childWaitMs);
      expect(observer.logs).toEqual([key, 'one']);
      expect(ctlObserver.lines).toEqual([key, 'one']);
    } finally {
      ctlObserver.stop();
    }
    expect(await interrupt(candidate)).toBe(0);
    expect(await interrupt(observer)).toBe(0);
    expect(await meshkv(['get', 'svc/', '--prefix'])).toMatchObject({ stdout: '' });
  });

  it('member list, endpoint status and snapshot save match etcdctl', async () => {
    const [members, ctlMembers, status, ctlStatus, table] = await Promise.all([
      meshkv(['member', 'list']),
      ctl('member', 'list'),
      meshkv(['endpoint', 'status']),
      ctl('endpoint', 'status'),
      meshkv(['endpoint', 'status', '-w', 'table']),
    ]);
    expect(members.stdout).toBe(ctlMembers.stdout);
    expect(members.stdout).toMatch(/^[0-9a-f]+, started, default, http:\/\/localhost:2380, /);
    // endpoint, id, version, db size, leader, learner, term; raft indexes may move between calls.
    const fields = (out: string) => out.split(', ').slice(0, 7);
    expect(fields(status.stdout)).toEqual(fields(ctlStatus.stdout));
    expect(fields(status.stdout)[4]).toBe('true');
    expect(table.stdout).toContain('| ENDPOINT ');
    expect(table.stdout).toContain(`| ${s.endpoint} |`);

    const ours = join(dir, 'ours.db');
    const theirs = join(dir, 'theirs.db');
    const saved = await meshkv(['snapshot', 'save', ours]);
    expect(saved).toMatchObject({ code: 0, stdout: `Snapshot saved at ${ours}\n` });
    // stderr is not a TTY: only the final progress line.
    expect(saved.stderr).toMatch(/^\[#{30}\] \S+ \S*B \/ \S+ \S*B 100%\n$/);
    await ctl('snapshot', 'save', theirs);
    expect(readFileSync(ours).equals(readFileSync(theirs))).toBe(true);
  });

  it('sizes are rounded as etcdctl rounds them (go-humanize, ties to even)', () => {
    expect([5, 513, 1056, 5000, 20480, 21500, 2_500_000].map(humanBytes)).toEqual(['5 B', '513 B', '1.1 kB', '5.0 kB', '20 kB', '22 kB', '2.5 MB']);
  });

  it('bad commands, flags and arguments exit 2 with a usage line', async () => {
    const results = await Promise.all([
      meshkv(['frobnicate']),
      meshkv(['put', 'only-key']),
      meshkv(['get', 'k', '--bogus']),
      meshkv(['get', 'k', '-w', 'yaml']),
      meshkv(['get', 'k', '--limit=many']),
      meshkv(['lease', 'revoke', 'not-hex']),
      meshkv(['get', 'k'], { endpoints: 'nope' }),
      meshkv(['snapshot', 'save']),
      meshkv(['member', 'add', 'extra']),
    ]);
    for (const r of results) expect(r.code, r.stderr).toBe(2);
    expect(results[0].stderr).toContain('meshkv: unknown command "frobnicate"');
    expect(results[0].stderr).toMatch(/Commands:[\s\S]*\n {2}put\n/);
    expect(results[1].stderr).toBe(
      'Error: put needs <key> <value>, got 1 argument(s)\nUsage: meshkv put <key> <value> [--lease=<hex id>] [--prev-kv]\n',
    );
    for (const r of results.slice(2)) expect(r.stderr).toMatch(/^Error: .+\nUsage: meshkv /);
  });

  it('etcd errors are printed as etcdctl prints them; an unreachable endpoint is exit 1; MESHKV_ENDPOINTS is read', async () => {
    const dead = await deadEndpoint();
    const [emptyKey, ctlEmptyKey, future, ctlFuture, unreachable, fromEnv] = await Promise.all([
      meshkv(['put', '', 'x']),
      ctl('put', '', 'x'),
      meshkv(['get', 'k', '--rev=1000000']),
      ctl('get', 'k', '--rev=1000000'),
      meshkv(['get', 'k', '--dial-timeout=500ms'], { endpoints: dead }),
      meshkv(['put', 'env', 'ok'], { endpoints: '', env: { MESHKV_ENDPOINTS: s.endpoint } }),
    ]);
    // This member has no peer listener, so it refuses to add members: the refusal is shown as is.
    const add = await meshkv(['member', 'add', 'extra', '--learner', '--peer-urls=http://127.0.0.1:1']);
    expect(add.code).toBe(1);
    expect(add.stderr).toMatch(/^Error: meshkv: cannot add a member at http:\/\/127.0.0.1:1: this member has no peer listener/);
    expect(emptyKey).toMatchObject({ code: 1, stderr: 'Error: etcdserver: key is not provided\n' });
    expect(errorLine(emptyKey.stderr)).toBe(errorLine(ctlEmptyKey.stderr));
    expect(future).toMatchObject({ code: 1, stderr: 'Error: etcdserver: mvcc: required revision is a future revision\n' });
    expect(errorLine(future.stderr)).toBe(errorLine(ctlFuture.stderr));
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toBe(`Error: client: no endpoint is reachable (${dead})\n`);
    expect(fromEnv).toMatchObject({ code: 0, stdout: 'OK\n' });
  });
});
