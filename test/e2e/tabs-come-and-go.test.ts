// Issue 12: tabs come and go, the cluster stays. Real Node processes (bin/meshkv.mjs, started as
// `npm start` starts one: no peer listener) and tabs in Debian's Chromium joining through its
// signaling endpoint; the browser is ended with SIGKILL on its process (no pagehide, no
// goodbye). Every client operation is recorded with one clock and the history checked for
// linearizability, with reads of every key at the end, so an acknowledged write that was lost
// fails the check.

import { execFile } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, test, type Browser, type BrowserContext } from '@playwright/test';
import { signalingPath } from '../../adapters/node/config.ts';
import { checkLinearizable } from '../check/index.ts';
import { Processes, ready, testAdmissionSecret, type Proc } from '../cluster/processes.ts';
import { etcdctl } from '../etcd-api/harness.ts';
import { freePort, spawnCollecting } from '../helpers/processes.ts';
import { waitFor } from '../helpers/wait.ts';
import { openTab, status, type MemberOptions, type Tab } from './cluster-harness.ts';
import { nodeEndpoint, Recorder, startNodes, tabEndpoint, type Endpoint, type NodeCluster } from './mixed-harness.ts';
import { launchBrowser, launchPersistent, newProfileDir, servePages, type PageServer } from './serve.ts';

const bin = new URL('../../bin/meshkv.mjs', import.meta.url).pathname;
/** `npm start`'s default token, which is also the cluster name its signaling serves. */
const defaultToken = 'meshkv-cluster';
const keys = 4;

let server: PageServer;
let pageUrl: string;
const cleanups: (() => Promise<unknown>)[] = [];

test.beforeAll(async () => {
  server = await servePages();
  pageUrl = server.url('test/e2e/fixtures/cluster.html');
});

test.afterAll(async () => {
  await server?.close();
});

test.afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

/** A member as `npm start` runs one (no --initial-cluster, no peer listener), on `dataDir`. */
function startSolo(procs: Processes, dataDir: string, clientPort: number, extra: string[] = []): Proc {
  const args = [bin, '--data-dir', dataDir, '--listen-client-urls', `http://127.0.0.1:${clientPort}`, '--browser-origins', new URL(pageUrl).origin, '--admission-secret', testAdmissionSecret, ...extra];
  const { child, logs, exited } = spawnCollecting(process.execPath, args);
  const p: Proc = { spec: { name: 'solo', clientPort, peerPort: 0, dataDir }, child, logs, exited, endpoint: `127.0.0.1:${clientPort}` };
  cleanups.push(() => procs.kill9(p));
  return p;
}

function tabOptions(clientPort: number, token = defaultToken): MemberOptions {
  // Short request timeouts: a tab's write forwarded to a member that died is answered by them.
  return { cluster: token, secret: testAdmissionSecret, signaling: `ws://127.0.0.1:${clientPort}${signalingPath}`, timings: { requestTimeoutMs: 2000 } };
}

/** The main Chromium process this test process launched (its descendants with no --type=). */
function browserPids(): Promise<number[]> {
  return new Promise((resolve, reject) => {
    execFile('ps', ['-eo', 'pid=,ppid=,args='], (err, stdout) => {
      if (err) return reject(err);
      const rows = stdout
        .trim()
        .split('\n')
        .map((l) => /^\s*(\d+)\s+(\d+)\s+(.*)$/.exec(l)!)
        .map((m) => ({ pid: Number(m[1]), ppid: Number(m[2]), args: m[3] }));
      const mine = new Set([process.pid]);
      for (let grew = true; grew; ) {
        grew = false;
        for (const r of rows) if (mine.has(r.ppid) && !mine.has(r.pid)) (mine.add(r.pid), (grew = true));
      }
      resolve(rows.filter((r) => mine.has(r.pid) && /chromium/.test(r.args) && !/--type=|crashpad/.test(r.args)).map((r) => r.pid));
    });
  });
}

