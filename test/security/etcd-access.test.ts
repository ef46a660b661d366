// --cors and --host-whitelist side by side with real etcd 3.4: both started with the same flags,
// the same requests, the same answers (status, CORS origin, the 421 text), and the same
// refusal of a --cors origin without a port.

import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../adapters/node/config.ts';
import { startNodeMember, type NodeMember } from '../../adapters/node/node-member.ts';
import { freePort, spawnCollecting, type Spawned } from '../helpers/processes.ts';
import { waitFor } from '../helpers/wait.ts';

const etcdPath = '/usr/bin/etcd';
const flags = ['--cors', 'http://a.example:8080,http://b.example:9090', '--host-whitelist', 'localhost,good.example'];

let root: string;
let etcd: Spawned;
let node: NodeMember;
let etcdPort: number;
let meshkvPort: number;

function request(port: number, path: string, method: string, headers: Record<string, string>): Promise<{ status: number; allowOrigin: string | null; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString();
        // Only the 421 text is compared: the API bodies differ in their headers (cluster ids).
        resolve({ status: res.statusCode!, allowOrigin: (res.headers['access-control-allow-origin'] as string | undefined) ?? null, body: res.statusCode === 421 ? body : '' });
      });
    });
    req.on('error', reject);
    req.end(method === 'POST' ? '{"key":"eA=="}' : undefined);
  });
}

beforeAll(async () => {
  if (!existsSync(etcdPath)) throw new Error(`${etcdPath} not found: install Debian's etcd-server (apt-get install -y etcd-server)`);
  root = mkdtempSync(join(tmpdir(), 'meshkv-sec-etcd-'));
  etcdPort = await freePort();
  const peerPort = await freePort();
  etcd = spawnCollecting(etcdPath, [
    '--data-dir', join(root, 'etcd'),
    '--listen-client-urls', `http://127.0.0.1:${etcdPort}`, '--advertise-client-urls', `http://127.0.0.1:${etcdPort}`,
    '--listen-peer-urls', `http://127.0.0.1:${peerPort}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peerPort}`,
    '--initial-cluster', `default=http://127.0.0.1:${peerPort}`,
    ...flags,
  ]);
  meshkvPort = await freePort();
  const parsed = parseConfig(['--data-dir', join(root, 'meshkv'), '--listen-client-urls', `http://127.0.0.1:${meshkvPort}`, '--browser-peers', 'off', ...flags], {});
  if (parsed.kind !== 'start') throw new Error('expected a start config');
  node = await startNodeMember(parsed.config, { log: () => {} });
  await waitFor('etcd to serve', async () => (await request(etcdPort, '/v3/kv/range', 'POST', { host: 'localhost' }).catch(() => null))?.status === 200, 20_000);
  await waitFor('meshkv to serve', async () => (await request(meshkvPort, '/v3/kv/range', 'POST', { host: 'localhost' }).catch(() => null))?.status === 200, 20_000);
}, 60_000);

afterAll(async () => {
  await node?.stop();
  if (etcd?.child.pid !== undefined && etcd.child.exitCode === null) {
    process.kill(etcd.child.pid, 'SIGKILL');
    await etcd.exited;
  }
  rmSync(root, { recursive: true, force: true });
});

describe('--cors and --host-whitelist against etcd 3.4', () => {
  const cases: [string, string, string, Record<string, string>][] = [
    ['whitelisted host, listed origin', '/v3/kv/range', 'POST', { host: 'localhost', origin: 'http://a.example:8080' }],
    ['whitelisted host and port, other listed origin', '/v3/kv/range', 'POST', { host: 'good.example:2379', origin: 'http://b.example:9090' }],
    ['whitelisted host, unlisted origin', '/v3/kv/range', 'POST', { host: 'localhost', origin: 'http://evil.example' }],
    ['whitelisted host, origin without its port', '/v3/kv/range', 'POST', { host: 'localhost', origin: 'http://a.example' }],
    ['whitelisted host, no origin', '/v3/kv/range', 'POST', { host: 'localhost' }],
    ['preflight from a listed origin', '/v3/kv/put', 'OPTIONS', { host: 'localhost', origin: 'http://a.example:8080', 'access-control-request-method': 'POST' }],
    ['preflight from an unlisted origin', '/v3/kv/put', 'OPTIONS', { host: 'localhost', origin: 'http://evil.example', 'access-control-request-method': 'POST' }],
    ['rebound host name', '/v3/kv/range', 'POST', { host: 'rebound.example:2379', origin: 'http://a.example:8080' }],
    ['the address itself, not whitelisted', '/v3/kv/range', 'POST', { host: '127.0.0.1' }],
    ['health through a rebound name', '/health', 'GET', { host: 'rebound.example' }],
  ];
  for (const [what, path, method, headers] of cases) {
    it(what, async () => {
      const want = await request(etcdPort, path, method, headers);
      const got = await request(meshkvPort, path, method, headers);
      expect(got).toEqual(want);
    });
  }

  it('both refuse a --cors origin without a port', () => {
    expect(() => parseConfig(['--cors', 'http://a.example'], {})).toThrow('--cors: "http://a.example" is not an origin of the form scheme://host:port (e.g. http://127.0.0.1:5173)');
    const r = spawnCollecting(etcdPath, ['--data-dir', join(root, 'refused'), '--cors', 'http://a.example']);
    return r.exited.then((code) => {
      expect(code).not.toBe(0);
      expect(r.logs.join('\n')).toContain('invalid value "http://a.example" for flag -cors');
    });
  });
});
