// etcd's auth, differentially: the same etcdctl script of user, role and permission commands,
// allowed and denied reads, writes, deletes, txns and watches runs against a real etcd 3.4.23
// (started here on 127.0.0.1 with a temporary data dir) and against a meshkv member, and must
// print the same lines on both.

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etcdctl, requireEtcdctl, serve, spawnEtcdctl, waitFor, type CtlResult, type Served } from './harness.ts';

const etcdPath = '/usr/bin/etcd';

/** One etcdctl invocation: its arguments and, for txn, what it reads on stdin. */
type Step = { args: string[]; stdin?: string };

const root = ['--user', 'root:rootpw'];
const alice = ['--user', 'alice:alicepw'];

const script: Step[] = [
  { args: ['user', 'add', 'root:rootpw'] },
  { args: ['role', 'add', 'r1'] },
  { args: ['role', 'add', 'r1'] },
  { args: ['role', 'grant-permission', 'r1', 'readwrite', 'foo'] },
  { args: ['role', 'grant-permission', 'r1', 'read', '--prefix=true', 'pub/'] },
  { args: ['role', 'grant-permission', 'r1', 'write', 'w1', 'w3'] },
  { args: ['role', 'get', 'r1'] },
  { args: ['user', 'add', 'alice:alicepw'] },
  { args: ['user', 'add', 'alice:again'] },
  { args: ['user', 'grant-role', 'alice', 'r1'] },
  { args: ['user', 'grant-role', 'alice', 'nope'] },
  { args: ['user', 'get', 'alice'] },
  { args: ['user', 'get', 'nobody'] },
  { args: ['user', 'list'] },
  { args: ['role', 'list'] },
  { args: ['auth', 'enable'] },
  { args: ['put', 'foo', 'anonymous'] },
  { args: ['get', 'foo'] },
  { args: [...root, 'put', 'pub/a', 'x'] },
  { args: [...root, 'put', 'bar', 'secret'] },
  { args: [...alice, 'put', 'foo', 'v1'] },
  { args: [...alice, 'get', 'foo'] },
  { args: [...alice, 'put', 'bar', 'mine'] },
  { args: [...alice, 'get', 'bar'] },
  { args: [...alice, 'get', 'pub/', '--prefix'] },
  { args: [...alice, 'put', 'pub/b', 'y'] },
  // A range that reaches past the granted prefix.
  { args: [...alice, 'get', 'pub/', 'pub0a'] },
  { args: [...alice, 'put', 'w2', 'in-range'] },
  { args: [...alice, 'put', 'w3', 'end-excluded'] },
  { args: [...alice, 'del', 'w1', 'w3'] },
  { args: [...alice, 'del', 'w1', 'w4'] },
  { args: [...alice, 'get', '', '--from-key'] },
  { args: ['--user', 'alice:wrong', 'get', 'foo'] },
  { args: ['--user', 'nobody:pw', 'get', 'foo'] },
  // A compare on a key alice may not read is refused even though both branches are allowed.
  { args: [...alice, 'txn'], stdin: 'value("bar") = "secret"\n\nput foo yes\n\nput foo no\n\n' },
  { args: [...alice, 'txn'], stdin: 'value("foo") = "v1"\n\nput foo yes\n\nput bar no\n\n' },
  { args: [...alice, 'txn'], stdin: 'value("foo") = "v1"\n\nput foo yes\n\nget foo\n\n' },
  { args: [...alice, 'user', 'list'] },
  { args: [...alice, 'user', 'get', 'alice'] },
  { args: [...alice, 'role', 'get', 'r1'] },
  { args: [...alice, 'user', 'add', 'mallory:pw'] },
  { args: [...alice, 'auth', 'disable'] },
  { args: [...root, 'user', 'delete', 'root'] },
  { args: [...root, 'user', 'revoke-role', 'root', 'root'] },
  { args: [...root, 'role', 'revoke-permission', 'r1', 'foo'] },
  { args: [...root, 'role', 'revoke-permission', 'r1', 'foo'] },
  { args: [...alice, 'get', 'foo'] },
  { args: [...root, 'user', 'revoke-role', 'alice', 'r1'] },
  { args: [...root, 'user', 'revoke-role', 'alice', 'r1'] },
  { args: [...alice, 'get', 'pub/a'] },
  { args: [...root, 'user', 'passwd', 'alice', '--interactive=false'], stdin: 'newpw\n' },
  { args: [...alice, 'get', 'pub/a'] },
  { args: [...root, 'role', 'delete', 'r1'] },
  { args: [...root, 'user', 'get', 'alice'] },
  { args: [...root, 'user', 'delete', 'alice'] },
  { args: [...root, 'auth', 'disable'] },
  { args: ['get', 'bar'] },
  { args: ['role', 'list'] },
];

