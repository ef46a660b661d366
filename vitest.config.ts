import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['test/e2e/**', 'test/**/*.browser.test.ts', 'node_modules/**'],
    testTimeout: 30_000,
    // Tests run the `meshkv` command from dist/, as installed.
    globalSetup: ['test/helpers/build-dist.global-setup.ts'],
  },
});
