// The IndexedDB adapter goes into the browser bundle (meshkv/browser), which must never pull a
// Node module: walk its import graph and allow only idb and the project's runtime-agnostic code.
import { readFile } from 'node:fs/promises';
import { dirname, relative, resolve } from 'node:path';
import { expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../..');
const importPattern = /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+'([^']+)'|import\('([^']+)'\)|(?:^|\n)\s*import\s+'([^']+)'/g;

/** Every module reachable from `entry` by relative imports, and every bare specifier any of them imports. */
async function importGraph(entry: string): Promise<{ files: string[]; packages: Set<string> }> {
  const files = new Set<string>();
  const packages = new Set<string>();
  const pending = [resolve(root, entry)];
  while (pending.length > 0) {
    const file = pending.pop()!;
    if (files.has(file)) continue;
    files.add(file);
    for (const match of (await readFile(file, 'utf8')).matchAll(importPattern)) {
      const specifier = match[1] ?? match[2] ?? match[3];
      if (specifier.startsWith('.')) pending.push(resolve(dirname(file), specifier));
      else packages.add(specifier);
    }
  }
  return { files: [...files].map((f) => relative(root, f)).sort(), packages };
}

it('imports only idb and code from src/ and adapters/storage/', async () => {
  const { files, packages } = await importGraph('adapters/storage/indexeddb/index.ts');
  expect([...packages]).toEqual(['idb']);
  expect(files.filter((f) => !f.startsWith('src/') && !f.startsWith('adapters/storage/'))).toEqual([]);
  expect(files).toContain('adapters/storage/log-rules.ts');
});