/** What a step printed: stdout and the Error: lines of stderr (etcdctl's JSON retry logs vary). */
function transcript(step: Step, r: CtlResult, exitCode = true): string {
  const errors = r.stderr.split('\n').filter((l) => l.startsWith('Error:'));
  return [`$ etcdctl ${step.args.join(' ')}`, ...r.stdout.split('\n').filter((l) => l !== ''), ...errors, ...(exitCode ? [`exit ${r.code}`] : [])].join('\n');
}

async function runScript(endpoint: string): Promise<string[]> {
  const out: string[] = [];
  for (const step of script) out.push(transcript(step, await etcdctl(endpoint, step.args, step.stdin)));
  return out;
}

const bin = fileURLToPath(new URL('../../bin/meshkv.mjs', import.meta.url));

/**
 * The same step through the `meshkv` client commands, with etcdctl's flags spelled as meshkv
 * takes them: the command name first (a first flag starts a member), boolean flags bare.
 */
function meshkvCli(endpoint: string, step: Step): Promise<CtlResult> {
  const user = step.args[0] === '--user' ? step.args.slice(0, 2) : [];
  const args = [...step.args.slice(user.length), ...user].filter((a) => a !== '--interactive=false').map((a) => (a === '--prefix=true' ? '--prefix' : a));
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [bin, ...args, `--endpoints=${endpoint}`], { timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
    child.stdin!.end(step.stdin ?? '');
  });
}

/**
 * Watches under auth: a forbidden one (etcd cancels it, and etcdctl reports it) and a permitted
 * one that sees a put. Runs after the script, which left root (with the root role) and auth off.
 */
async function runWatches(endpoint: string): Promise<string[]> {
  const out: string[] = [];
  for (const args of [
    ['user', 'add', 'bob:bobpw'],
    ['role', 'add', 'w'],
    ['role', 'grant-permission', 'w', 'readwrite', '--prefix=true', 'ok/'],
    ['user', 'grant-role', 'bob', 'w'],
    ['auth', 'enable'],
  ]) {
    out.push(transcript({ args }, await etcdctl(endpoint, args)));
  }
  const forbidden = spawnEtcdctl(endpoint, ['--user', 'bob:bobpw', 'watch', '--prefix', 'no/']);
  const stderr: string[] = [];
  forbidden.child.stderr!.on('data', (d: Buffer) => stderr.push(d.toString()));
  try {
    await waitFor('the forbidden watch ended', () => forbidden.child.exitCode !== null, 20_000);
  } finally {
    forbidden.stop();
  }
  const errors = stderr.join('').split('\n').filter((l) => l.startsWith('Error:'));
  out.push(['$ etcdctl --user bob:bobpw watch --prefix no/', ...forbidden.lines, ...errors, `exit ${forbidden.child.exitCode}`].join('\n'));
  const permitted = spawnEtcdctl(endpoint, ['--user', 'bob:bobpw', 'watch', '--prefix', 'ok/']);
  try {
    await waitFor('the permitted watch saw a put', async () => {
      await etcdctl(endpoint, ['--user', 'root:rootpw', 'put', 'ok/1', 'v']);
      return permitted.lines.length >= 3;
    }, 20_000);
  } finally {
    permitted.stop();
  }
  out.push(['$ etcdctl --user bob:bobpw watch --prefix ok/', ...permitted.lines.slice(0, 3)].join('\n'));
  out.push(transcript({ args: ['auth', 'disable'] }, await etcdctl(endpoint, ['--user', 'root:rootpw', 'auth', 'disable'])));
  return out;
}

