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
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
});

test.afterAll(async () => {
  await new Promise((resolve) => server?.close(resolve));
});

async function open(page: Page): Promise<void> {
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(err.message));
  await page.goto(baseUrl);
  await expect(page.locator('body[data-ready]'), `page errors: ${errors.join('; ')}`).toBeAttached({ timeout: 15_000 });
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
