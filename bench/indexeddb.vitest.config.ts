// The IndexedDB benchmark runs in Chromium through vitest's browser mode, apart from the tests.
// Run: npm run bench:indexeddb   (BENCH_SECONDS=3 per case by default)
import { defineConfig } from 'vitest/config';
import browser from '../vitest.browser.config.ts';

export default defineConfig({
  ...browser,
  define: { ...browser.define, __BENCH_SECONDS__: JSON.stringify(Number(process.env.BENCH_SECONDS ?? 3)) },
  test: { ...browser.test, include: ['bench/indexeddb.browser-bench.ts'], testTimeout: 300_000 },
});
