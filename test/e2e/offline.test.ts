// Offline-first (issue 14, docs/offline.md) in Debian's Chromium with real IndexedDB: a tab cut
// off from its cluster reads locally, fails linearizable reads fast, queues guarded writes in
// the durable outbox, and when it is back every entry ends committed exactly once or as a
// conflict with the right current value; the committed entries and the other tabs' operations
// form a linearizable history. Also across a reload, a closed tab (another tab drains), a
// browser killed and restarted, and a page killed between proposing and hearing the answer.

import { readdir, readFile, rm } from 'node:fs/promises';
import { expect, test, type BrowserContext, type Page } from '@playwright/test';
import type { BrowserMemberOptions } from '../../adapters/browser/index.ts';
import type { HistoryOp, OpInput, OpOutput } from '../check/history.ts';
import { checkLinearizable } from '../check/index.ts';
import { waitFor } from '../helpers/wait.ts';
import type { EntryView, WatchedEvent } from './fixtures/offline-page.ts';
import { launchPersistent, newProfileDir, servePages, type PageServer } from './serve.ts';

let server: PageServer;
let url: string;
const profiles: string[] = [];

test.beforeAll(async () => {
  server = await servePages();
  url = server.url('test/e2e/fixtures/offline.html');
});

test.afterAll(async () => {
  await server?.close();
  for (const p of profiles) await rm(p, { recursive: true, force: true });
});

interface Tab {
  page: Page;
  client: number;
}

type Options = Omit<BrowserMemberOptions, 'log'> & { offline?: boolean };

// Long tab grace: a tab offline for a while must stay a member; fail-fast so offline reads answer at once.
const options = (cluster: string): Options => ({ cluster, secret: `${cluster}-secret`, failFastOffline: true, timings: { tabGraceMs: 600_000 } });

async function openTab(context: BrowserContext, o: Options, client: number): Promise<Tab> {
  const page = await context.newPage();
  page.on('pageerror', (err) => console.error(`tab ${client}: ${err.message}`));
  await page.goto(url);
  await page.waitForFunction(() => window.meshkvOffline !== undefined);
  await page.evaluate((opts) => window.meshkvOffline!.open(opts), o);
  return { page, client };
}

async function newProfile(): Promise<string> {
  const p = await newProfileDir();
  profiles.push(p);
  return p;
}

/** Waits until every tab follows one leader and is online. */
function waitOnline(tabs: Tab[], timeoutMs = 30_000): Promise<true> {
  return waitFor(
    `tabs ${tabs.map((t) => t.client).join(', ')} online with one leader`,
    async () => {
      const all = await Promise.all(tabs.map((t) => t.page.evaluate(() => window.meshkvOffline!.status())));
      return all.every((s) => s.connectivity === 'online' && s.leader === all[0].leader && s.joined && s.voters.length === tabs.length) || undefined;
    },
    timeoutMs,
  );
}

const entries = (tab: Tab): Promise<EntryView[]> => tab.page.evaluate(() => window.meshkvOffline!.entries());

/** Records operations for the linearizability checker with one clock (this process's). */
class History {
  readonly ops: HistoryOp[] = [];

  async put(tab: Tab, key: string, value: string): Promise<void> {
    const call = performance.now();
    const { revision } = await tab.page.evaluate(([k, v]) => window.meshkvOffline!.put(k, v), [key, value] as const);
    this.record(tab.client, call, performance.now(), { f: 'put', key, value }, { f: 'put', revision });
  }

  async get(tab: Tab, key: string): Promise<string | null> {
    const call = performance.now();
    const r = await tab.page.evaluate((k) => window.meshkvOffline!.get(k), key);
    if ('offlineError' in r) throw new Error(r.offlineError);
    this.record(tab.client, call, performance.now(), { f: 'get', key }, { f: 'get', value: r.value, revision: r.revision });
    return r.value;
  }

