// The demo's build refuses Node modules, so a browser bundle can never pull one in by accident.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { build } from 'vite';
import { noNodeModules } from '../../demo/vite.config.ts';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function buildEntry(source: string): Promise<unknown> {
  const root = mkdtempSync(join(tmpdir(), 'meshkv-build-check-'));
  dirs.push(root);
  writeFileSync(join(root, 'index.html'), '<script type="module" src="./main.js"></script>');
  writeFileSync(join(root, 'main.js'), source);
  return build({ root, configFile: false, logLevel: 'silent', plugins: [noNodeModules()], build: { write: false } });
}

describe('demo build check', () => {
  it('fails the build on node: and bare built-in imports, naming the module', async () => {
    await expect(buildEntry("import { readFileSync } from 'node:fs'; console.log(readFileSync);")).rejects.toThrow('must not import the Node module "node:fs"');
    await expect(buildEntry("import * as os from 'os'; console.log(os);")).rejects.toThrow('must not import the Node module "os"');
  });

  it('lets browser code through', async () => {
    await expect(buildEntry("console.log(new TextEncoder().encode('x'));")).resolves.toBeDefined();
  });
});
