// Three real meshkv processes whose peers talk mutual TLS (https:// peer URLs and the
// --peer-* flags), and a member serving its clients over TLS (--cert-file, --key-file,
// --trusted-ca-file, --client-cert-auth), with a CA and a certificate made here by openssl; and
// the flag mistakes a user can make, each refused with a message that names the flag or file.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { Etcd3 } from 'etcd3';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etcdctl, requireEtcdctl } from '../etcd-api/harness.ts';
import { spawnCollecting } from '../helpers/processes.ts';
import { eventually, Processes, ready, testAdmissionSecret, type MemberSpec, type Proc } from './processes.ts';

const openssl = '/usr/bin/openssl';
const bin = new URL('../../bin/meshkv.mjs', import.meta.url).pathname;
const procs = new Processes();
const tlsDir = join(procs.root, 'tls');
const file = (name: string) => join(tlsDir, name);
let members: Proc[] = [];
let specs: MemberSpec[] = [];

/** A CA and, signed by it, one certificate for 127.0.0.1 good for both ends of a peer connection. */
function makeCertificates(): void {
  if (!existsSync(openssl)) throw new Error(`${openssl} not found: the peer TLS test makes its certificates with it (apt-get install -y openssl)`);
  mkdirSync(tlsDir);
  const run = (...args: string[]) => execFileSync(openssl, args, { stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  run('req', '-x509', ...ec, '-keyout', file('ca.key'), '-out', file('ca.crt'), '-days', '2', '-subj', '/CN=meshkv test CA');
  run('req', ...ec, '-keyout', file('peer.key'), '-out', file('peer.csr'), '-subj', '/CN=meshkv peer');
  writeFileSync(file('peer.ext'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n');
  run('x509', '-req', '-in', file('peer.csr'), '-CA', file('ca.crt'), '-CAkey', file('ca.key'), '-CAcreateserial', '-out', file('peer.crt'), '-days', '2', '-extfile', file('peer.ext'));
}

const tlsFlags = () => ['--peer-cert-file', file('peer.crt'), '--peer-key-file', file('peer.key'), '--peer-trusted-ca-file', file('ca.crt'), '--peer-client-cert-auth'];

beforeAll(async () => {
  requireEtcdctl();
  makeCertificates();
  specs = [await procs.spec('t1'), await procs.spec('t2'), await procs.spec('t3')];
  members = specs.map((s) => procs.start(s, specs, tlsFlags(), { peer: 'https' }));
  for (const p of members) await ready(p);
}, 60_000);

afterAll(async () => {
  await procs.cleanup();
});

/** Runs meshkv with `args` until it exits; returns its exit code and log lines. */
async function runToExit(args: string[]): Promise<{ code: number | null; logs: string }> {
  const r = spawnCollecting(process.execPath, [bin, ...args]);
  const code = await Promise.race([r.exited, new Promise<'running'>((res) => setTimeout(() => res('running'), 15_000))]);
  if (code === 'running') {
    process.kill(r.child.pid!, 'SIGKILL');
    throw new Error(`meshkv ${args.join(' ')} kept running:\n${r.logs.join('\n')}`);
  }
  return { code, logs: r.logs.join('\n') };
}

describe('peer TLS', () => {
  it('forms a cluster over https:// peer URLs and replicates', async () => {
    const list = await eventually(
      'three members with https peer URLs and published client URLs',
      async () => {
        const out = (await etcdctl(members[0].endpoint, ['member', 'list'])).stdout;
        return out.split('\n').filter((l) => /, started, t\d, https:\/\/127\.0\.0\.1:\d+, http:\/\/127\.0\.0\.1:\d+, false$/.test(l)).length === 3 && out;
      },
      10_000,
    );
    expect(list).not.toContain(', http://127.0.0.1:' + specs[0].peerPort);
    expect((await etcdctl(members[0].endpoint, ['put', 'over', 'tls'])).stdout).toBe('OK\n');
    for (const p of members.slice(1)) expect((await etcdctl(p.endpoint, ['get', 'over'])).stdout).toBe('over\ntls\n');
    expect(members.flatMap((p) => p.logs).filter((l) => l.includes('TLS handshake'))).toEqual([]);
  }, 30_000);

  it('refuses a member whose certificate another CA signed', async () => {
    const otherDir = join(tlsDir, 'other');
    mkdirSync(otherDir);
    const o = (name: string) => join(otherDir, name);
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
    execFileSync(openssl, ['req', '-x509', ...ec, '-keyout', o('key'), '-out', o('crt'), '-days', '2', '-subj', '/CN=stranger', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'pipe' });
    const spec = await procs.spec('stranger');
    // It names itself t1's peers' cluster but trusts only itself: no handshake succeeds either way.
    const stranger = procs.start(spec, [specs[0], spec], ['--peer-cert-file', o('crt'), '--peer-key-file', o('key'), '--peer-trusted-ca-file', o('crt')], { peer: 'https' });
    await eventually('the stranger to log a failed TLS connection', async () => stranger.logs.some((l) => /connection to peer .* failed|TLS/.test(l)), 10_000);
    expect(stranger.logs.some((l) => l.includes('"msg":"ready: the cluster has a leader"'))).toBe(false);
    await procs.kill9(stranger);
    expect((await etcdctl(members[0].endpoint, ['member', 'list'])).stdout.trim().split('\n')).toHaveLength(3);
  }, 30_000);

  it('refuses unreadable files, a key that does not match the certificate, and plain peer URLs with TLS on', async () => {
    const base = async (extra: string[]) => ['--data-dir', join(procs.root, 'bad.data'), '--listen-client-urls', `http://127.0.0.1:${(await procs.spec('b')).clientPort}`, '--admission-secret', testAdmissionSecret, ...extra];
    // Two members, so that the member listens for peers and reads the TLS files.
    const cluster = ['--initial-cluster', `default=https://127.0.0.1:${(await procs.spec('c')).peerPort},other=https://127.0.0.1:1`];
    const missing = await runToExit(await base([...cluster, '--peer-cert-file', file('peer.crt'), '--peer-key-file', file('peer.key'), '--peer-trusted-ca-file', '/nonexistent/ca.crt']));
    expect(missing.code).toBe(1);
    expect(missing.logs).toContain('--peer-trusted-ca-file: cannot read /nonexistent/ca.crt: ENOENT');
    const mismatch = await runToExit(await base([...cluster, '--peer-cert-file', file('peer.crt'), '--peer-key-file', file('ca.key'), '--peer-trusted-ca-file', file('ca.crt')]));
    expect(mismatch.code).toBe(1);
    expect(mismatch.logs).toMatch(/peer TLS: --peer-cert-file .*peer\.crt, --peer-key-file .*ca\.key, --peer-trusted-ca-file .*ca\.crt: .*key values mismatch/);
    // A usage error (the others are in test/etcd-api/config.test.ts): exit code 2.
    const plain = await runToExit(await base(['--initial-cluster', 'default=http://127.0.0.1:1', ...tlsFlags()]));
    expect(plain.code).toBe(2);
    expect(plain.logs).toContain('peer TLS is on, so every peer URL must be https://, not http://127.0.0.1:1');
  }, 30_000);
});

describe('client TLS', () => {
  let member: Proc;
  let endpoint = '';
  const certs = () => ['--cacert', file('ca.crt'), '--cert', file('peer.crt'), '--key', file('peer.key')];

  beforeAll(async () => {
    const spec = await procs.spec('c1');
    // A lone member: no peer listener, only the client port over TLS.
    member = procs.start(spec, [spec], [
      '--cert-file', file('peer.crt'), '--key-file', file('peer.key'), '--trusted-ca-file', file('ca.crt'), '--client-cert-auth',
    ], { client: 'https' });
    await ready(member);
    endpoint = member.endpoint;
  }, 30_000);

  it('etcdctl with a client certificate gets answers, with or without the https:// scheme; without one it is refused', async () => {
    expect(await etcdctl(endpoint, [...certs(), 'put', 'secure', 'yes'])).toMatchObject({ code: 0, stdout: 'OK\n' });
    expect((await etcdctl(`https://${endpoint}`, [...certs(), 'get', 'secure'])).stdout).toBe('secure\nyes\n');
    expect((await etcdctl(endpoint, [...certs(), 'endpoint', 'status'])).stdout).toMatch(new RegExp(`^${endpoint}, [0-9a-f]+, 3\\.4\\.23, `));
    // Per-endpoint commands send `:authority: https://host:port`: the authority shim's TLS path.
    expect((await etcdctl(`https://${endpoint}`, [...certs(), 'endpoint', 'status'])).stdout).toMatch(new RegExp(`^https://${endpoint}, [0-9a-f]+, 3\\.4\\.23, `));
    expect((await etcdctl(`https://${endpoint}`, [...certs(), 'endpoint', 'hashkv'])).stdout).toMatch(new RegExp(`^https://${endpoint}, \\d+\\n$`));
    const noCert = await etcdctl(endpoint, ['--cacert', file('ca.crt'), 'get', 'secure', '--command-timeout=2s']);
    expect(noCert.code).not.toBe(0);
    const plain = await etcdctl(endpoint, ['get', 'secure', '--command-timeout=2s']);
    expect(plain.code).not.toBe(0);
  }, 30_000);

  it('the etcd3 client over TLS, and the JSON gateway over https', async () => {
    const client = new Etcd3({
      hosts: `https://${endpoint}`,
      credentials: { rootCertificate: readFileSync(file('ca.crt')), privateKey: readFileSync(file('peer.key')), certChain: readFileSync(file('peer.crt')) },
    });
    try {
      await client.put('from-npm').value('tls');
      expect(await client.get('secure').string()).toBe('yes');
    } finally {
      client.close();
    }
    const body = await new Promise<string>((resolve, reject) => {
      const req = https.request(
        `https://${endpoint}/v3/kv/range`,
        { method: 'POST', ca: readFileSync(file('ca.crt')), cert: readFileSync(file('peer.crt')), key: readFileSync(file('peer.key')) },
        (res) => {
          let text = '';
          res.on('data', (d: Buffer) => (text += d.toString()));
          res.on('end', () => resolve(text));
        },
      );
      req.on('error', reject);
      req.end(JSON.stringify({ key: btoa('from-npm') }));
    });
    expect(JSON.parse(body).kvs[0].value).toBe(btoa('tls'));
  }, 30_000);
});