  /**
   * An outbox entry as a compare-and-set: with unique values, "mod_revision unchanged since the
   * read" is "the value is still the one read". It may take effect from when it was queued
   * until its outcome was seen.
   */
  cas(client: number, call: number, ret: number, key: string, expected: string | null, value: string, e: EntryView): void {
    const output: OpOutput = { f: 'cas', succeeded: e.status === 'committed', value: e.status === 'committed' ? null : (e.current?.[key] ?? null), revision: e.revision! };
    this.record(client, call, ret, { f: 'cas', key, expected, value }, output);
  }

  record(client: number, call: number, ret: number, input: OpInput, output: OpOutput | null): void {
    this.ops.push({ id: this.ops.length, client, call, ret, input, output });
  }
}

interface Queued {
  seq: number;
  key: string;
  value: string;
  read: string | null;
  call: number;
}

async function queueGuarded(tab: Tab, key: string, value: string): Promise<Queued> {
  const call = performance.now();
  const r = await tab.page.evaluate(([k, v]) => window.meshkvOffline!.queueGuarded(k, v), [key, value] as const);
  return { seq: r.seq, key, value, read: r.read, call };
}

/** Waits until `seqs` are all settled in `tab`'s outbox view; returns the entries by seq and when that was seen. */
async function waitSettled(tab: Tab, seqs: number[], timeoutMs = 60_000): Promise<{ bySeq: Map<number, EntryView>; seenMs: number }> {
  const bySeq = await waitFor(
    `outbox entries ${seqs[0]}…${seqs[seqs.length - 1]} settled`,
    async () => {
      const all = new Map((await entries(tab)).map((e) => [e.seq, e]));
      return seqs.every((s) => all.get(s) && all.get(s)!.status !== 'pending') ? all : undefined;
    },
    timeoutMs,
    100,
  );
  return { bySeq, seenMs: performance.now() };
}

/**
 * Every committed entry's value is in the cluster's history exactly once, at its revision; no
 * conflict's value is; each conflict reports the value its key had at the conflict's revision.
 */
async function expectExactlyOnce(watcher: Tab, queued: Queued[], bySeq: Map<number, EntryView>): Promise<void> {
  const lastRevision = Math.max(...queued.map((q) => bySeq.get(q.seq)!.revision!));
  const events = await waitFor(
    'the watcher saw every revision',
    async () => {
      const ev: WatchedEvent[] = await watcher.page.evaluate(() => window.meshkvOffline!.watched());
      return ev.some((e) => e.modRevision >= lastRevision) ? ev : undefined;
    },
    20_000,
  );
  for (const q of queued) {
    const e = bySeq.get(q.seq)!;
    expect(['committed', 'conflict'], `entry ${q.seq}: ${JSON.stringify(e)}`).toContain(e.status);
    const writes = events.filter((ev) => ev.type === 'put' && ev.value === q.value);
    if (e.status === 'committed') {
      expect(writes.map((w) => [w.key, w.modRevision]), `entry ${q.seq} applied once`).toEqual([[q.key, e.revision]]);
    } else {
      expect(writes, `entry ${q.seq} (a conflict) never applied`).toEqual([]);
      // The value at the conflict's revision: the latest put or delete of the key at or below it.
      const before = events.filter((ev) => ev.key === q.key && ev.modRevision <= e.revision!).at(-1);
      expect(e.current?.[q.key] ?? null, `entry ${q.seq}'s current value`).toBe(before?.type === 'put' ? before.value : null);
    }
  }
}

