// The client port can also serve a built web app (the demo): files under one root for GET and
// HEAD, while the gateway keeps its own paths.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serve, type Served } from './harness.ts';

let s: Served;
let base: string;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'meshkv-static-'));
  mkdirSync(join(dir, 'site', 'assets'), { recursive: true });
  writeFileSync(join(dir, 'site', 'index.html'), '<!doctype html><title>demo</title>');
  writeFileSync(join(dir, 'site', 'assets', 'app.js'), 'console.log(1)');
  writeFileSync(join(dir, 'secret.txt'), 'outside the root');
  s = await serve({ staticRoot: join(dir, 'site') });
  base = `http://${s.endpoint}`;
});

afterAll(async () => {
  await s?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** A raw request: fetch would normalize `..` away before sending. */
function rawGet(path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: s.listener.port, path }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
}

describe('static files on the client port', () => {
  it('serves index.html at / and files with their content type', async () => {
    const index = await fetch(`${base}/`);
    expect(index.status).toBe(200);
    expect(index.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(await index.text()).toBe('<!doctype html><title>demo</title>');
    const js = await fetch(`${base}/assets/app.js`);
    expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(await js.text()).toBe('console.log(1)');
    const head = await fetch(`${base}/assets/app.js`, { method: 'HEAD' });
    expect(head.headers.get('content-length')).toBe('14');
  });

  it('answers 404 for missing files and never serves a file outside the root', async () => {
    expect((await fetch(`${base}/nope.js`)).status).toBe(404);
    for (const path of ['/../secret.txt', '/assets/../../secret.txt', '/%2e%2e/secret.txt']) {
      const res = await rawGet(path);
      expect(res.body).not.toContain('outside the root');
      expect([403, 404]).toContain(res.status);
    }
  });

  it('leaves the gateway its paths', async () => {
    const put = await fetch(`${base}/v3/kv/put`, { method: 'POST', body: JSON.stringify({ key: btoa('k'), value: btoa('v') }) });
    expect(put.status).toBe(200);
    const health = await fetch(`${base}/health`);
    expect(await health.json()).toEqual({ health: 'true', reason: '' });
    // npm start serves the demo beside the gateway: /version is etcd's answer, not a missing file.
    expect(await (await fetch(`${base}/version`)).json()).toEqual({ etcdserver: '3.4.23', etcdcluster: '3.4.0' });
    expect((await fetch(`${base}/v3/kv/range`)).status).toBe(405);
  });
});
