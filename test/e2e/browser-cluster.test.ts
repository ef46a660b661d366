// Browser tabs as cluster members (issue 5): tabs of one browser profile found a cluster
// through BroadcastChannel signaling, join it, elect a leader and replicate over WebRTC, persist
// to IndexedDB. Every scenario records its clients' operations and checks them for
// linearizability.

import { rm } from 'node:fs/promises';
import { expect, test, type Browser } from '@playwright/test';
import { History, openTab, openTabs, status, waitForCluster, waitForLeader, writeAndReadBack, type MemberOptions, type Tab } from './cluster-harness.ts';
import { launchBrowser, launchPersistent, newProfileDir, servePages, type PageServer } from './serve.ts';

let server: PageServer;
let url: string;
let browser: Browser;

test.beforeAll(async () => {
  server = await servePages();
  url = server.url('test/e2e/fixtures/cluster.html');
  browser = await launchBrowser();
});

test.afterAll(async () => {
  await browser?.close();
  await server?.close();
});

const options = (cluster: string, timings: MemberOptions['timings'] = {}): MemberOptions => ({ cluster, token: `${cluster}-token`, timings });

test('3 tabs elect a leader, replicate writes, and each reads them linearizably', async () => {
  const context = await browser.newContext();
  try {
    const tabs = await openTabs(context, url, options('three'), 3);
    expect(new Set(tabs.map((t) => t.id)).size).toBe(3);
    await waitForCluster(tabs);
    const founders = (await Promise.all(tabs.map(status))).filter((s) => s.founded);
    expect(founders).toHaveLength(1);

    const history = new History();
    await writeAndReadBack(history, tabs, 'k', 5);
    // Every tab reads every other tab's last write.
    for (const reader of tabs) for (const writer of tabs) expect(await history.get(reader, `k${writer.client}-4`)).toBe('v4');
    history.expectLinearizable();
  } finally {
    await context.close();
  }
});
