// The browser example in README.md, run as written: the snippet is taken from the README and
// served as a module to three tabs, which must form a cluster and print what the example says.

import { readFile } from 'node:fs/promises';
import { expect, test } from '@playwright/test';
import { waitFor } from '../helpers/wait.ts';
import { launchBrowser, servePages } from './serve.ts';

async function readmeExample(): Promise<string> {
  const readme = await readFile('README.md', 'utf8');
  const match = /```ts\n(import \{ openBrowserMember \} from 'meshkv\/browser';\n[\s\S]*?)```/.exec(readme);
  if (!match) throw new Error("README.md has no ```ts block starting with the meshkv/browser import");
  return match[1];
}

test('the README example forms a cluster of three tabs and prints what it says', async () => {
  const example = await readmeExample();
  expect(example.trim().split('\n').length).toBeLessThanOrEqual(10);
  const server = await servePages([
    {
      name: 'readme-example',
      resolveId: (id) => (id === 'virtual:readme-example' ? '\0readme-example.ts' : null),
      load: (id) => (id === '\0readme-example.ts' ? example : null),
    },
  ]);
  const browser = await launchBrowser();
  try {
    const context = await browser.newContext();
    const logs: string[][] = [[], [], []];
    for (let i = 0; i < 3; i++) {
      const page = await context.newPage();
      page.on('console', (m) => logs[i].push(m.text()));
      page.on('pageerror', (e) => logs[i].push(`error: ${e.message}`));
      await page.goto(server.url('test/e2e/fixtures/readme.html'));
    }
    await waitFor('every tab to print the value it read and a change it watched', () => logs.every((l) => l.includes('buy milk') && l.includes('changed todo/1')), 30_000).catch((err: Error) => {
      throw new Error(`${err.message}; the tabs printed ${JSON.stringify(logs)}`);
    });
    await waitFor('one leader with three connected members', () => logs.some((l) => l.some((line) => /^leader, leader \d+, 2 peers$/.test(line))), 10_000);
    expect(logs.flat().filter((l) => l.startsWith('error'))).toEqual([]);
  } finally {
    await browser.close();
    await server.close();
  }
});