test('a tab offline queues 50 guarded writes while others write; back online each commits once or conflicts, linearizably', async () => {
  const context = await launchPersistent(await newProfile());
  try {
    const o = options('offline-50');
    const tabs = [await openTab(context, o, 0)];
    tabs.push(...(await Promise.all([1, 2].map((c) => openTab(context, o, c)))));
    await waitOnline(tabs);
    const [a, , c] = tabs;
    const history = new History();
    for (let k = 0; k < 10; k++) await history.put(a, `k/${k}`, `init-${k}`);
    await a.page.evaluate(() => window.meshkvOffline!.watchFromStart('k/'));
    await c.page.evaluate(() => window.meshkvOffline!.listenOutcomes());
    await waitFor('tab 2 applied the initial writes', async () => (await c.page.evaluate(() => window.meshkvOffline!.localGet('k/9'))).value === 'init-9' || undefined);

    await c.page.evaluate(() => window.meshkvOffline!.setOffline(true));
    await waitFor('tab 2 offline', async () => (await c.page.evaluate(() => window.meshkvOffline!.connectivity())).state === 'offline' || undefined, 15_000);
    // Offline: local reads answer with the replica's data and revision; linearizable ones fail fast.
    const local = await c.page.evaluate(() => window.meshkvOffline!.localGet('k/3'));
    expect(local.value).toBe('init-3');
    const conn = await c.page.evaluate(() => window.meshkvOffline!.connectivity());
    expect(conn.lastLeaderRevision).toBe(local.revision);
    expect(conn.stalenessMs).toBeGreaterThan(0);
    const refused = await c.page.evaluate(() => window.meshkvOffline!.get('k/3'));
    expect(refused).toMatchObject({ offlineError: expect.stringMatching(/^meshkv: offline: a linearizable read needs a leader with a quorum/) });
    expect((refused as { ms: number }).ms).toBeLessThan(200);

    // 50 guarded writes on k/0..k/9 while tab 0 writes k/0..k/4: each tab-2 write reads its
    // key (its own pending write when there is one) and is guarded by that read.
    const queued: Queued[] = [];
    for (let i = 0; i < 50; i++) {
      queued.push(await queueGuarded(c, `k/${i % 10}`, `c-${i}`));
      if (i % 2 === 0) await history.put(a, `k/${i % 5}`, `a-${i}`);
    }
    expect(queued.map((q) => q.seq)).toEqual(queued.map((_, i) => queued[0].seq + i));
    // Read your own writes: the overlay shows the pending values, marked pending.
    const overlay = await c.page.evaluate(() => window.meshkvOffline!.overlaid('k/'));
    expect(overlay).toEqual(Array.from({ length: 10 }, (_, k) => ({ key: `k/${k}`, value: `c-${40 + k}`, pending: true })));
    expect((await entries(c)).every((e) => e.status === 'pending')).toBe(true);

    await c.page.evaluate(() => window.meshkvOffline!.setOffline(false));
    const { bySeq, seenMs } = await waitSettled(c, queued.map((q) => q.seq));
    for (const q of queued) history.cas(c.client, q.call, seenMs, q.key, q.read, q.value, bySeq.get(q.seq)!);
    await expectExactlyOnce(a, queued, bySeq);
    const statuses = queued.map((q) => bySeq.get(q.seq)!.status);
    // k/0..k/4 were overwritten by tab 0 after tab 2 read them: those chains conflict; k/5..k/9 commit.
    expect(statuses.filter((s) => s === 'committed')).toHaveLength(25);
    expect(statuses.filter((s) => s === 'conflict')).toHaveLength(25);
    // Every outcome was announced to the app.
    expect((await c.page.evaluate(() => window.meshkvOffline!.heard)).sort((x, y) => x - y)).toEqual(queued.map((q) => q.seq));
    // Tab 0's last writes: a-40 to k/0, a-46 to k/1, a-42 to k/2, a-48 to k/3, a-44 to k/4.
    const last = ['a-40', 'a-46', 'a-42', 'a-48', 'a-44', 'c-45', 'c-46', 'c-47', 'c-48', 'c-49'];
    for (let k = 0; k < 10; k++) expect(await history.get(tabs[k % 3], `k/${k}`)).toBe(last[k]);
    const result = checkLinearizable(history.ops);
    expect(result, JSON.stringify(result).slice(0, 2000)).toMatchObject({ ok: true });
  } finally {
    await context.close();
  }
});