/** What etcd printed, kept for the meshkv CLI's run. */
let reference: string[] = [];

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

let etcd: ChildProcess | undefined;
let etcdDir = '';
let etcdEndpoint = '';
let meshkv: Served | undefined;

async function startEtcd(): Promise<void> {
  if (!existsSync(etcdPath)) throw new Error(`${etcdPath} not found: install etcd 3.4 (Debian: apt-get install -y etcd-server); CI installs it`);
  etcdDir = mkdtempSync(join(tmpdir(), 'meshkv-auth-ref-'));
  const [client, peer] = [await freePort(), await freePort()];
  etcd = spawn(etcdPath, [
    '--name', 'ref', '--data-dir', join(etcdDir, 'data'),
    '--listen-client-urls', `http://127.0.0.1:${client}`, '--advertise-client-urls', `http://127.0.0.1:${client}`,
    '--listen-peer-urls', `http://127.0.0.1:${peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
    '--initial-cluster', `ref=http://127.0.0.1:${peer}`,
  ], { stdio: 'ignore' });
  etcdEndpoint = `127.0.0.1:${client}`;
  for (let i = 0; ; i++) {
    if ((await etcdctl(etcdEndpoint, ['endpoint', 'health'])).code === 0) return;
    if (i > 60) throw new Error('etcd did not become healthy in 30 s');
    await new Promise((r) => setTimeout(r, 500));
  }
}

beforeAll(async () => {
  requireEtcdctl();
  await startEtcd();
  meshkv = await serve();
}, 60_000);

afterAll(async () => {
  if (etcd?.pid !== undefined && etcd.exitCode === null) process.kill(etcd.pid, 'SIGTERM');
  await meshkv?.stop();
  if (etcdDir) rmSync(etcdDir, { recursive: true, force: true });
});

describe('etcd auth: the same etcdctl script on etcd 3.4.23 and on meshkv', () => {
  it('prints the same lines', async () => {
    reference = await runScript(etcdEndpoint);
    const ours = await runScript(meshkv!.endpoint);
    // Sanity: the script exercised both outcomes on the reference.
    expect(reference.join('\n')).toContain('Error: etcdserver: permission denied');
    expect(reference.join('\n')).toContain('Error: etcdserver: user name is empty');
    // MESHKV_PRINT_TRANSCRIPT=1 shows what etcd printed, to review the script by eye.
    if (process.env.MESHKV_PRINT_TRANSCRIPT) console.log(reference.join('\n'));
    expect(ours.join('\n\n')).toBe(reference.join('\n\n'));
    const watchReference = await runWatches(etcdEndpoint);
    if (process.env.MESHKV_PRINT_TRANSCRIPT) console.log(watchReference.join('\n'));
    expect((await runWatches(meshkv!.endpoint)).join('\n\n')).toBe(watchReference.join('\n\n'));
  }, 240_000);

  it('the meshkv client commands print what etcdctl printed on etcd (exit codes aside)', async () => {
    expect(reference.length).toBe(script.length);
    const member = await serve();
    try {
      const ours: string[] = [];
      const theirs: string[] = [];
      for (const [i, step] of script.entries()) {
        // The txn steps' stdin grammar is etcdctl's interactive one; meshkv txn is tested in commands.test.ts.
        if (step.args.includes('txn')) continue;
        ours.push(transcript(step, await meshkvCli(member.endpoint, step), false));
        theirs.push(reference[i].replace(/\nexit \d+$/, ''));
      }
      expect(ours.join('\n\n')).toBe(theirs.join('\n\n'));
    } finally {
      await member.stop();
    }
  }, 300_000);
});