/** Kills the whole browser with SIGKILL on its main process, as a crash or `kill -9` would. */
async function killBrowser(): Promise<void> {
  const pids = await browserPids();
  expect(pids.length, 'the launched Chromium process').toBeGreaterThan(0);
  for (const pid of pids) process.kill(pid, 'SIGKILL');
  await waitFor('the browser processes to exit', async () => (await browserPids()).length === 0, 20_000);
}

interface MemberList {
  members: { ID: string; isLearner?: boolean; name: string }[];
}

async function memberList(p: Proc): Promise<MemberList['members']> {
  const res = await fetch(`http://${p.endpoint}/v3/cluster/member/list`, { method: 'POST', body: '{}' });
  return ((await res.json()) as MemberList).members;
}

async function waitForTabs(node: Proc, tabs: Tab[], as: 'learners' | 'voters'): Promise<void> {
  await waitFor(
    `the tabs to be ${as} with a leader`,
    async () => {
      const list = await memberList(node).catch(() => []);
      const all = await Promise.all(tabs.map(status));
      return tabs.every((t) => list.some((m) => Number(m.ID) === t.id && (m.isLearner === true) === (as === 'learners'))) && all.every((s) => s.joined && s.leader !== 0);
    },
    45_000,
  );
}

/** Reads every key on `endpoint`, recorded, so that the history shows a lost acknowledged write. */
async function readAll(recorder: Recorder, endpoint: Endpoint): Promise<void> {
  const client = recorder.newClient();
  for (let k = 0; k < keys; k++) {
    const r = await recorder.op(endpoint, client, { f: 'get', key: `mixed/${k}` });
    expect(r.output, `read mixed/${k} on ${endpoint.name}`).not.toBeNull();
  }
}

function expectLinearizable(recorder: Recorder): void {
  const result = checkLinearizable(recorder.ops);
  expect(result, JSON.stringify(result).slice(0, 2000)).toMatchObject({ ok: true });
}

/**
 * Runs the workload on `endpoints`, SIGKILLs the browser after `beforeMs` and keeps the load on
 * until `until(killedAt)`; returns the kill time.
 */
async function killBrowserUnderLoad(recorder: Recorder, endpoints: Endpoint[], beforeMs: number, until: (killedAt: number) => boolean): Promise<number> {
  let running = true;
  const load = recorder.workload(endpoints, keys, () => running);
  await new Promise((r) => setTimeout(r, beforeMs));
  const killedAt = performance.now();
  await killBrowser();
  await waitFor('the survivors to make progress', () => until(killedAt), 60_000);
  running = false;
  await load;
  return killedAt;
}

/** Writes acknowledged on the endpoint named `name` (the workload's values start with it) and called after `after`. */
function ackedWrites(recorder: Recorder, name: string, after: number) {
  return recorder.ops.filter((o) => o.output !== null && o.input.f === 'put' && o.input.value.startsWith(`${name}#`) && o.call > after);
}

