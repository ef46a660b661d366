// etcd's JWT auth tokens (`--auth-token jwt,pub-key=…,priv-key=…,sign-method=…,ttl=…`), side by
// side with real etcd 3.4 started with the same flag: the same etcdctl transcript (allowed and
// denied calls as a user), tokens with etcd's claims, and the same refusals of a forged token,
// a token signed by another key, and a token issued before an auth change. On meshkv, a
// two-member cluster: `a` holds the key pair, `b` only the public key (verify-only), so a token
// `a` signs must verify on `b`, and `b` cannot sign. The etcd3 npm client authenticates too.

import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../adapters/node/config.ts';
import { startNodeMember, type NodeMember } from '../../adapters/node/node-member.ts';
import { startMember } from '../../adapters/node/start-member.ts';
import { testAdmissionSecret } from '../cluster/processes.ts';
import { etcdctl, requireEtcdctl } from '../etcd-api/harness.ts';
import { freePort, spawnCollecting, type Spawned } from '../helpers/processes.ts';
import { waitFor } from '../helpers/wait.ts';

const etcdPath = '/usr/bin/etcd';
let root: string;
let etcd: Spawned;
const nodes: NodeMember[] = [];
/** Client endpoints: real etcd, meshkv's signing member `a`, meshkv's verify-only member `b`. */
const at = { etcd: '', a: '', b: '' };
let authFlag: string;
let otherPrivateKey: string;

const b64 = (t: string) => Buffer.from(t).toString('base64');
const errorLine = (stderr: string) => stderr.split('\n').find((l) => l.startsWith('Error:')) ?? stderr;

async function post(endpoint: string, path: string, body: unknown, token?: string): Promise<{ status: number; json: Record<string, any> }> {
  const res = await fetch(`http://${endpoint}${path}`, { method: 'POST', body: JSON.stringify(body), headers: token === undefined ? {} : { Authorization: token } });
  return { status: res.status, json: (await res.json()) as Record<string, any> };
}

/** What a gateway answer says, without the header that names the cluster and member. */
async function outcome(endpoint: string, path: string, body: unknown, token: string): Promise<{ status: number; error?: string; count?: string }> {
  const { status, json } = await post(endpoint, path, body, token);
  return status === 200 ? { status, count: json.count ?? '0' } : { status, error: json.message };
}

async function authenticate(endpoint: string, name: string, password: string): Promise<string> {
  const { status, json } = await post(endpoint, '/v3/auth/authenticate', { name, password });
  if (status !== 200) throw new Error(`authenticate ${name} on ${endpoint}: ${status} ${JSON.stringify(json)}`);
  return json.token as string;
}

const claimsOf = (token: string) => JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString()) as Record<string, unknown>;

