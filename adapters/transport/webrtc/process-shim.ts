// simple-peer's dependencies (readable-stream) read `process.nextTick` and `process.env`,
// which browsers lack. This module runs before simple-peer is loaded (it is imported first)
// and supplies the little they use; under Node it does nothing.

const g = globalThis as { process?: unknown };
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
