// The demo as `npm start` serves it: the real CLI (bin/start.ts) on free ports with a temporary
// data directory, and three tabs that each become a member of its cluster (learners at first, then
// voters once the page's switch lets tabs outvote the Node member). Through the pages:
// exactly one leader across the tabs; a put in one tab shows in the others' watch streams; the
// leader is cut off with the UI's controls and another is elected; after healing the old
// leader follows. Screenshots at desktop and phone width are saved as artifacts.

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
  dataDir = await mkdtemp(join(tmpdir(), 'meshkv-e2e-demo-tabs-'));
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

// First: the three-tab test below lets tabs outvote the Node member and then closes them,
// which leaves that member without a quorum for any test after it.
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

test('three tabs on npm start: one leader, a put in every watch, the leader cut off and healed', async ({ browser }, testInfo) => {
  test.setTimeout(150_000);
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const tabs: Tab[] = [];
  for (let i = 0; i < 3; i++) tabs.push(await openTab(context));
  const [a] = tabs;
  const node = await nodeStatus();

  // Every tab is a member; the Node member that served the page is one too.
  await expect.poll(async () => (await status(a)).members.map((m) => `${m.kind}:${m.role}`).sort().join(' '), { timeout: 30_000 })
    .toMatch(/^node:\w+ tab:\w+ tab:\w+ tab:\w+$/);
  for (const t of tabs) await expect(t.page.getByTestId('mode')).toContainText('tab member');
  // By default tabs are learners beside a Node member (closing them must never cost its
  // quorum); the page says so, and its switch lets them outvote it, with the warning shown.
  await expect.poll(async () => (await status(a)).members.filter((m) => m.kind === 'tab').map((m) => m.role).join(' '), { timeout: 30_000 }).toBe('learner learner learner');
  await expect(a.page.getByTestId('learner-note')).toBeVisible();
  await a.page.getByTestId('tabs-may-outvote').check();
  for (const t of tabs) await expect(t.page.getByTestId('outvote-warning')).toContainText('can leave the Node members without a quorum', { timeout: 20_000 });
  await expect.poll(async () => (await status(a)).members.some((m) => m.role === 'learner'), { timeout: 30_000 }).toBe(false);
  const first = await agreedLeader(tabs);
  for (const t of tabs) await expect(t.page.getByTestId('leader')).toHaveText(`leader ${first.name}`);

  // A put in one tab's KV panel reaches the watch streams of the others.
  await a.page.fill('input[name=key]', 'demo/greeting');
  await a.page.fill('input[name=value]', 'hello, tabs');
  await a.page.click('[data-op=put]');
  for (const t of tabs) {
    const row = t.page.getByTestId('watch').locator('li[data-key="demo/greeting"]');
    await expect(row).toContainText('PUT');
    await expect(row).toContainText('"hello, tabs"');
  }

  // The Node member sends no telemetry, but its card shows its own indexes (its Status over HTTP).
  await expect
    .poll(async () => {
      const m = (await status(a)).members.find((x) => x.kind === 'node');
      return m !== undefined && m.indexesKnown === true && m.commit > 0 && m.revision > 1;
    }, { timeout: 10_000 })
    .toBe(true);

  // Cut the leader off with the page's controls and heal, twice: the first leader is
  // usually the Node member (it founded the cluster), the second a tab.
  const second = await cutOffAndHeal(tabs, first, node.id, 'heal-all');
  await cutOffAndHeal(tabs, second, node.id, 'card');

  // A tab cut off from everyone has no quorum: after three election timeouts its page says so,
  // naming the voters it misses; healed, the banner goes.
  const aId = (await self(a)).id;
  const own = a.page.locator(`.card.member[data-member="${aId}"]`);
  await own.locator('[data-action=isolate]').click();
  await expect(a.page.getByTestId('quorum-banner')).toContainText(/This member has no quorum\. no quorum for \d+ s: 1 of 4 voters reachable, 3 needed; missing: .*Node member/, { timeout: 20_000 });
  await own.locator('[data-action=heal]').click();
  await expect(a.page.getByTestId('quorum-banner')).toHaveCount(0, { timeout: 20_000 });
  await agreedLeader(tabs);

  // Faults on another tab's member, from this tab's cards: the command runs in that tab. A
  // follower, so that the write below need not wait out an election.
  let target: Tab | undefined;
  for (const t of await tabsOtherThan(tabs, (await self(a)).id)) if ((await self(t)).role === 'follower') target ??= t;
  if (!target) throw new Error('no follower tab besides the first');
  const targetId = (await self(target)).id;
  const card = a.page.locator(`.card.member[data-member="${targetId}"]`);
  await card.locator('[data-action=pause]').click();
  await expect.poll(async () => (await self(target!)).liveness).toBe('paused');
  await expect(card).toHaveAttribute('data-liveness', 'paused');
  await card.locator('[data-action=resume]').click();
  await expect.poll(async () => (await self(target!)).liveness).toBe('running');

  await card.locator('[data-action=crash]').click();
  await expect(card).toHaveAttribute('data-liveness', 'crashed');
  await a.page.fill('input[name=key]', 'demo/while-crashed');
  await a.page.fill('input[name=value]', 'written while a tab was down');
  await a.page.click('[data-op=put]');
  await expect(a.page.getByTestId('watch').locator('li[data-key="demo/while-crashed"]')).toContainText('PUT');
  await card.locator('[data-action=restart]').click();
  // The same member comes back from IndexedDB and catches up.
  await expect.poll(async () => { const s = await self(target!); return `${s.id} ${s.liveness}`; }, { timeout: 20_000 }).toBe(`${targetId} running`);
  await expect.poll(() => target!.page.evaluate(async () => (await (window as unknown as { meshkv: MeshkvHandle }).meshkv.client.get('demo/while-crashed').string()) ?? null), { timeout: 20_000 })
    .toBe('written while a tab was down');
  await agreedLeader(tabs);

  await a.page.screenshot({ path: testInfo.outputPath('demo-tabs-desktop.png'), fullPage: true });
  await a.page.setViewportSize({ width: 390, height: 844 });
  await expect.poll(() => a.page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
  await a.page.screenshot({ path: testInfo.outputPath('demo-tabs-phone.png'), fullPage: true });

  // Remove: the tab's member leaves the cluster (the leader takes it out of the configuration).
  await a.page.setViewportSize({ width: 1280, height: 900 });
  await card.locator('[data-action=remove]').click();
  await expect.poll(async () => (await status(a)).members.map((m) => m.id).includes(targetId), { timeout: 20_000 }).toBe(false);
  await expect.poll(async () => (await self(target!)).name).toMatch(/\(left\)$/);
  await agreedLeader(tabs.filter((t) => t !== target));

  for (const t of tabs) expect(t.errors, 'errors in a tab').toEqual([]);
  await context.close();
});

/**
 * Cuts `leader` off with the first tab's controls — a tab leader isolated from its card, a Node
 * leader (which runs no page) by cutting each of its links in the picture — sees another leader
 * elected, heals (the "Heal all links" button or the card's "Heal links") and sees the old
 * leader follow the new one: a tab by its own status, the Node member by its own API.
 */
async function cutOffAndHeal(tabs: Tab[], leader: { id: number; term: number }, nodeId: number, healWith: 'heal-all' | 'card'): Promise<{ id: number; term: number; name: string }> {
  const a = tabs[0];
  const view = await status(a);
  if (leader.id === nodeId) {
    for (const m of view.members.filter((x) => x.id !== leader.id)) {
      // From the keyboard: a vertical link's line has an empty bounding box, which Playwright will not click.
      await a.page.locator(`[data-link="${Math.min(m.id, leader.id)}-${Math.max(m.id, leader.id)}"]`).press('Enter');
    }
  } else {
    await a.page.locator(`.card.member[data-member="${leader.id}"] [data-action=isolate]`).click();
  }
  await expect.poll(async () => (await status(a)).cutLinks.length, { timeout: 5000 }).toBe(view.members.length - 1);
  const next = await agreedLeader(leader.id === nodeId ? tabs : await tabsOtherThan(tabs, leader.id), leader.id);
  expect(next.term).toBeGreaterThan(leader.term);
  await expect(a.page.locator('.timeline')).toContainText(`${next.name} is leader of term ${next.term}`);

  if (healWith === 'heal-all') await a.page.click('[data-action=heal-all]');
  else await a.page.locator(`.card.member[data-member="${leader.id}"] [data-action=heal]`).click();
  await expect.poll(async () => (await status(a)).cutLinks.length, { timeout: 5000 }).toBe(0);
  if (leader.id === nodeId) {
    await expect.poll(async () => (await nodeStatus()).leader, { timeout: 20_000 }).toBe(next.id);
  } else {
    const old = await tabOf(tabs, leader.id);
    await expect.poll(async () => { const s = await self(old); return `${s.role} ${s.leader}`; }, { timeout: 20_000 }).toBe(`follower ${next.id}`);
  }
  await agreedLeader(tabs);
  await expect(a.page.locator(`.card.member[data-member="${leader.id}"]`)).toHaveAttribute('data-role', 'follower');
  return next;
}

/** The tab whose own member is `id`. */
async function tabOf(tabs: Tab[], id: number): Promise<Tab> {
  for (const t of tabs) if ((await self(t)).id === id) return t;
  throw new Error(`no tab runs member ${id}`);
}

/** The tabs whose own member is not `id`. */
async function tabsOtherThan(tabs: Tab[], id: number): Promise<Tab[]> {
  const ids = await Promise.all(tabs.map(async (t) => (await self(t)).id));
  return tabs.filter((_, i) => ids[i] !== id);
}

