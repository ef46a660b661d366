// The demo as a visitor uses it: one leader appears, a put shows up in the watch stream, the
// leader is isolated with the fault controls and another takes over, and after healing the old
// leader follows the new one. Screenshots at desktop and phone width are saved as artifacts.

import { expect, test, type Page } from '@playwright/test';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { build } from 'vite';
import { createStaticHandler } from '../../adapters/etcd-api/static-files.ts';
import type { ClusterView } from '../../demo/src/cluster.ts';
import type { MeshkvHandle } from '../../demo/src/main.ts';

const demoDir = fileURLToPath(new URL('../../demo/', import.meta.url));
let server: http.Server;
let baseUrl: string;

test.beforeAll(async () => {
  await build({ configFile: `${demoDir}vite.config.ts`, logLevel: 'warn' });
  const serveStatic = createStaticHandler(`${demoDir}dist`);
  server = http.createServer((req, res) => {
    if (!serveStatic(req, res)) res.writeHead(405).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  // The in-page cluster, named explicitly (a page no meshkv member served would pick it anyway).
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/?mode=in-page`;
});

test.afterAll(async () => {
  await new Promise((resolve) => server?.close(resolve));
});

/** Uncaught errors and console errors of the page under test: each test ends expecting none. */
let pageErrors: string[] = [];

test.afterEach(() => {
  expect(pageErrors, 'errors in the page').toEqual([]);
});

async function open(page: Page): Promise<void> {
  pageErrors = [];
  page.on('pageerror', (err) => pageErrors.push(err.message));
  page.on('console', (msg) => msg.type() === 'error' && pageErrors.push(msg.text()));
  await page.goto(baseUrl);
  await expect(page.locator('body[data-ready]'), `page errors: ${pageErrors.join('; ')}`).toBeAttached({ timeout: 15_000 });
}

function status(page: Page): Promise<ClusterView> {
  return page.evaluate(() => (window as unknown as { meshkv: MeshkvHandle }).meshkv.status());
}

/** The one leader every running member (but `cutOff`, if given) agrees on, once there is one. */
async function agreedLeader(page: Page, cutOff?: number): Promise<{ id: number; name: string; term: number }> {
  let found: { id: number; name: string; term: number } | null = null;
  await expect.poll(async () => {
    const view = await status(page);
    const running = view.members.filter((m) => m.liveness === 'running' && m.id !== cutOff);
    const leaders = running.filter((m) => m.role === 'leader');
    if (leaders.length !== 1 || running.some((m) => m.leader !== leaders[0].id || m.term !== leaders[0].term)) return false;
    found = { id: leaders[0].id, name: leaders[0].name, term: leaders[0].term };
    return true;
  }, { timeout: 15_000 }).toBe(true);
  return found!;
}

test('one leader; a put reaches the watch; isolating the leader elects another; healing makes it follow', async ({ page }, testInfo) => {
  await page.setViewportSize({ width: 1280, height: 900 });
  await open(page);

  const first = await agreedLeader(page);
  await expect(page.getByTestId('leader')).toHaveText(`leader ${first.name}`);
  await expect(page.locator('.card.member[data-role=leader]')).toHaveCount(1);
  await expect(page.locator(`.node[data-member="${first.id}"]`)).toHaveClass(/is-leader/);

  await page.fill('input[name=key]', 'e2e/greeting');
  await page.fill('input[name=value]', 'hello from the test');
  await page.click('[data-op=put]');
  const row = page.getByTestId('watch').locator('li[data-key="e2e/greeting"]');
  await expect(row).toContainText('PUT');
  await expect(row).toContainText('"hello from the test"');
  const revision = Number(await row.getAttribute('data-revision'));
  expect(revision).toBeGreaterThan(1);
  await expect(page.getByTestId('kv-result')).toContainText(`→ revision ${revision}`);
  expect(await page.evaluate(() => (window as unknown as { meshkv: MeshkvHandle }).meshkv.client.get('e2e/greeting').string())).toBe('hello from the test');

  await page.click(`.card.member[data-member="${first.id}"] [data-action=isolate]`);
  await expect(page.locator(`.card.member[data-member="${first.id}"] .peer.up`)).toHaveCount(0);
  const second = await agreedLeader(page, first.id);
  expect(second.id).not.toBe(first.id);
  expect(second.term).toBeGreaterThan(first.term);
  await expect(page.getByTestId('leader')).toHaveText(`leader ${second.name}`);
  await expect(page.locator('.timeline')).toContainText(`${second.name} is leader of term ${second.term}`);

  await page.click(`.card.member[data-member="${first.id}"] [data-action=heal]`);
  const oldCard = page.locator(`.card.member[data-member="${first.id}"]`);
  await expect(oldCard).toHaveAttribute('data-role', 'follower', { timeout: 15_000 });
  await expect(oldCard.locator('.follows')).toHaveText(`leader ${second.name}`, { timeout: 15_000 });
  const healed = await agreedLeader(page);
  expect(healed.id).toBe(second.id);
  // The old leader caught up: it applied the put made before it was cut off.
  await expect.poll(async () => (await status(page)).members.find((m) => m.id === first.id)!.revision, { timeout: 10_000 }).toBeGreaterThanOrEqual(revision);

  await page.screenshot({ path: testInfo.outputPath('demo-desktop.png'), fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(300);
  await page.screenshot({ path: testInfo.outputPath('demo-phone.png'), fullPage: true });
  const phoneWidth = await page.evaluate(() => document.documentElement.scrollWidth);
  expect(phoneWidth, 'nothing overflows the phone-width viewport').toBeLessThanOrEqual(390);
});

test('a leased key vanishes when its lease expires', async ({ page }) => {
  await open(page);
  await agreedLeader(page);
  await page.fill('input[name=ttl]', '3');
  await page.click('[data-op=grant]');
  await expect(page.getByTestId('lease')).toHaveAttribute('data-state', 'alive');
  await expect(page.getByTestId('lease-countdown')).toContainText('s left');
  await page.fill('input[name=key]', 'e2e/session');
  await page.fill('input[name=value]', 'short-lived');
  await expect(page.locator('input[name=with-lease]')).toBeChecked();
  await page.click('[data-op=put]');
  await expect(page.getByTestId('kv-result')).toContainText('on lease');
  await expect(page.getByTestId('lease').locator('.chip')).toHaveText(['e2e/session']);

  const deleted = page.getByTestId('watch').locator('li.w-delete[data-key="e2e/session"]');
  await expect(deleted).toContainText('was "short-lived"', { timeout: 10_000 });
  await expect(page.getByTestId('lease')).toHaveAttribute('data-state', 'expired');
  await expect(page.locator('.timeline')).toContainText('expired: e2e/session deleted');
  expect(await page.evaluate(() => (window as unknown as { meshkv: MeshkvHandle }).meshkv.client.get('e2e/session').string())).toBeNull();
});

test('list a prefix, compare-and-swap, compact', async ({ page }) => {
  await open(page);
  await agreedLeader(page);
  const result = page.getByTestId('kv-result');
  for (const [key, value] of [['cfg/a', '1'], ['cfg/b', '2'], ['other', '3']]) {
    await page.fill('input[name=key]', key);
    await page.fill('input[name=value]', value);
    await page.click('[data-op=put]');
    await expect(result).toContainText(`put ${key} = "${value}"`);
  }
  await page.fill('input[name=prefix]', 'cfg/');
  await page.click('[data-op=list]');
  await expect(result).toContainText('2 keys under "cfg/"');
  await expect(result.locator('li')).toHaveText([/cfg\/a = "1"/, /cfg\/b = "2"/]);

  await page.fill('input[name=cas-key]', 'cfg/a');
  await page.fill('input[name=cas-expected]', '9');
  await page.fill('input[name=cas-new]', '10');
  await page.click('[data-op=cas]');
  await expect(result).toContainText('cfg/a is "1", not "9": nothing changed');
  await page.fill('input[name=cas-expected]', '1');
  await page.click('[data-op=cas]');
  await expect(result).toContainText('cfg/a was "1": swapped to "10"');
  const swapped = page.getByTestId('watch').locator('li[data-key="cfg/a"]').first();
  await expect(swapped).toContainText('"10"');

  const revision = await page.getByTestId('revision').textContent();
  await page.click('[data-op=compact]');
  await expect(result).toContainText(`compacted history below revision ${revision}`);
  await expect(page.getByTestId('compact-revision')).toHaveText(revision!);
});

test('cut a link by clicking it; crash, restart, pause and resume a member from its card', async ({ page }) => {
  await open(page);
  const leader = await agreedLeader(page);
  const view = await status(page);
  const [a, b] = view.members.map((m) => m.id).sort((x, y) => x - y);
  const names = new Map(view.members.map((m) => [m.id, m.name]));

  const edge = page.locator(`[data-link="${a}-${b}"]`);
  await edge.click();
  await expect(page.locator('.timeline')).toContainText(`link ${names.get(a)}–${names.get(b)} cut`);
  expect((await status(page)).cutLinks).toEqual([[a, b]]);
  await expect(page.locator(`.card.member[data-member="${a}"] .peer.down`)).toHaveText(names.get(b)!);
  await edge.click();
  await expect(page.locator('.timeline')).toContainText(`link ${names.get(a)}–${names.get(b)} healed`);
  expect((await status(page)).cutLinks).toEqual([]);

  const follower = view.members.find((m) => m.id !== leader.id)!;
  const card = page.locator(`.card.member[data-member="${follower.id}"]`);
  await card.locator('[data-action=crash]').click();
  await expect(card).toHaveAttribute('data-liveness', 'crashed');
  await expect(page.locator(`.node[data-member="${follower.id}"] .role-text`)).toHaveText('crashed');
  // Two of three members still commit; the request goes through a running member.
  await page.selectOption('select[name=via]', String(leader.id));
  await page.fill('input[name=key]', 'e2e/while-crashed');
  await page.press('input[name=value]', 'Enter');
  const row = page.getByTestId('watch').locator('li[data-key="e2e/while-crashed"]');
  await expect(row).toContainText('PUT');
  const revision = Number(await row.getAttribute('data-revision'));
  await card.locator('[data-action=restart]').click();
  await expect(card).toHaveAttribute('data-liveness', 'running');
  await expect(card.locator('.stats dd').nth(3)).toHaveText(String(revision), { timeout: 10_000 });

  await card.locator('[data-action=pause]').click();
  await expect(card).toHaveAttribute('data-liveness', 'paused');
  await expect(page.locator('.timeline')).toContainText(`${follower.name} paused`);
  await card.locator('[data-action=resume]').click();
  await expect(card).toHaveAttribute('data-liveness', 'running');
  await expect(page.locator('.timeline')).toContainText(`${follower.name} resumed`);
  await agreedLeader(page);
});
