// The client port's HTTP side as an attacker's web page or a curious client meets it: the
// admission secret endpoint, the fault endpoint, static files, --cors and --host-whitelist.
// A real Node member; requests carry the headers a browser would (Origin, Sec-Fetch-Site).

import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../adapters/node/config.ts';
import { startNodeMember, type NodeMember } from '../../adapters/node/node-member.ts';
import { freePort } from '../helpers/processes.ts';
import { waitFor } from '../helpers/wait.ts';

const roots: string[] = [];
const nodes: NodeMember[] = [];
afterAll(async () => {
  for (const n of nodes) await n.stop();
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

async function start(flags: string[]): Promise<{ node: NodeMember; base: string; port: number; dataDir: string; logs: string[] }> {
  const root = mkdtempSync(join(tmpdir(), 'meshkv-sec-http-'));
  roots.push(root);
  const port = await freePort();
  const dataDir = join(root, 'data');
  const parsed = parseConfig(['--data-dir', dataDir, '--listen-client-urls', `http://127.0.0.1:${port}`, ...flags], {});
  if (parsed.kind !== 'start') throw new Error('expected a start config');
  const logs: string[] = [];
  const node = await startNodeMember(parsed.config, { log: (level, msg, fields) => logs.push(`${level}: ${msg} ${JSON.stringify(fields ?? {})}`) });
  nodes.push(node);
  await waitFor('the member to lead', () => node.kv.member.isLeader());
  return { node, base: `http://127.0.0.1:${port}`, port, dataDir, logs };
}

/** A raw HTTP request (fetch would not let us set Host, Origin or Sec-Fetch-Site freely). */
function request(base: string, path: string, o: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${base}${path}`, { method: o.method ?? 'GET', headers: o.headers ?? {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end(o.body);
  });
}

describe('the admission secret', () => {
  let m: Awaited<ReturnType<typeof start>>;
  beforeAll(async () => {
    m = await start([]);
  });

  it('is generated on first start, kept in the data directory with mode 0600, and never logged', () => {
    const file = join(m.dataDir, 'admission-secret');
    const secret = readFileSync(file, 'utf8').trim();
    expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(m.logs.join('\n')).not.toContain(secret);
  });

  it('is given to a same-origin page, with no CORS headers and no caching', async () => {
    const r = await request(m.base, '/meshkv/admission', { headers: { 'sec-fetch-site': 'same-origin', origin: m.base } });
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toEqual({ cluster: 'meshkv-cluster', secret: readFileSync(join(m.dataDir, 'admission-secret'), 'utf8').trim(), signalingPath: '/meshkv/signal' });
    expect(r.headers['access-control-allow-origin']).toBeUndefined();
    expect(r.headers['cache-control']).toBe('no-store');
  });

  it('is refused to pages of other origins and to requests that are not a browser page of this origin', async () => {
    const attempts: Record<string, string>[] = [{ 'sec-fetch-site': 'cross-site', origin: 'http://evil.example' }, { 'sec-fetch-site': 'same-site', origin: 'http://127.0.0.1:1' }, { 'sec-fetch-site': 'same-origin', origin: 'http://evil.example' }, {}];
    for (const headers of attempts) {
      const r = await request(m.base, '/meshkv/admission', { headers });
      expect(r.status, JSON.stringify(headers)).toBe(403);
      expect(r.body).not.toContain(readFileSync(join(m.dataDir, 'admission-secret'), 'utf8').trim());
      expect(r.headers['access-control-allow-origin']).toBeUndefined();
    }
  });

  it('a restarted member keeps its secret', async () => {
    const before = readFileSync(join(m.dataDir, 'admission-secret'), 'utf8');
    await m.node.stop();
    nodes.splice(nodes.indexOf(m.node), 1);
    const parsed = parseConfig(['--data-dir', m.dataDir, '--listen-client-urls', `http://127.0.0.1:${m.port}`], {});
    if (parsed.kind !== 'start') throw new Error('expected a start config');
    const again = await startNodeMember(parsed.config, { log: () => {} });
    nodes.push(again);
    expect(readFileSync(join(m.dataDir, 'admission-secret'), 'utf8')).toBe(before);
    const r = await request(m.base, '/meshkv/admission', { headers: { 'sec-fetch-site': 'same-origin' } });
    expect(JSON.parse(r.body).secret).toBe(before.trim());
  });
});

describe('the fault endpoint', () => {
  let m: Awaited<ReturnType<typeof start>>;
  let authorization: string;
  beforeAll(async () => {
    m = await start(['--experimental-fault-injection']);
    authorization = `Bearer ${readFileSync(join(m.dataDir, 'fault-injection-secret'), 'utf8').trim()}`;
  });

  it('refuses requests without its secret, or with another one', async () => {
    const attempts: Record<string, string>[] = [{}, { authorization: 'Bearer wrong' }, { authorization: `Bearer ${readFileSync(join(m.dataDir, 'admission-secret'), 'utf8').trim()}` }];
    for (const headers of attempts) {
      const r = await request(m.base, '/meshkv/faults/clock', { method: 'POST', headers, body: JSON.stringify({ jumpMs: 60_000 }) });
      expect(r.status).toBe(401);
      expect(r.headers['access-control-allow-origin']).toBeUndefined();
    }
    const state = await request(m.base, '/meshkv/faults', { headers: { authorization } });
    expect(JSON.parse(state.body).clock).toEqual({ rate: 1, jumpedMs: 0 });
  });

  it("refuses another origin's page even with the secret, and answers no CORS preflight", async () => {
    const r = await request(m.base, '/meshkv/faults/clock', {
      method: 'POST',
      headers: { authorization, origin: 'http://evil.example', 'sec-fetch-site': 'cross-site', 'content-type': 'text/plain' },
      body: JSON.stringify({ jumpMs: 60_000 }),
    });
    expect(r.status).toBe(403);
    const preflight = await request(m.base, '/meshkv/faults/clock', { method: 'OPTIONS', headers: { origin: 'http://evil.example', 'access-control-request-method': 'POST' } });
    expect(preflight.headers['access-control-allow-origin']).toBeUndefined();
    const state = await request(m.base, '/meshkv/faults', { headers: { authorization } });
    expect(JSON.parse(state.body).clock).toEqual({ rate: 1, jumpedMs: 0 });
  });

  it('acts for a loopback client with the secret', async () => {
    const r = await request(m.base, '/meshkv/faults/clock', { method: 'POST', headers: { authorization }, body: JSON.stringify({ jumpMs: 100 }) });
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body).clock).toEqual({ rate: 1, jumpedMs: 100 });
  });
});

