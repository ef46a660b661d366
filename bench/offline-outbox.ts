// The offline outbox on reconnect (docs/offline.md): a tab of a 3-tab cluster (IndexedDB,
// WebRTC, BroadcastChannel) is cut off, queues N guarded writes, and is reconnected. Prints the
// time from the reconnect to the tab being online (hearing a leader), to the first committed
// entry, and the drain rate (entries/s from the first to the last commit), in Debian's Chromium.
// Run: npx tsx bench/offline-outbox.ts [--entries 500] [--rounds 3]
// The outbox is polled every 200 ms from here (a poll reads every entry in the tab under test).

import { launchPersistent, newProfileDir, servePages } from '../test/e2e/serve.ts';
import { waitFor } from '../test/helpers/wait.ts';
import type {} from '../test/e2e/fixtures/offline-page.ts';
import { rm } from 'node:fs/promises';
import type { Page } from '@playwright/test';
import { loadavg } from 'node:os';

const arg = (name: string, d: number) => Number(process.argv[process.argv.indexOf(`--${name}`) + 1]) || d;
const entries = arg('entries', 500);
const rounds = arg('rounds', 3);

async function main(): Promise<void> {
  const server = await servePages();
  const profile = await newProfileDir();
  const context = await launchPersistent(profile);
  try {
    const url = server.url('test/e2e/fixtures/offline.html');
    const pages: Page[] = [];
    for (let i = 0; i < 3; i++) {
      const page = await context.newPage();
      await page.goto(url);
      await page.waitForFunction(() => window.meshkvOffline !== undefined);
      await page.evaluate(() => window.meshkvOffline!.open({ cluster: 'bench-outbox', secret: 'bench', timings: { tabGraceMs: 600_000 } }));
      pages.push(page);
    }
    await waitFor('3 tabs online', async () => (await Promise.all(pages.map((p) => p.evaluate(() => window.meshkvOffline!.status())))).every((s) => s.connectivity === 'online' && s.voters.length === 3) || undefined, 30_000);
    const tab = pages[2];
    console.log(`3 tabs; one cut off queues ${entries} guarded puts (128-byte values, distinct keys), then reconnects; load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}\n`);
    console.log('| round | reconnect → online ms | reconnect → first commit ms | drain entries/s | all settled ms |');
    console.log('|---|---:|---:|---:|---:|');
    for (let round = 1; round <= rounds; round++) {
      await tab.evaluate(() => window.meshkvOffline!.setOffline(true));
      await waitFor('offline', async () => (await tab.evaluate(() => window.meshkvOffline!.connectivity())).state === 'offline' || undefined, 15_000);
      const before = (await tab.evaluate(() => window.meshkvOffline!.settledTimes())).length;
      await tab.evaluate(
        async ([n, r]) => {
          for (let i = 0; i < n; i++) await window.meshkvOffline!.queueGuarded(`b/${r}/${i}`, 'v'.repeat(128));
        },
        [entries, round] as const,
      );
      const reconnectAt = await tab.evaluate(() => window.meshkvOffline!.setOffline(false));
      const onlineAt = await tab.evaluate(() => window.meshkvOffline!.whenOnline());
      const times = await waitFor('drained', async () => {
        const t = await tab.evaluate(() => window.meshkvOffline!.settledTimes());
        return t.length === before + entries ? t.slice(before) : undefined;
      }, 300_000, 200);
      const first = Math.min(...times);
      const last = Math.max(...times);
      console.log(`| ${round} | ${onlineAt - reconnectAt} | ${first - reconnectAt} | ${Math.round(((entries - 1) * 1000) / Math.max(1, last - first))} | ${last - reconnectAt} |`);
    }
  } finally {
    await context.close();
    await server.close();
    await rm(profile, { recursive: true, force: true });
  }
}

await main();
