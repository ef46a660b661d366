// The demo's build: `npm run demo:build` → demo/dist, `npm run demo:dev` serves it with reload.
// The bundle runs in browsers only, so resolving any Node module fails the build.

import { builtinModules } from 'node:module';
import { fileURLToPath } from 'node:url';
import { defineConfig, type Plugin } from 'vite';

const nodeBuiltins = new Set(builtinModules);

/**
 * Fails the build when any module in the bundle imports a Node built-in. A bare name that an
 * installed browser package of the same name provides is that package,
 * not the built-in, and goes through, as does one a package's own `browser` field maps to nothing
 * (readable-stream's `util`).
 */
export function noNodeModules(): Plugin {
  return {
    name: 'meshkv-no-node-modules',
    enforce: 'pre',
    async resolveId(id, importer, options) {
      const builtin = id.startsWith('node:') || nodeBuiltins.has(id) || nodeBuiltins.has(id.split('/')[0]);
      if (!builtin) return null;
      if (!id.startsWith('node:')) {
        const resolved = await this.resolve(id, importer, { ...options, skipSelf: true });
        // `__vite-browser-external` bare (no `:name`) is a package's browser field mapping the import to nothing.
        const providedInBrowser = resolved !== null && !resolved.external && (resolved.id.includes(`/node_modules/${id.split('/')[0]}/`) || resolved.id === '__vite-browser-external');
        if (providedInBrowser) return resolved;
      }
      this.error(`the demo bundle must not import the Node module "${id}" (imported by ${importer ?? 'the entry'})`);
    },
  };
}

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: './',
  // Inside demo/ (gitignored), not in node_modules, which worktrees may share.
  cacheDir: fileURLToPath(new URL('./.vite', import.meta.url)),
  plugins: [noNodeModules()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: true,
  },
  server: { host: '127.0.0.1' },
  preview: { host: '127.0.0.1' },
});
