// The IndexedDB adapter against a real browser profile on disk: data a page saved (synced)
// is still there after the browser is closed and relaunched on the same profile, and after the
// browser process is killed with SIGKILL (nothing of the page or browser runs on the way out).
// The storage is never closed by the page, so its Web Lock must also be free after each end.

import { rm } from 'node:fs/promises';
import { expect, test } from '@playwright/test';
import type { BrowserContext, Page } from '@playwright/test';
import type { StoredSummary } from './fixtures/indexeddb-page.ts';
import { browserPid } from './browser-pid.ts';
import { launchPersistent, newProfileDir, servePages, type PageServer } from './serve.ts';

const member = { cluster: 'e2e-restart', memberId: 7 };
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

let server: PageServer;
let pageUrl: string;
let profile: string;

test.beforeAll(async () => {
  profile = await newProfileDir();
  server = await servePages();
  pageUrl = server.url('test/e2e/fixtures/indexeddb.html');
});

test.afterAll(async () => {
  await server?.close();
  if (profile) await rm(profile, { recursive: true, force: true });
});

async function launch(): Promise<{ context: BrowserContext; page: Page }> {
  const context = await launchPersistent(profile);
  const page = context.pages()[0] ?? (await context.newPage());
  await page.goto(pageUrl);
  await page.waitForFunction(() => window.meshkvE2e !== undefined);
  return { context, page };
}

function load(page: Page): Promise<StoredSummary> {
  return page.evaluate((m) => window.meshkvE2e!.load(m), member);
}

function append(page: Page, from: number, to: number, term: number): Promise<void> {
  return page.evaluate(([f, t, term]) => window.meshkvE2e!.append(f, t, term), [from, to, term] as const);
}

test('synced saves survive closing the browser and killing it, on the same profile', async () => {
  let { context, page } = await launch();
  expect(await load(page)).toEqual({ indexes: [], hardState: { term: 0, vote: 0, commit: 0 }, texts: [] });
  await append(page, 1, 30, 1);
  await append(page, 31, 40, 2);
  await context.close();

  ({ context, page } = await launch());
  const afterClose = await load(page);
  expect(afterClose.indexes).toEqual(range(1, 40));
  expect(afterClose.hardState).toEqual({ term: 2, vote: 1, commit: 40 });
  expect(afterClose.texts[39]).toBe('entry 40');
  await append(page, 41, 50, 3);

  const pid = await browserPid(profile);
  const closed = new Promise((resolve) => context.once('close', resolve));
  process.kill(pid, 'SIGKILL');
  await closed;

  ({ context, page } = await launch());
  const afterKill = await load(page);
  expect(afterKill.indexes).toEqual(range(1, 50));
  expect(afterKill.hardState).toEqual({ term: 3, vote: 1, commit: 50 });
  expect(afterKill.texts[49]).toBe('entry 50');
  await context.close();
});