test('npm start and 3 tabs: the browser killed, the member serves every write at once; restarted, ready with every write; the tabs are removed and one reopened rejoins', async () => {
  test.setTimeout(240_000);
  const procs = new Processes();
  cleanups.push(() => procs.cleanup());
  const port = await freePort();
  const dataDir = join(procs.root, 'solo.data');
  let node = startSolo(procs, dataDir, port, ['--tab-grace-ms', '10000']);
  await ready(node);
  const profile = await newProfileDir();
  cleanups.push(() => rm(profile, { recursive: true, force: true }));
  const context = await launchPersistent(profile);
  cleanups.push(() => context.close());
  const tabs: Tab[] = [];
  for (let i = 0; i < 3; i++) tabs.push(await openTab(context, pageUrl, tabOptions(port), i));
  await waitForTabs(node, tabs, 'learners');
  expect((await memberList(node)).filter((m) => !m.isLearner).map((m) => m.name)).toEqual(['default']);

  const recorder = new Recorder();
  const nodeEnd = nodeEndpoint(node);
  cleanups.push(async () => nodeEnd.close());
  const endpoints = [nodeEnd, ...tabs.map(tabEndpoint)];
  const killedAt = await killBrowserUnderLoad(recorder, endpoints, 2000, (at) => ackedWrites(recorder, 'solo', at).length >= 10);
  const firstAfter = Math.min(...ackedWrites(recorder, 'solo', killedAt).map((o) => o.ret));
  console.log(`first write acknowledged by the Node member ${Math.round(firstAfter - killedAt)} ms after the browser was killed`);
  expect(firstAfter - killedAt).toBeLessThan(30_000);
  await readAll(recorder, nodeEnd);
  expectLinearizable(recorder);
  expect(await (await fetch(`http://${node.endpoint}/health`)).json()).toEqual({ health: 'true', reason: '' });

  // etcdctl removes a tab on a member without a peer listener; the leader removes the others
  // once they have been unreachable for the grace period (10 s here: long enough for the checks
  // above on a loaded machine, so the etcdctl removal comes first).
  const removed = await etcdctl(node.endpoint, ['member', 'remove', tabs[0].id.toString(16)]);
  expect(removed, removed.stderr).toMatchObject({ code: 0 });
  expect(removed.stdout).toMatch(new RegExp(`^Member +${tabs[0].id.toString(16)} removed from cluster `));
  await waitFor('the crashed tabs removed', async () => (await memberList(node)).length === 1, 30_000);
  expect(node.logs.some((l) => l.includes('removed tab member') && l.includes('unreachable for'))).toBe(true);

  // Restarted on its data: ready within 30 s, with every write.
  await procs.kill9(node);
  const restartedAt = performance.now();
  node = startSolo(procs, dataDir, port, ['--tab-grace-ms', '4000']);
  await ready(node, 30_000);
  console.log(`restarted member ready in ${Math.round(performance.now() - restartedAt)} ms`);
  const again = nodeEndpoint(node);
  cleanups.push(async () => again.close());
  await readAll(recorder, again);
  expectLinearizable(recorder);

  // The browser reopened on the same profile: a tab comes back as one of the old members, is
  // added again (it was removed) as a learner, and reads every write.
  await context.close().catch(() => {});
  const reopened = await launchPersistent(profile);
  cleanups.push(() => reopened.close());
  const back = await openTab(reopened, pageUrl, tabOptions(port), 10);
  expect(tabs.map((t) => t.id)).toContain(back.id);
  await waitForTabs(node, [back], 'learners');
  await readAll(recorder, tabEndpoint(back));
  expectLinearizable(recorder);
});

test('tabs closed one at a time, down to none: the cluster stays writable at every step', async () => {
  test.setTimeout(180_000);
  const procs = new Processes();
  cleanups.push(() => procs.cleanup());
  const port = await freePort();
  const node = startSolo(procs, join(procs.root, 'solo.data'), port);
  await ready(node);
  const browser: Browser = await launchBrowser();
  cleanups.push(() => browser.close());
  const context: BrowserContext = await browser.newContext();
  const tabs: Tab[] = [];
  for (let i = 0; i < 3; i++) tabs.push(await openTab(context, pageUrl, tabOptions(port), i));
  await waitForTabs(node, tabs, 'learners');
  const recorder = new Recorder();
  const nodeEnd = nodeEndpoint(node);
  cleanups.push(async () => nodeEnd.close());
  let n = 0;
  const writeEverywhere = async (open: Tab[]) => {
    for (const e of [nodeEnd, ...open.map(tabEndpoint)]) {
      const r = await recorder.op(e, recorder.newClient(), { f: 'put', key: `mixed/${n++ % keys}`, value: `${e.name}#${n}` });
      expect(r.output, `a write on ${e.name} with ${open.length} tabs open`).not.toBeNull();
    }
  };
  await writeEverywhere(tabs);
  while (tabs.length > 0) {
    await tabs.shift()!.page.close();
    await writeEverywhere(tabs);
  }
  await waitFor('the closed tabs to have left', async () => (await memberList(node)).length === 1, 30_000);
  await writeEverywhere([]);
  await readAll(recorder, nodeEnd);
  expectLinearizable(recorder);
});

