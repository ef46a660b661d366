import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['test/e2e/**', 'test/**/*.browser.test.ts', 'node_modules/**'],
    testTimeout: 30_000,
  },
});
