// End-to-end tests of the demo in Debian's Chromium: `npm run test:e2e`. The spec builds the
// demo itself and serves demo/dist on a free 127.0.0.1 port.
import { defineConfig } from '@playwright/test';
import { chromiumArgs } from './vitest.browser.config.ts';

export default defineConfig({
  testDir: 'test/e2e',
  outputDir: 'test-results/e2e',
  timeout: 60_000,
  workers: 1,
  reporter: 'list',
  use: {
    browserName: 'chromium',
    launchOptions: { executablePath: '/usr/bin/chromium', args: chromiumArgs },
  },
});