beforeAll(async () => {
  requireEtcdctl();
  if (!existsSync(etcdPath)) throw new Error(`${etcdPath} not found: install Debian's etcd-server (apt-get install -y etcd-server)`);
  root = mkdtempSync(join(tmpdir(), 'meshkv-jwt-'));
  // PKCS#1, as `openssl genrsa` writes it; the public key as SPKI, as `openssl rsa -pubout` does.
  const pair = generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs1', format: 'pem' } });
  otherPrivateKey = generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } }).privateKey;
  writeFileSync(join(root, 'jwt.key'), pair.privateKey);
  writeFileSync(join(root, 'jwt.pub'), pair.publicKey);
  authFlag = `jwt,pub-key=${join(root, 'jwt.pub')},priv-key=${join(root, 'jwt.key')},sign-method=RS256,ttl=10m`;
  const verifyOnlyFlag = `jwt,pub-key=${join(root, 'jwt.pub')},sign-method=RS256,ttl=10m`;

  const etcdPort = await freePort();
  const etcdPeer = await freePort();
  etcd = spawnCollecting(etcdPath, [
    '--data-dir', join(root, 'etcd'),
    '--listen-client-urls', `http://127.0.0.1:${etcdPort}`, '--advertise-client-urls', `http://127.0.0.1:${etcdPort}`,
    '--listen-peer-urls', `http://127.0.0.1:${etcdPeer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${etcdPeer}`,
    '--initial-cluster', `default=http://127.0.0.1:${etcdPeer}`,
    '--auth-token', authFlag,
  ]);
  at.etcd = `127.0.0.1:${etcdPort}`;

  const ports = { a: [await freePort(), await freePort()], b: [await freePort(), await freePort()] };
  const cluster = `a=http://127.0.0.1:${ports.a[1]},b=http://127.0.0.1:${ports.b[1]}`;
  const started = (['a', 'b'] as const).map((name) => {
    const [client, peer] = ports[name];
    at[name] = `127.0.0.1:${client}`;
    const parsed = parseConfig([
      '--name', name, '--data-dir', join(root, name),
      '--listen-client-urls', `http://127.0.0.1:${client}`,
      '--listen-peer-urls', `http://127.0.0.1:${peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
      '--initial-cluster', cluster, '--admission-secret', testAdmissionSecret, '--browser-peers', 'off',
      '--auth-token', name === 'a' ? authFlag : verifyOnlyFlag,
    ], {});
    if (parsed.kind !== 'start') throw new Error('expected a start config');
    return startNodeMember(parsed.config, { log: () => {} });
  });
  nodes.push(...(await Promise.all(started)));
  for (const endpoint of Object.values(at)) {
    await waitFor(`${endpoint} to serve`, async () => (await etcdctl(endpoint, ['put', 'warm', 'up'])).code === 0, 30_000);
  }
  for (const endpoint of [at.etcd, at.a]) {
    for (const args of [
      ['user', 'add', 'root:rootpw'],
      ['role', 'add', 'app'],
      ['role', 'grant-permission', 'app', 'readwrite', '--prefix=true', 'app/'],
      ['user', 'add', 'alice:alicepw'],
      ['user', 'grant-role', 'alice', 'app'],
      ['auth', 'enable'],
    ]) {
      const r = await etcdctl(endpoint, args);
      if (r.code !== 0) throw new Error(`etcdctl ${args.join(' ')} on ${endpoint}: ${r.stderr}`);
    }
  }
}, 120_000);

afterAll(async () => {
  for (const n of nodes) await n.stop();
  if (etcd?.child.pid !== undefined && etcd.child.exitCode === null) {
    process.kill(etcd.child.pid, 'SIGKILL');
    await etcd.exited;
  }
  if (root) rmSync(root, { recursive: true, force: true });
});

describe('JWT tokens, as etcd 3.4 issues and checks them', () => {
  it('prints the same etcdctl transcript as etcd for a user with a prefix grant', async () => {
    const script = [
      ['--user', 'alice:alicepw', 'put', 'app/x', '1'],
      ['--user', 'alice:alicepw', 'get', 'app/x'],
      ['--user', 'alice:alicepw', 'put', 'other', '1'],
      ['--user', 'alice:alicepw', 'get', 'other'],
      ['--user', 'alice:wrong', 'get', 'app/x'],
      ['--user', 'root:rootpw', 'get', 'app/x', '--print-value-only'],
      ['get', 'app/x'],
    ];
    const transcript = async (endpoint: string) => {
      const lines: string[] = [];
      for (const args of script) {
        const r = await etcdctl(endpoint, args);
        lines.push(`$ ${args.join(' ')}`, ...r.stdout.split('\n').filter((l) => l !== ''), ...(r.code === 0 ? [] : [errorLine(r.stderr)]));
      }
      return lines;
    };
    const want = await transcript(at.etcd);
    expect(want).toContain('Error: etcdserver: permission denied');
    expect(await transcript(at.a)).toEqual(want);
    // The verify-only member checks alice's token from `a`… but cannot sign one itself.
    const fromB = await etcdctl(at.b, ['--user', 'alice:alicepw', 'get', 'app/x']);
    // etcd has no gRPC code for this error either: etcdctl prints it as Unknown.
    expect(errorLine(fromB.stderr)).toBe('Error: rpc error: code = Unknown desc = auth: token signing attempted with verify-only key');
  });

  it("issues tokens with etcd's header and claims, verified on every member holding the public key", async () => {
    const [fromEtcd, fromMeshkv] = [await authenticate(at.etcd, 'alice', 'alicepw'), await authenticate(at.a, 'alice', 'alicepw')];
    for (const token of [fromEtcd, fromMeshkv]) {
      expect(JSON.parse(Buffer.from(token.split('.')[0], 'base64url').toString())).toEqual({ alg: 'RS256', typ: 'JWT' });
      expect(Object.keys(claimsOf(token))).toEqual(['exp', 'revision', 'username']);
      expect(claimsOf(token).username).toBe('alice');
      expect((claimsOf(token).exp as number) * 1000 - Date.now()).toBeGreaterThan(9 * 60_000);
    }
    const range = { key: b64('app/'), range_end: b64('app0') };
    expect(await outcome(at.a, '/v3/kv/range', range, fromMeshkv)).toEqual({ status: 200, count: '1' });
    expect(await outcome(at.b, '/v3/kv/range', range, fromMeshkv)).toEqual({ status: 200, count: '1' });
    expect(await outcome(at.b, '/v3/kv/range', { key: b64('other') }, fromMeshkv)).toEqual(await outcome(at.etcd, '/v3/kv/range', { key: b64('other') }, fromEtcd));
  });

  it('refuses a forged token, one signed by another key, and alg "none", as etcd does', async () => {
    const forge = (token: string) => {
      const [header, , signature] = token.split('.');
      const claims = Buffer.from(JSON.stringify({ ...claimsOf(token), username: 'root' })).toString('base64url');
      return `${header}.${claims}.${signature}`;
    };
    const { createSign } = await import('node:crypto');
    const signedElsewhere = (token: string) => {
      const [header, claims] = token.split('.');
      const signature = createSign('RSA-SHA256').update(`${header}.${claims}`).sign(otherPrivateKey).toString('base64url');
      return `${header}.${claims}.${signature}`;
    };
    const none = (token: string) => `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${token.split('.')[1]}.`;
    const range = { key: b64('app/x') };
    const fromEtcd = await authenticate(at.etcd, 'alice', 'alicepw');
    const fromMeshkv = await authenticate(at.a, 'alice', 'alicepw');
    for (const tamper of [forge, signedElsewhere, none]) {
      const want = await outcome(at.etcd, '/v3/kv/range', range, tamper(fromEtcd));
      expect(want).toEqual({ status: 401, error: 'etcdserver: invalid auth token' });
      expect(await outcome(at.a, '/v3/kv/range', range, tamper(fromMeshkv))).toEqual(want);
      expect(await outcome(at.b, '/v3/kv/range', range, tamper(fromMeshkv))).toEqual(want);
    }
  });

  it('refuses a token issued before an auth change ("revision of auth store is old"), as etcd does', async () => {
    const fromEtcd = await authenticate(at.etcd, 'alice', 'alicepw');
    const fromMeshkv = await authenticate(at.a, 'alice', 'alicepw');
    for (const endpoint of [at.etcd, at.a]) expect((await etcdctl(endpoint, ['--user', 'root:rootpw', 'role', 'add', 'later'])).code).toBe(0);
    const range = { key: b64('app/x') };
    const want = await outcome(at.etcd, '/v3/kv/range', range, fromEtcd);
    expect(want).toEqual({ status: 400, error: 'etcdserver: revision of auth store is old' });
    expect(await outcome(at.a, '/v3/kv/range', range, fromMeshkv)).toEqual(want);
    await waitFor('the role to reach b', async () => (await outcome(at.b, '/v3/kv/range', range, fromMeshkv)).error === want.error, 10_000);
    // A fresh token works again.
    expect(await outcome(at.b, '/v3/kv/range', range, await authenticate(at.a, 'alice', 'alicepw'))).toEqual({ status: 200, count: '1' });
  });

  it("takes the option in startMember as authToken, checked as the flag is, before anything starts", async () => {
    await expect(startMember({ dataDir: join(root, 'embedded'), authToken: 'jwt,pub-key=x.pub,sign-method=RS999' })).rejects.toThrow(
      'authToken: auth: invalid auth options (problem loading JWT options: auth: invalid auth signature method "RS999"; one of RS256',
    );
    await expect(startMember({ dataDir: join(root, 'embedded'), browserPeers: 'off', authToken: `jwt,pub-key=${join(root, 'missing.pub')},sign-method=RS256` })).rejects.toThrow(
      `authToken: auth: invalid auth options (problem loading JWT options: open ${join(root, 'missing.pub')}: ENOENT)`,
    );
    expect(existsSync(join(root, 'embedded'))).toBe(false);
  });

  it('serves the etcd3 npm client with its auth option', async () => {
    for (const endpoint of [at.etcd, at.a]) {
      const client = new Etcd3({ hosts: `http://${endpoint}`, auth: { username: 'alice', password: 'alicepw' } });
      try {
        await client.put('app/etcd3').value('v');
        expect(await client.get('app/etcd3').string()).toBe('v');
        await expect(client.put('other').value('v')).rejects.toThrow('etcdserver: permission denied');
      } finally {
        client.close();
      }
    }
  });
});
