// A tab on IndexedDB joins a Node member whose store is in LMDB and whose log was cut behind a
// snapshot (issue 18): the entries it lacks are gone, so it can only catch up through a
// snapshot streamed from the leader's backend into the tab's IndexedDB staging store. Reloaded,
// the tab has the data from IndexedDB alone.

import { expect, test, type Browser, type BrowserContext } from '@playwright/test';
import { connectGrpc } from '../../adapters/etcd-api/grpc-connection.ts';
import { openTab, status, type Tab } from './cluster-harness.ts';
import { admissionSecret, clusterToken, startNodes, type NodeCluster } from './mixed-harness.ts';
import { launchBrowser, servePages, type PageServer } from './serve.ts';

let server: PageServer;
let pageUrl: string;
let browser: Browser;
let context: BrowserContext | null = null;
let nodes: NodeCluster | null = null;

test.beforeAll(async () => {
  server = await servePages();
  pageUrl = server.url('test/e2e/fixtures/cluster.html');
  browser = await launchBrowser();
});

test.afterAll(async () => {
  await context?.close();
  await nodes?.procs.cleanup();
  await browser?.close();
  await server?.close();
});

const keysWritten = 1000;

const countAndLast = (tab: Tab) => tab.page.evaluate((last) => window.meshkvTab!.countAndValue('s/', last), keysWritten - 1);

test('a tab joining after the leader cut its log catches up through a streamed snapshot into IndexedDB, and keeps it across a reload', async () => {
  test.setTimeout(240_000);
  nodes = await startNodes(['solo'], new URL(pageUrl).origin, ['--snapshot-count', '200']);
  const client = connectGrpc([nodes.members[0].endpoint], { callTimeoutMs: 10_000, connectTimeoutMs: 2000 });
  try {
    // Enough entries for several snapshots; each cuts the log 200 entries behind it.
    let next = 0;
    const writer = async (): Promise<void> => {
      while (next < keysWritten) {
        const i = next++;
        await client.put(`s/${i}`).value(`v${i}`).exec();
      }
    };
    await Promise.all(Array.from({ length: 8 }, writer));
    await client.put(`s/${keysWritten - 1}`).value('last').exec();

    context = await browser.newContext();
    const options = { cluster: clusterToken, secret: admissionSecret, signaling: nodes.signalingUrl };
    const tab = await openTab(context, pageUrl, options, 0);
    // Read locally (serializable): the tab applied every write.
    await expect.poll(() => countAndLast(tab), { timeout: 90_000, intervals: [250] }).toEqual({ count: keysWritten, value: 'last' });
    const streams = await tab.page.evaluate(() => window.meshkvTab!.snapshotStreams());
    expect(streams.received).toBeGreaterThanOrEqual(1);
    expect(streams.receiveFailed).toBe(0);
    expect(nodes.members[0].logs.some((l) => l.includes('cannot take a streamed snapshot'))).toBe(false);

    // Reloaded: the member reopens from IndexedDB; the data is there before any snapshot arrives.
    await tab.page.reload();
    await tab.page.waitForFunction(() => window.meshkvTab !== undefined);
    const reopened = await tab.page.evaluate((o) => window.meshkvTab!.open(o), options);
    expect(reopened.id).toBe(tab.id);
    expect(await countAndLast(tab)).toEqual({ count: keysWritten, value: 'last' });
    expect(await tab.page.evaluate(() => window.meshkvTab!.snapshotStreams())).toMatchObject({ received: 0 });
    // And it goes on replicating from where it was.
    await expect.poll(async () => (await status(tab)).connectedPeers, { timeout: 30_000 }).toContain(nodes.ids[0]);
    await client.put('s/after-reload').value('yes').exec();
    await expect.poll(() => tab.page.evaluate(() => window.meshkvTab!.localKeys('s/after')), { timeout: 30_000 }).toEqual({ 's/after-reload': 'yes' });
  } finally {
    client.close();
  }
});
