// End-to-end tests that need a real browser restarted on the same profile (test/e2e).
// Run: npm run test:e2e. Debian's Chromium only: Playwright downloads nothing here.
import { defineConfig } from '@playwright/test';

export default defineConfig({
  testDir: 'test/e2e',
  testMatch: '**/*.test.ts',
  timeout: 120_000,
  workers: 1,
  reporter: 'list',
});
