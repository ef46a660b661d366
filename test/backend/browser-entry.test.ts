// lmdb is a Node addon: it must never be reachable from the browser entry or the core.
import { expect, it } from 'vitest';
import { importGraph } from '../helpers/import-graph.ts';

it('the browser entry (meshkv/browser) reaches neither lmdb nor the Node backend', async () => {
  const { files, packages } = await importGraph('adapters/browser/index.ts');
  expect(files).toContain('src/backend/memory.ts');
  expect([...packages].filter((p) => p.startsWith('lmdb') || p.startsWith('node:'))).toEqual([]);
  expect(files.filter((f) => f.startsWith('adapters/backend/'))).toEqual([]);
});
