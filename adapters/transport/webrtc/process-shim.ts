// simple-peer's dependencies expect Node's globals: randombytes reads `global.crypto` when it
// loads, readable-stream reads `process.nextTick` and `process.env`. Browsers have neither, and
// a bundler with its default settings (Vite, esbuild, webpack 5) supplies neither, so this
// module supplies the little they use, before simple-peer loads (peer-link.ts imports it
// first). Apps need no `define: { global }` or shims of their own. Under Node it does nothing.
// It is the package's one module with a side effect (package.json's `sideEffects`).

const g = globalThis as { global?: unknown; process?: unknown };
g.global ??= globalThis;
if (g.process === undefined) {
  g.process = {
    env: {},
    browser: true,
    version: '',
    versions: {},
    nextTick(fn: (...args: unknown[]) => void, ...args: unknown[]) {
      queueMicrotask(() => fn(...args));
    },
  };
}