test('the outbox survives a reload while offline and drains once; a closed tab\'s entries are drained by another tab', async () => {
  const context = await launchPersistent(await newProfile());
  try {
    const o = options('offline-reload');
    const tabs = [await openTab(context, o, 0)];
    tabs.push(...(await Promise.all([1, 2].map((c) => openTab(context, o, c)))));
    await waitOnline(tabs);
    const [a, b, c] = tabs;
    await a.page.evaluate(() => window.meshkvOffline!.watchFromStart('r/'));
    await c.page.evaluate(() => window.meshkvOffline!.setOffline(true));
    await waitFor('tab 2 offline', async () => (await c.page.evaluate(() => window.meshkvOffline!.connectivity())).state === 'offline' || undefined, 15_000);
    const queued: Queued[] = [];
    for (let i = 0; i < 20; i++) queued.push(await queueGuarded(c, `r/${i % 5}`, `c-${i}`));

    // Reloaded while offline (and reopened offline): the entries are still there, still pending.
    await c.page.reload();
    await c.page.waitForFunction(() => window.meshkvOffline !== undefined);
    await c.page.evaluate((opts) => window.meshkvOffline!.open(opts), { ...o, offline: true });
    expect((await entries(c)).map((e) => [e.seq, e.status])).toEqual(queued.map((q) => [q.seq, 'pending']));
    await c.page.evaluate(() => window.meshkvOffline!.setOffline(false));
    const { bySeq } = await waitSettled(c, queued.map((q) => q.seq));
    await expectExactlyOnce(a, queued, bySeq);
    expect(queued.every((q) => bySeq.get(q.seq)!.status === 'committed')).toBe(true);

    // Offline again, 5 more, then the tab closes: tab 0 opens the origin's outbox and drains them.
    await waitOnline(tabs);
    await c.page.evaluate(() => window.meshkvOffline!.setOffline(true));
    await waitFor('tab 2 offline', async () => (await c.page.evaluate(() => window.meshkvOffline!.connectivity())).state === 'offline' || undefined, 15_000);
    const left: Queued[] = [];
    for (let i = 20; i < 25; i++) left.push(await queueGuarded(c, `r/${i % 5}`, `c-${i}`));
    await c.page.close();
    await a.page.evaluate(() => window.meshkvOffline!.openOutbox());
    const drained = await waitSettled(a, left.map((q) => q.seq));
    await expectExactlyOnce(a, [...queued, ...left], new Map([...bySeq, ...drained.bySeq]));
    expect(left.every((q) => drained.bySeq.get(q.seq)!.status === 'committed')).toBe(true);
    // Tab 1 sees the same outcomes in the shared outbox.
    expect((await entries(b)).filter((e) => e.seq >= left[0].seq).map((e) => e.status)).toEqual(left.map(() => 'committed'));
  } finally {
    await context.close();
  }
});

/** The pid of the Chromium this process launched on `profile`: our child with that --user-data-dir. */
async function browserPid(profile: string): Promise<number> {
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const [cmdline, stat] = await Promise.all([readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => ''), readFile(`/proc/${name}/stat`, 'utf8').catch(() => '')]);
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid === process.pid && cmdline.split('\0').includes(`--user-data-dir=${profile}`)) return Number(name);
  }
  throw new Error(`no Chromium child of process ${process.pid} runs on profile ${profile}`);
}

