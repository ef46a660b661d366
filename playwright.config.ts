// End-to-end tests in Debian's Chromium (test/e2e): the demo, browser restarts on one profile,
// clusters of tabs, mixed clusters of tabs and Node processes. Run: npm run test:e2e.
// Playwright downloads nothing here.
import { defineConfig } from '@playwright/test';
import { chromiumArgs, chromiumPath } from './test/helpers/chromium.ts';

export default defineConfig({
  testDir: 'test/e2e',
  // Mixed clusters run the `meshkv` command from dist/, as installed.
  globalSetup: './test/helpers/build-dist.global-setup.ts',
  outputDir: 'test-results/e2e',
  timeout: 120_000,
  workers: 1,
  reporter: 'list',
  use: {
    browserName: 'chromium',
    launchOptions: { executablePath: chromiumPath, args: chromiumArgs },
  },
});
