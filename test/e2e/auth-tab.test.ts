// etcd's auth in a browser tab: a Node member (a real `meshkv` process) with auth enabled through
// etcdctl, and a tab in Debian's Chromium that joins its cluster over signaling and WebRTC as a
// learner. The page's meshkv Client, given a user and password, authenticates (the password
// checked by the tab's own member through WebCrypto) and is held to that user's roles: its
// writes and reads under the granted prefix work, a forbidden key gets etcd's "permission
// denied", and a wrong password etcd's "authentication failed".

import { expect, test, type Browser, type BrowserContext } from '@playwright/test';
import { etcdctl } from '../etcd-api/harness.ts';
import { openTab, status, type Tab } from './cluster-harness.ts';
import { admissionSecret, clusterToken, startNodes, type NodeCluster } from './mixed-harness.ts';
import { launchBrowser, servePages, type PageServer } from './serve.ts';

let server: PageServer;
let pageUrl: string;
let browser: Browser;
const contexts: BrowserContext[] = [];
let nodes: NodeCluster | null = null;

test.beforeAll(async () => {
  server = await servePages();
  pageUrl = server.url('test/e2e/fixtures/cluster.html');
  browser = await launchBrowser();
});

test.afterAll(async () => {
  for (const c of contexts) await c.close();
  await nodes?.procs.cleanup();
  await browser?.close();
  await server?.close();
});

async function openAuthTab(user: string, password: string, client: number): Promise<Tab> {
  const context = await browser.newContext();
  contexts.push(context);
  return openTab(context, pageUrl, { cluster: clusterToken, secret: admissionSecret, signaling: nodes!.signalingUrl, user, password }, client);
}

/** What a call in the page gives: its result, or the message of the error it threw. */
function outcome<T>(p: Promise<T>): Promise<T | string> {
  return p.then(
    (v) => v,
    // page.evaluate's error carries the page's message, then its stack.
    (err: Error) => (/etcdserver: [^\n]*/.exec(err.message)?.[0] ?? err.message),
  );
}

test('a tab member of a cluster with auth enabled: the page authenticates and is held to its roles', async () => {
  nodes = await startNodes(['n1'], new URL(pageUrl).origin);
  const endpoint = nodes.members[0].endpoint;
  for (const args of [
    ['user', 'add', 'root:rootpw'],
    ['role', 'add', 'todo'],
    ['role', 'grant-permission', 'todo', 'readwrite', '--prefix=true', 'todo/'],
    ['user', 'add', 'alice:alicepw'],
    ['user', 'grant-role', 'alice', 'todo'],
    ['auth', 'enable'],
    ['--user', 'root:rootpw', 'put', 'secret', 'root only'],
  ]) {
    const r = await etcdctl(endpoint, args);
    // (`auth enable` warns once on stderr while it grants root the root role, as with etcd.)
    expect(r.code, `etcdctl ${args.join(' ')}: ${r.stderr}`).toBe(0);
  }

  const tab = await openAuthTab('alice', 'alicepw', 0);
  await expect.poll(async () => (await status(tab)).joined, { timeout: 30_000 }).toBe(true);

  expect(await outcome(tab.page.evaluate(() => window.meshkvTab!.put('todo/1', 'buy milk').then(() => 'ok')))).toBe('ok');
  expect(await outcome(tab.page.evaluate(() => window.meshkvTab!.get('todo/1').then((r) => r.value)))).toBe('buy milk');
  expect(await outcome(tab.page.evaluate(() => window.meshkvTab!.put('secret', 'overwritten').then(() => 'ok')))).toBe('etcdserver: permission denied');
  expect(await outcome(tab.page.evaluate(() => window.meshkvTab!.get('secret').then((r) => r.value)))).toBe('etcdserver: permission denied');
  // The Node member saw alice's write and kept root's key.
  expect((await etcdctl(endpoint, ['--user', 'root:rootpw', 'get', 'todo/1', '--print-value-only'])).stdout).toBe('buy milk\n');
  expect((await etcdctl(endpoint, ['--user', 'root:rootpw', 'get', 'secret', '--print-value-only'])).stdout).toBe('root only\n');

  const wrong = await openAuthTab('alice', 'wrong', 1);
  expect(await outcome(wrong.page.evaluate(() => window.meshkvTab!.get('todo/1').then((r) => r.value)))).toBe('etcdserver: authentication failed, invalid user ID or password');
});
