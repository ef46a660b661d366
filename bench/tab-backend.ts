// A tab's JS heap and put/range latency with its store on the in-memory backend vs on IndexedDB
// (PrefetchedBackend: only the key index in memory), in Debian's Chromium, headless, one fresh
// page per case. Run: npx tsx bench/tab-backend.ts [--keys 10000,100000] [--value-bytes 1024].
// Heap: CDP Runtime.getHeapUsage (V8 heap + ArrayBuffer backing stores) after HeapProfiler.collectGarbage. A put's latency is its apply
// plus the backend commit; durable() on IndexedDB also waits for a strict (flushed) transaction.

import { launchBrowser, servePages } from '../test/e2e/serve.ts';

const arg = (name: string, fallback: string) => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : fallback);
const keyCounts = arg('--keys', '10000,100000').split(',').map(Number);
const valueBytes = Number(arg('--value-bytes', '1024'));
const latencySamples = 300;

async function main(): Promise<void> {
  const server = await servePages();
  const browser = await launchBrowser();
  const rows: string[] = [];
  try {
    for (const keys of keyCounts) {
      for (const kind of ['memory', 'indexeddb'] as const) {
        const context = await browser.newContext();
        const page = await context.newPage();
        await page.goto(server.url('bench/fixtures/tab-backend.html'));
        await page.waitForFunction(() => window.meshkvBench !== undefined);
        const cdp = await context.newCDPSession(page);
        const heap = async () => {
          await cdp.send('HeapProfiler.collectGarbage');
          // ArrayBuffer contents (the values) live outside the V8 heap: count them too.
          const usage = (await cdp.send('Runtime.getHeapUsage')) as { usedSize: number; backingStorageSize?: number };
          if (usage.backingStorageSize === undefined) throw new Error('this Chromium reports no backingStorageSize: ArrayBuffer memory would go uncounted');
          return usage.usedSize + usage.backingStorageSize;
        };
        const before = await heap();
        const fillMs = await page.evaluate(([k, n, v]) => window.meshkvBench!.fill(k, n, v), [kind, keys, valueBytes] as const);
        const after = await heap();
        const lat = await page.evaluate(([c, n, v]) => window.meshkvBench!.latency(c, n, v), [latencySamples, keys, valueBytes] as const);
        const heapMB = (after - before) / 2 ** 20;
        rows.push(
          `| ${kind} | ${keys.toLocaleString('en')} | ${heapMB.toFixed(1)} MB | ${Math.round((after - before) / keys)} B | ${Math.round(keys / (fillMs / 1000)).toLocaleString('en')} | ${lat.put.p50.toFixed(2)} / ${lat.put.p99.toFixed(2)} | ${lat.range.p50.toFixed(2)} / ${lat.range.p99.toFixed(2)} |`,
        );
        console.error(rows[rows.length - 1]);
        await context.close();
      }
    }
  } finally {
    await browser.close();
    await server.close();
  }
  console.log(`${valueBytes}-byte values, ${latencySamples} latency samples per case\n`);
  console.log('| backend | keys | JS heap + ArrayBuffers held by the store | per key | fill puts/s | put p50 / p99 ms | range (1 key) p50 / p99 ms |');
  console.log('|---|---:|---:|---:|---:|---|---|');
  for (const row of rows) console.log(row);
}

await main();
