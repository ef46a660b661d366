// Tests that must run in a real browser (IndexedDB, WebRTC, BroadcastChannel, Web Locks):
// Debian's Chromium driven by Playwright. `npm run test:browser`; part of `npm test`.
import { defineConfig } from 'vitest/config';
import { playwright } from '@vitest/browser-playwright';
import { chromiumArgs, chromiumPath } from './test/helpers/chromium.ts';

export { chromiumArgs };

export default defineConfig({
  test: {
    include: ['test/**/*.browser.test.ts'],
    // A Node WebRTC member for the tab <-> Node tests in test/transport/webrtc.browser.test.ts.
    globalSetup: ['test/transport/webrtc-node-peer.global-setup.ts'],
    testTimeout: 30_000,
    browser: {
      enabled: true,
      headless: true,
      provider: playwright({ launchOptions: { executablePath: chromiumPath, args: chromiumArgs } }),
      instances: [{ browser: 'chromium' }],
    },
  },
});