test('3 Node members and 3 tabs: the browser killed, no interruption beyond one election', async () => {
  test.setTimeout(180_000);
  const nodes: NodeCluster = await startNodes(['n1', 'n2', 'n3'], new URL(pageUrl).origin);
  cleanups.push(() => nodes.procs.cleanup());
  const browser = await launchBrowser();
  cleanups.push(() => browser.close());
  const context = await browser.newContext();
  const tabs: Tab[] = [];
  for (let i = 0; i < 3; i++) tabs.push(await openTab(context, pageUrl, { ...tabOptions(nodes.specs[0].clientPort, 'test-cluster') }, i));
  await waitForTabs(nodes.members[0], tabs, 'learners');
  const recorder = new Recorder();
  const nodeEnds = nodes.members.map(nodeEndpoint);
  cleanups.push(async () => nodeEnds.forEach((e) => e.close()));
  const killedAt = await killBrowserUnderLoad(recorder, [...nodeEnds, ...tabs.map(tabEndpoint)], 2000, (at) =>
    nodeEnds.every((e) => ackedWrites(recorder, e.name, at + 5000).length >= 3),
  );
  // The longest wait between two acknowledged operations of one Node endpoint around the kill.
  let gapMs = 0;
  for (const e of nodeEnds) {
    const rets = ackedWrites(recorder, e.name, killedAt - 1000).map((o) => o.ret).sort((a, b) => a - b);
    for (let i = 1; i < rets.length; i++) gapMs = Math.max(gapMs, rets[i] - rets[i - 1]);
  }
  console.log(`longest pause of a Node endpoint's writes around the browser kill: ${Math.round(gapMs)} ms`);
  // One election is 1–2 s (etcd's timings); the tabs are learners, so there is none at all.
  expect(gapMs).toBeLessThan(3000);
  for (const e of nodeEnds) await readAll(recorder, e);
  expectLinearizable(recorder);
});

test('tabs may outvote: the browser killed, the member reports the lost quorum; --force-new-cluster brings it back with its data', async () => {
  test.setTimeout(240_000);
  const procs = new Processes();
  cleanups.push(() => procs.cleanup());
  const port = await freePort();
  const dataDir = join(procs.root, 'solo.data');
  let node = startSolo(procs, dataDir, port, ['--tabs-may-outvote']);
  await ready(node);
  const browser = await launchBrowser();
  cleanups.push(() => browser.close());
  const context = await browser.newContext();
  const tabs: Tab[] = [];
  for (let i = 0; i < 2; i++) tabs.push(await openTab(context, pageUrl, tabOptions(port), i));
  await waitForTabs(node, tabs, 'voters');
  expect((await status(tabs[0])).tabsMayOutvote).toBe(true);
  const recorder = new Recorder();
  const nodeEnd = nodeEndpoint(node);
  cleanups.push(async () => nodeEnd.close());
  await killBrowserUnderLoad(recorder, [nodeEnd, ...tabs.map(tabEndpoint)], 2000, () => true);
  // One of three voters: no quorum. It says so, and /health says false with etcd's reason.
  const line = await waitFor('the quorum-loss report', () => node.logs.find((l) => l.includes('"msg":"no quorum for')), 30_000);
  console.log(line);
  expect(line).toContain('1 of 3 voters reachable, 2 needed');
  for (const t of tabs) expect(line).toContain(`tab ${t.id.toString(16)}, unreachable`);
  expect(line).toContain('--force-new-cluster');
  const health = await fetch(`http://${node.endpoint}/health`);
  expect(health.status).toBe(503);
  expect(await health.json()).toEqual({ health: 'false', reason: 'RAFT NO LEADER' });

  await procs.kill9(node);
  const restartedAt = performance.now();
  node = startSolo(procs, dataDir, port, ['--force-new-cluster']);
  await ready(node, 30_000);
  console.log(`forced member ready in ${Math.round(performance.now() - restartedAt)} ms`);
  expect(node.logs.some((l) => l.includes('forced a new cluster'))).toBe(true);
  expect((await memberList(node)).map((m) => m.name)).toEqual(['default']);
  const forced = nodeEndpoint(node);
  cleanups.push(async () => forced.close());
  await readAll(recorder, forced);
  const after = await recorder.op(forced, recorder.newClient(), { f: 'put', key: 'mixed/0', value: 'solo#forced' });
  expect(after.output).not.toBeNull();
  expectLinearizable(recorder);
});
