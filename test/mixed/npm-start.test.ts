// `npm start`: the demo is built when missing, served on the member's client port with the
// etcd gateway and the signaling endpoint, and the URL to open is printed.

import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { freePort, spawnCollecting, type Spawned } from '../helpers/processes.ts';
import { waitFor } from '../helpers/wait.ts';

const startScript = new URL('../../bin/start.ts', import.meta.url).pathname;
const tsx = new URL('../../node_modules/.bin/tsx', import.meta.url).pathname;

let spawned: Spawned | null = null;
let dataDir = '';
afterEach(async () => {
  if (spawned?.child.pid !== undefined && spawned.child.exitCode === null) {
    process.kill(spawned.child.pid, 'SIGTERM');
    await spawned.exited;
  }
  spawned = null;
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

describe('npm start', () => {
  it('serves the built demo, the etcd gateway and signaling on one port, and prints the URL', async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'meshkv-start-'));
    const port = await freePort();
    spawned = spawnCollecting(tsx, [startScript, '--listen-client-urls', `http://127.0.0.1:${port}`, '--data-dir', dataDir], { stdout: true });
    const p = spawned;
    const url = `http://127.0.0.1:${port}/`;
    // The build (when demo/dist is stale) takes seconds; a loaded machine, more.
    await waitFor('the URL to open', () => p.logs.includes(`meshkv: open ${url} in a browser`) || p.child.exitCode !== null, 120_000);
    expect(p.child.exitCode, p.logs.join('\n')).toBeNull();
    expect(p.logs.some((l) => /^meshkv: (demo\/dist is up to date|building the demo \(.+\) \.\.\.)$/.test(l))).toBe(true);

    const page = await fetch(url);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toContain('text/html');
    expect(await page.text()).toContain('<script type="module"');
    const health = await fetch(`${url}health`);
    expect(await health.json()).toMatchObject({ health: 'true' });

    // A page of this origin learns the admission secret the member generated (same-origin
    // requests only, as a browser marks them) and joins signaling with it.
    const admission = await fetch(`${url}meshkv/admission`, { headers: { 'sec-fetch-site': 'same-origin' } });
    const { cluster, secret } = (await admission.json()) as { cluster: string; secret: string };
    expect(cluster).toBe('meshkv-cluster');
    expect(secret).toBe(readFileSync(join(dataDir, 'admission-secret'), 'utf8').trim());
    expect((await fetch(`${url}meshkv/admission`, { headers: { 'sec-fetch-site': 'cross-site', origin: 'http://evil.example' } })).status).toBe(403);
    const joined = await new Promise<unknown>((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/meshkv/signal`, { origin: `http://127.0.0.1:${port}` });
      ws.on('open', () => ws.send(JSON.stringify({ type: 'join', cluster, secret, id: 42, key: 'npm-start-member-key' })));
      ws.on('message', (data) => {
        ws.close();
        resolve(JSON.parse(data.toString()));
      });
      ws.on('error', reject);
    });
    expect(joined).toMatchObject({ type: 'joined' });
  }, 150_000);
});
