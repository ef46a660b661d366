// Serving test pages to a real browser: Vite on a free 127.0.0.1 port (a secure context, which
// Web Locks need, and the same origin for every launch of a run), with the settings meshkv's
// browser code needs (none beyond the defaults: no `define: { global }`, no shims), and Debian's
// Chromium launched on a throwaway or persistent profile.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext } from '@playwright/test';
import { createServer, type Plugin, type ViteDevServer } from 'vite';
import { chromiumArgs, chromiumPath } from '../helpers/chromium.ts';
import { freePort } from '../helpers/processes.ts';

export interface PageServer {
  /** The URL of a file under the repository root, e.g. `test/e2e/fixtures/x.html`. */
  url(path: string): string;
  close(): Promise<void>;
}

/** `plugins`: extra Vite plugins (a test may serve generated modules through one). */
export async function servePages(plugins: Plugin[] = []): Promise<PageServer> {
  const port = await freePort();
  // Not node_modules/.vite: node_modules may be shared by several checkouts.
  const cacheDir = await mkdtemp(join(tmpdir(), 'meshkv-e2e-vite-'));
  let server: ViteDevServer;
  try {
    server = await createServer({
      configFile: false,
      root: process.cwd(),
      cacheDir,
      logLevel: 'error',
      plugins,
      // The package's own name, as the pages import it, is its sources here.
      resolve: { alias: [{ find: /^meshkv\/browser$/, replacement: join(process.cwd(), 'adapters/browser/index.ts') }] },
      // Scan only the page modules: readme.html imports a module that exists only where the
      // README test serves it.
      optimizeDeps: { entries: ['test/e2e/fixtures/*-page.ts'] },
      server: { host: '127.0.0.1', port, strictPort: true },
    });
    await server.listen();
  } catch (err) {
    await rm(cacheDir, { recursive: true, force: true });
    throw err;
  }
  return {
    url: (path) => `http://127.0.0.1:${port}/${path}`,
    async close() {
      await server.close();
      await rm(cacheDir, { recursive: true, force: true });
    },
  };
}

/** A fresh profile directory; remove it with `rm(dir, { recursive: true, force: true })`. */
export function newProfileDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'meshkv-e2e-profile-'));
}

/** Debian's Chromium on a persistent profile (data survives a relaunch on the same directory). */
export function launchPersistent(profile: string): Promise<BrowserContext> {
  return chromium.launchPersistentContext(profile, { executablePath: chromiumPath, args: chromiumArgs, headless: true });
}

/** Debian's Chromium with in-memory profiles (one per newContext()). */
export function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: chromiumPath, args: chromiumArgs, headless: true });
}
