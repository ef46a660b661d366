// A tab's store lives in IndexedDB (the backend), not in its snapshots: past 10,000 entries the
// tab's snapshot holds only the member table and a marker, and its log is cut there. Killing the
// whole browser (SIGKILL) and relaunching it on the same profile, then reloading the tab, brings
// the member back from the backend plus its log tail with every acknowledged write.

import { rm } from 'node:fs/promises';
import { expect, test } from '@playwright/test';
import type { BrowserContext } from '@playwright/test';
import { openTab, type Tab } from './cluster-harness.ts';
import { browserPid } from './browser-pid.ts';
import { launchPersistent, newProfileDir, servePages, type PageServer } from './serve.ts';
import { waitFor } from '../helpers/wait.ts';

let server: PageServer;
let url: string;

test.beforeAll(async () => {
  server = await servePages();
  url = server.url('test/e2e/fixtures/cluster.html');
});

test.afterAll(async () => {
  await server?.close();
});

const options = { cluster: 'tab-backend-restart', secret: 'e2e-secret' };
/** Past the member's default snapshotEntries (10,000), so the log is cut at a snapshot. */
const keys = 10_400;

function countAndValue(tab: Tab, prefix: string, i: number) {
  return tab.page.evaluate(([p, n]) => window.meshkvTab!.countAndValue(p, n), [prefix, i] as const);
}

test('a tab past its first snapshot restarts from IndexedDB and its log tail after a browser kill and a reload', async () => {
  const profile = await newProfileDir();
  let context: BrowserContext | null = null;
  try {
    context = await launchPersistent(profile);
    let tab = await openTab(context, url, options, 0);
    const id = tab.id;
    await waitFor('the tab to lead its cluster of one', async () => (await tab.page.evaluate(() => window.meshkvTab!.status())).leader === id, 30_000);
    await tab.page.evaluate(([n]) => window.meshkvTab!.fill('k/', n, 32), [keys] as const);
    // The snapshot keeps the store in the backend: a few hundred bytes, not 10,000 keys.
    await waitFor('the tab to take a snapshot', async () => (await tab.page.evaluate(() => window.meshkvTab!.snapshotBytes())) > 0, 30_000);
    expect(await tab.page.evaluate(() => window.meshkvTab!.snapshotBytes())).toBeLessThan(1_000);
    // The log tail after the snapshot.
    await tab.page.evaluate(() => window.meshkvTab!.fill('tail/', 50, 8));

    const pid = await browserPid(profile);
    const closed = new Promise((resolve) => context!.once('close', resolve));
    process.kill(pid, 'SIGKILL');
    await closed;

    context = await launchPersistent(profile);
    tab = await openTab(context, url, options, 0);
    expect(tab.id).toBe(id);
    expect(await countAndValue(tab, 'k/', 9_999)).toEqual({ count: keys, value: 'v9999' });
    expect(await countAndValue(tab, 'tail/', 49)).toEqual({ count: 50, value: 'v49' });
    await tab.page.evaluate(() => window.meshkvTab!.put('after/kill', 'yes'));

    await tab.page.reload();
    await tab.page.waitForFunction(() => window.meshkvTab !== undefined);
    await tab.page.evaluate((o) => window.meshkvTab!.open(o), options);
    await waitFor('the reloaded tab to lead again', async () => (await tab.page.evaluate(() => window.meshkvTab!.status())).leader === id, 30_000);
    expect(await tab.page.evaluate(() => window.meshkvTab!.get('after/kill'))).toMatchObject({ value: 'yes' });
    expect(await countAndValue(tab, 'k/', 0)).toEqual({ count: keys, value: 'v0' });
    expect(await countAndValue(tab, 'tail/', 0)).toEqual({ count: 50, value: 'v0' });
  } finally {
    await context?.close().catch(() => {});
    await rm(profile, { recursive: true, force: true });
  }
});
