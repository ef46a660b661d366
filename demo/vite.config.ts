// The demo's build: `npm run demo:build` → demo/dist, `npm run demo:dev` serves it with reload.
// The bundle runs in browsers only, so resolving any Node module fails the build.

import { builtinModules } from 'node:module';
import { fileURLToPath } from 'node:url';
import { defineConfig, type Plugin } from 'vite';

const nodeBuiltins = new Set(builtinModules);

/** Fails the build when any module in the bundle imports a Node built-in, bare or `node:`. */
export function noNodeModules(): Plugin {
  return {
    name: 'meshkv-no-node-modules',
    enforce: 'pre',
    resolveId(id, importer) {
      const builtin = id.startsWith('node:') || nodeBuiltins.has(id) || nodeBuiltins.has(id.split('/')[0]);
      if (!builtin) return null;
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
