// Writes per second and commit latency of a cluster of 3 browser tabs (IndexedDB persistence,
// WebRTC between tabs, BroadcastChannel signaling), in Debian's Chromium, headless.
// Run: npm run bench:browser [-- --seconds 5]. Prints a markdown table for docs/benchmarks.md.
// A put's latency is measured in the tab that issues it, from the call to its acknowledgement:
// the entry is durable on a majority (each member's IndexedDB transaction committed strict)
// and applied on the tab that issued it.

import type { Page } from '@playwright/test';
import { openTabs, waitForCluster, type Tab } from '../test/e2e/cluster-harness.ts';
import { launchBrowser, servePages } from '../test/e2e/serve.ts';

const seconds = Number(process.argv[process.argv.indexOf('--seconds') + 1]) || 5;

interface Case {
  label: string;
  /** Which tabs issue writes: the leader only, or every tab. */
  writers: 'leader' | 'all';
  concurrency: number;
}

const cases: Case[] = [
  { label: 'leader, 1 writer', writers: 'leader', concurrency: 1 },
  { label: 'leader, 16 writers', writers: 'leader', concurrency: 16 },
  { label: 'every tab, 16 writers each', writers: 'all', concurrency: 16 },
  { label: 'every tab, 64 writers each', writers: 'all', concurrency: 64 },
];

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function writeLoad(page: Page, durationMs: number, concurrency: number, prefix: string) {
  return page.evaluate(([d, c, p]) => window.meshkvTab!.writeLoad(d, c, p), [durationMs, concurrency, prefix] as const);
}

async function main(): Promise<void> {
  const server = await servePages();
  const browser = await launchBrowser();
  try {
    const context = await browser.newContext();
    const tabs: Tab[] = await openTabs(context, server.url('test/e2e/fixtures/cluster.html'), { cluster: 'bench', secret: 'bench' }, 3);
    const leader = await waitForCluster(tabs);
    // Warm up: the first IndexedDB transactions and data channel sends are slower.
    await writeLoad(leader.page, 1000, 4, 'warm');
    console.log(`3 tabs, ${seconds} s per case, 128-byte values\n`);
    console.log('| writers | puts/s | p50 ms | p99 ms | failed |');
    console.log('|---|---:|---:|---:|---:|');
    for (const c of cases) {
      const writers = c.writers === 'leader' ? [leader] : tabs;
      const results = await Promise.all(writers.map((t) => writeLoad(t.page, seconds * 1000, c.concurrency, `${c.label}/${t.client}/`)));
      const latencies = results.flatMap((r) => r.latenciesMs).sort((a, b) => a - b);
      const failures = results.reduce((n, r) => n + r.failures, 0);
      console.log(`| ${c.label} | ${Math.round(latencies.length / seconds)} | ${percentile(latencies, 50).toFixed(1)} | ${percentile(latencies, 99).toFixed(1)} | ${failures} |`);
    }
    await context.close();
  } finally {
    await browser.close();
    await server.close();
  }
}

await main();
