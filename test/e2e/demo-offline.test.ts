// The demo's per-tab "go offline" switch and outbox panel, as `npm start` serves it: the real CLI
// on free ports with a temporary data directory of its own. It has its own member because the
// three-tab test in demo-tabs.test.ts lets tabs outvote the Node member and then closes them,
// which leaves that member without a quorum (run after it, this test waited for "online" in vain).
import { expect, test, type BrowserContext, type Page } from '@playwright/test';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ClusterView, MemberView } from '../../demo/src/cluster.ts';
import type { MeshkvHandle } from '../../demo/src/main.ts';
import { freePort, spawnCollecting, type Spawned } from '../helpers/processes.ts';
import { waitFor } from '../helpers/wait.ts';

/** What `npm start` runs; one process, so killing its PID ends the member. */
const startScript = fileURLToPath(new URL('../../bin/start.ts', import.meta.url));
let server: Spawned;
let dataDir: string;
let baseUrl: string;
let clientPort: number;

test.beforeAll(async () => {
  test.setTimeout(120_000);
  dataDir = await mkdtemp(join(tmpdir(), 'meshkv-e2e-demo-offline-'));
  clientPort = await freePort();
  const peerPort = await freePort();
  server = spawnCollecting(process.execPath, [
    '--import', 'tsx', startScript,
    '--data-dir', join(dataDir, 'member'),
    '--listen-client-urls', `http://127.0.0.1:${clientPort}`,
    '--initial-advertise-peer-urls', `http://127.0.0.1:${peerPort}`,
  ], { stdout: true });
  // npm start prints the URL to open, and builds the demo first when it is stale.
  const line = await waitFor('npm start to print the URL and elect itself', () => {
    if (server.child.exitCode !== null) throw new Error(`npm start exited with ${server.child.exitCode}:\n${server.logs.join('\n')}`);
    const ready = server.logs.some((l) => l.includes('"msg":"ready: the cluster has a leader"'));
    return ready && server.logs.find((l) => l.startsWith('meshkv: open '));
  }, 100_000);
  baseUrl = /open (http:\/\/\S+) in a browser/.exec(line)![1];
});

test.afterAll(async () => {
  if (server?.child.pid !== undefined && server.child.exitCode === null) process.kill(server.child.pid, 'SIGKILL');
  await server?.exited;
  await rm(dataDir, { recursive: true, force: true });
});

interface Tab {
  page: Page;
  errors: string[];
}

async function openTab(context: BrowserContext): Promise<Tab> {
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(err.message));
  page.on('console', (msg) => msg.type() === 'error' && errors.push(msg.text()));
  await page.goto(baseUrl);
  await expect(page.locator('body[data-ready]'), `page errors: ${errors.join('; ')}`).toBeAttached({ timeout: 30_000 });
  return { page, errors };
}

function status(tab: Tab): Promise<ClusterView> {
  return tab.page.evaluate(() => (window as unknown as { meshkv: MeshkvHandle }).meshkv.status());
}

function self(tab: Tab): Promise<MemberView> {
  return tab.page.evaluate(() => (window as unknown as { meshkv: MeshkvHandle }).meshkv.self()!);
}

/** The Node member's own answer (etcd's maintenance status over the JSON gateway): its id and its leader. */
async function nodeStatus(): Promise<{ id: number; leader: number }> {
  const res = await fetch(`http://127.0.0.1:${clientPort}/v3/maintenance/status`, { method: 'POST', body: '{}' });
  const body = (await res.json()) as { header: { member_id: string }; leader: string };
  return { id: Number(body.header.member_id), leader: Number(body.leader) };
}

/**
 * The leader every tab's own member follows, in one term, with exactly one member claiming
 * leadership among the tabs' views; `not` excludes an old leader.
 */
async function agreedLeader(tabs: Tab[], not?: number): Promise<{ id: number; term: number; name: string }> {
  let found: { id: number; term: number; name: string } | null = null;
  await expect.poll(async () => {
    const selves = await Promise.all(tabs.map(self));
    const views = await Promise.all(tabs.map(status));
    const leader = selves[0].leader;
    if (leader === 0 || leader === not) return `no new leader yet (${leader})`;
    if (!selves.every((s) => s.liveness === 'running' && s.leader === leader && s.term === selves[0].term)) return JSON.stringify(selves.map((s) => [s.name, s.role, s.term, s.leader]));
    for (const v of views) {
      const claiming = v.members.filter((m) => m.liveness === 'running' && m.role === 'leader' && m.term === selves[0].term);
      if (claiming.length !== 1 || claiming[0].id !== leader) return `a tab sees leaders ${JSON.stringify(claiming.map((m) => m.name))}`;
    }
    const m = views[0].members.find((x) => x.id === leader)!;
    found = { id: leader, term: selves[0].term, name: m.name };
    return 'agreed';
  }, { timeout: 20_000 }).toBe('agreed');
  return found!;
}

test('a tab goes offline with the switch and queues a guarded put on its stale view: the outbox shows the conflict with the current value', async ({ browser }) => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const a = await openTab(context);
  const b = await openTab(context);
  await expect(a.page.locator('[data-testid=connectivity]')).toHaveText('online', { timeout: 30_000 });
  await a.page.check('[data-testid=go-offline]');
  await expect(a.page.locator('[data-testid=connectivity]')).toHaveText('offline', { timeout: 15_000 });
  // Another tab writes the key; the offline tab's replica does not see it.
  await b.page.fill('input[name=key]', 'demo/offline');
  await b.page.fill('input[name=value]', 'from the online tab');
  await b.page.click('[data-op=put]');
  await expect(b.page.locator('[data-testid=kv-result]')).toContainText('demo/offline', { timeout: 15_000 });
  // The offline tab's put is guarded by what it read (the key absent). The outbox is the
  // origin's, so the online tab may drain it at once; either way it ends in conflict.
  await a.page.fill('input[name=outbox-key]', 'demo/offline');
  await a.page.fill('input[name=outbox-value]', 'from the offline tab');
  await a.page.click('[data-op=outbox-put]');
  await a.page.uncheck('[data-testid=go-offline]');
  const entry = a.page.locator('[data-testid=outbox] li').first();
  await expect(entry).toHaveAttribute('data-status', 'conflict', { timeout: 30_000 });
  await expect(entry).toContainText('now demo/offline=from the online tab');
  expect([...a.errors, ...b.errors]).toEqual([]);
  await context.close();
});