describe('static files', () => {
  it('never serve a file outside the served directory, through a symlink or a dot-dot path', async () => {
    const root = mkdtempSync(join(tmpdir(), 'meshkv-sec-static-'));
    roots.push(root);
    const site = join(root, 'site');
    mkdirSync(site);
    writeFileSync(join(site, 'index.html'), '<p>demo</p>');
    writeFileSync(join(root, 'private.txt'), 'outside the served directory');
    mkdirSync(join(root, 'private-dir'));
    writeFileSync(join(root, 'private-dir', 'index.html'), 'outside too');
    symlinkSync(join(root, 'private.txt'), join(site, 'leak.txt'));
    symlinkSync(join(root, 'private-dir'), join(site, 'leakdir'));
    symlinkSync(join(site, 'index.html'), join(site, 'inside.html'));
    const m = await start(['--static-dir', site]);
    expect((await request(m.base, '/')).body).toBe('<p>demo</p>');
    expect((await request(m.base, '/inside.html')).body).toBe('<p>demo</p>');
    for (const path of ['/leak.txt', '/leakdir/', '/leakdir/index.html', '/../private.txt', '/%2e%2e/private.txt']) {
      const r = await request(m.base, path);
      expect(r.status, path).not.toBe(200);
      expect(r.body, path).not.toContain('outside');
    }
  });
});

describe('--max-request-bytes', () => {
  it("refuses larger requests with etcd's error, and cannot be raised above etcd's default", async () => {
    const m = await start(['--max-request-bytes', '1024']);
    const small = await request(m.base, '/v3/kv/put', { method: 'POST', body: JSON.stringify({ key: 'c21hbGw=', value: Buffer.alloc(500).toString('base64') }) });
    expect(small.status).toBe(200);
    const big = await request(m.base, '/v3/kv/put', { method: 'POST', body: JSON.stringify({ key: 'Ymln', value: Buffer.alloc(2000).toString('base64') }) });
    expect(big.status).toBe(400);
    expect(JSON.parse(big.body).message).toBe('etcdserver: request is too large');
    expect(() => parseConfig(['--max-request-bytes', String(2 * 1024 * 1024)], {})).toThrow(/--max-request-bytes must be an integer from 1 to 1572864/);
  });
});

describe('--cors and --host-whitelist, as etcd 3.4 has them', () => {
  it('by default answers any origin with Access-Control-Allow-Origin: * and any Host', async () => {
    const m = await start([]);
    const r = await request(m.base, '/v3/kv/range', { method: 'POST', headers: { origin: 'http://a.example', host: 'rebound.example:2379' }, body: '{"key":"eA=="}' });
    expect(r.status).toBe(200);
    expect(r.headers['access-control-allow-origin']).toBe('*');
  });

  it('with --cors, names only the listed origins', async () => {
    const m = await start(['--cors', 'http://a.example:80,http://b.example:8080']);
    const listed = await request(m.base, '/v3/kv/range', { method: 'POST', headers: { origin: 'http://b.example:8080' }, body: '{"key":"eA=="}' });
    expect(listed.headers['access-control-allow-origin']).toBe('http://b.example:8080');
    const other = await request(m.base, '/v3/kv/range', { method: 'POST', headers: { origin: 'http://evil.example' }, body: '{"key":"eA=="}' });
    expect(other.status).toBe(200);
    expect(other.headers['access-control-allow-origin']).toBeUndefined();
    const preflight = await request(m.base, '/v3/kv/put', { method: 'OPTIONS', headers: { origin: 'http://a.example:80', 'access-control-request-method': 'POST' } });
    expect(preflight.status).toBe(200);
    expect(preflight.headers['access-control-allow-origin']).toBe('http://a.example:80');
  });

  it('with --host-whitelist, answers a plain-HTTP request naming another host 421 (DNS rebinding)', async () => {
    const m = await start(['--host-whitelist', 'localhost,127.0.0.1']);
    const ok = await request(m.base, '/v3/kv/range', { method: 'POST', headers: { host: `localhost:${m.port}` }, body: '{"key":"eA=="}' });
    expect(ok.status).toBe(200);
    const rebound = await request(m.base, '/v3/kv/range', { method: 'POST', headers: { host: `rebound.example:${m.port}` }, body: '{"key":"eA=="}' });
    expect(rebound.status).toBe(421);
    expect(rebound.body).toContain('etcd received your request, but the Host header was unrecognized.');
    expect(rebound.body).toContain('etcd --host-whitelist "rebound.example"');
    const admission = await request(m.base, '/meshkv/admission', { headers: { host: `rebound.example:${m.port}`, 'sec-fetch-site': 'same-origin' } });
    expect(admission.status).toBe(421);
    const upgrade = await request(m.base, '/meshkv/signal', { headers: { host: `rebound.example:${m.port}`, connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' } });
    expect(upgrade.status).toBe(421);
  });
});
