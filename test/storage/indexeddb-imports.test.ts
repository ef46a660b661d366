// The IndexedDB adapter goes into the browser bundle (meshkv/browser), which must never pull a
// Node module: walk its import graph and allow only idb and the project's runtime-agnostic code.
import { expect, it } from 'vitest';
import { importGraph } from '../helpers/import-graph.ts';

it('imports only idb and code from src/ and adapters/storage/', async () => {
  const { files, packages } = await importGraph('adapters/storage/indexeddb/index.ts');
  expect([...packages]).toEqual(['idb']);
  expect(files.filter((f) => !f.startsWith('src/') && !f.startsWith('adapters/storage/'))).toEqual([]);
  expect(files).toContain('adapters/storage/log-rules.ts');
});