test('a tab-only cluster survives the browser being killed and restarted; pending entries are still pending and drain once', async () => {
  const profile = await newProfile();
  let context = await launchPersistent(profile);
  const o = options('offline-kill');
  try {
    let tabs = [await openTab(context, o, 0)];
    tabs.push(...(await Promise.all([1, 2].map((c) => openTab(context, o, c)))));
    await waitOnline(tabs);
    const history = new History();
    for (let k = 0; k < 5; k++) await history.put(tabs[0], `s/${k}`, `committed-${k}`);
    const c = tabs[2];
    await waitFor('tab 2 applied the writes', async () => (await c.page.evaluate(() => window.meshkvOffline!.localGet('s/4'))).value === 'committed-4' || undefined);
    await c.page.evaluate(() => window.meshkvOffline!.setOffline(true));
    await waitFor('tab 2 offline', async () => (await c.page.evaluate(() => window.meshkvOffline!.connectivity())).state === 'offline' || undefined, 15_000);
    const queued: Queued[] = [];
    for (let i = 0; i < 10; i++) queued.push(await queueGuarded(c, `s/${i % 5}`, `c-${i}`));

    const pid = await browserPid(profile);
    const closed = new Promise((resolve) => context.once('close', resolve));
    process.kill(pid, 'SIGKILL');
    await closed;

    context = await launchPersistent(profile);
    // The first tab reopens cut off, so nothing drains before the outbox is looked at.
    tabs = [await openTab(context, { ...o, offline: true }, 0)];
    expect((await entries(tabs[0])).map((e) => [e.seq, e.status])).toEqual(queued.map((q) => [q.seq, 'pending']));
    tabs.push(...(await Promise.all([1, 2].map((c) => openTab(context, o, c)))));
    await tabs[0].page.evaluate(() => window.meshkvOffline!.setOffline(false));
    await waitOnline(tabs);
    // Every committed write is still there.
    for (let k = 0; k < 5; k++) expect(await history.get(tabs[k % 3], `s/${k}`)).toMatch(/^(committed|c)-/);
    await tabs[1].page.evaluate(() => window.meshkvOffline!.watchFromStart('s/'));
    const { bySeq } = await waitSettled(tabs[0], queued.map((q) => q.seq));
    await expectExactlyOnce(tabs[1], queued, bySeq);
    expect(queued.every((q) => bySeq.get(q.seq)!.status === 'committed')).toBe(true);
  } finally {
    await context.close();
  }
});

test('a page killed between proposing an outbox entry and hearing the answer: reopened, the entry is committed once', async () => {
  const context = await launchPersistent(await newProfile());
  try {
    const o = options('offline-crash');
    const tabs = [await openTab(context, o, 0)];
    tabs.push(...(await Promise.all([1, 2].map((c) => openTab(context, o, c)))));
    await waitOnline(tabs);
    const [a, , c] = tabs;
    await a.page.evaluate(() => window.meshkvOffline!.watchFromStart('x/'));
    await c.page.evaluate(() => window.meshkvOffline!.setOffline(true));
    await waitFor('tab 2 offline', async () => (await c.page.evaluate(() => window.meshkvOffline!.connectivity())).state === 'offline' || undefined, 15_000);
    const queued = [await queueGuarded(c, 'x/1', 'once'), await queueGuarded(c, 'x/2', 'after')];
    const stalled = c.page.evaluate(() => window.meshkvOffline!.stallAfterNextProposal());
    await c.page.evaluate(() => window.meshkvOffline!.setOffline(false));
    const revision = await stalled;
    expect(revision).toBeGreaterThan(0);
    // The page dies before the outbox records the outcome.
    const cdp = await context.newCDPSession(c.page);
    void cdp.send('Page.crash').catch(() => {});
    await expect.poll(() => c.page.evaluate(() => 1).catch(() => 'crashed')).toBe('crashed');

    const reopened = await openTab(context, o, 2);
    expect((await entries(reopened)).map((e) => e.status)).toEqual(['pending', 'pending']);
    await waitOnline([a, tabs[1], reopened]);
    const { bySeq } = await waitSettled(reopened, queued.map((q) => q.seq));
    expect(bySeq.get(queued[0].seq)).toMatchObject({ status: 'committed', revision });
    expect(bySeq.get(queued[1].seq)).toMatchObject({ status: 'committed' });
    await expectExactlyOnce(a, queued, bySeq);
  } finally {
    await context.close();
  }
});
