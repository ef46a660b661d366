// Browser tabs as cluster members (issue 5): tabs of one browser profile found a cluster
// through BroadcastChannel signaling, join it, elect a leader and replicate over WebRTC, persist
// to IndexedDB. Every scenario records its clients' operations and checks them for
// linearizability.

import { rm } from 'node:fs/promises';
import { expect, test, type Browser } from '@playwright/test';
import { SignalingServer } from '../../adapters/signaling/ws-server.ts';
import { waitFor } from '../helpers/wait.ts';
import { History, openTab, openTabs, status, waitForCluster, waitForLeader, writeAndReadBack, type MemberOptions } from './cluster-harness.ts';
import { launchBrowser, launchPersistent, newProfileDir, servePages, type PageServer } from './serve.ts';

let server: PageServer;
let url: string;
let browser: Browser;

test.beforeAll(async () => {
  server = await servePages();
  url = server.url('test/e2e/fixtures/cluster.html');
  browser = await launchBrowser();
});

test.afterAll(async () => {
  await browser?.close();
  await server?.close();
});

const options = (cluster: string, timings: MemberOptions['timings'] = {}): MemberOptions => ({ cluster, secret: `${cluster}-secret`, timings });

test('3 tabs elect a leader, replicate writes, and each reads them linearizably', async () => {
  const context = await browser.newContext();
  try {
    const tabs = await openTabs(context, url, options('three'), 3);
    expect(new Set(tabs.map((t) => t.id)).size).toBe(3);
    await waitForCluster(tabs);
    const founders = (await Promise.all(tabs.map(status))).filter((s) => s.founded);
    expect(founders).toHaveLength(1);

    const history = new History();
    await writeAndReadBack(history, tabs, 'k', 5);
    // Every tab reads every other tab's last write.
    for (const reader of tabs) for (const writer of tabs) expect(await history.get(reader, `k${writer.client}-4`)).toBe('v4');

    // A follower's tab crashes (no pagehide: it stays a member); the others go on writing.
    const leader = await waitForCluster(tabs);
    const crashed = tabs.find((t) => t !== leader)!;
    const cdp = await context.newCDPSession(crashed.page);
    // The reply never comes: the session dies with the page.
    void cdp.send('Page.crash').catch(() => {});
    await expect.poll(() => crashed.page.evaluate(() => 1).catch(() => 'crashed')).toBe('crashed');
    const rest = tabs.filter((t) => t !== crashed);
    await writeAndReadBack(history, rest, 'while-crashed', 3);
    // Reopened, it is the same member, with its IndexedDB state, and it catches up.
    const reopened = await openTab(context, url, options('three'), crashed.client);
    expect(reopened.id).toBe(crashed.id);
    expect(await reopened.page.evaluate(() => window.meshkvTab!.status().founded)).toBe(false);
    await waitForCluster([...rest, reopened]);
    await expect.poll(() => reopened.page.evaluate((k) => window.meshkvTab!.localKeys(k), 'while-crashed'), { timeout: 10_000 }).toEqual(
      Object.fromEntries(rest.flatMap((t) => [0, 1, 2].map((i) => [`while-crashed${t.client}-${i}`, `v${i}`]))),
    );
    expect(await history.get(reopened, `k${crashed.client}-4`)).toBe('v4');
    history.expectLinearizable();
  } finally {
    await context.close();
  }
});

test('5 tabs: the leader partitioned away can neither commit nor read; the majority goes on; after healing no acknowledged write is lost', async () => {
  const context = await browser.newContext();
  try {
    const tabs = await openTabs(context, url, options('five', { requestTimeoutMs: 2000 }), 5);
    const oldLeader = await waitForCluster(tabs);
    const history = new History();
    await writeAndReadBack(history, tabs, 'before', 2);

    const others = tabs.filter((t) => t !== oldLeader);
    await oldLeader.page.evaluate((ids) => window.meshkvTab!.block(ids), others.map((t) => t.id));
    for (const t of others) await t.page.evaluate((id) => window.meshkvTab!.block([id]), oldLeader.id);

    const newLeader = await waitForLeader(others, oldLeader.id, 10_000);
    // The old leader's write cannot commit and its linearizable read cannot be served.
    expect(await history.put(oldLeader, 'cut-off', 'lost')).toBe(false);
    expect(await history.get(oldLeader, 'before0-1')).toBeUndefined();
    expect((await status(oldLeader)).role).not.toBe('leader');
    // The majority serves, through every member of it.
    await writeAndReadBack(history, others, 'during', 2);

    await oldLeader.page.evaluate(() => window.meshkvTab!.heal());
    for (const t of others) await t.page.evaluate(() => window.meshkvTab!.heal());
    await waitForCluster(tabs);
    await writeAndReadBack(history, tabs, 'after', 1);
    expect((await status(newLeader)).term).toBeGreaterThan(0);

    // Logs converge: every tab has applied the same keys, with every acknowledged write.
    const acknowledged = history.ops.filter((op) => op.input.f === 'put' && op.output !== null).map((op) => (op.input as { key: string }).key);
    const leaderCommit = (await status(newLeader)).commit;
    await expect.poll(async () => Math.min(...(await Promise.all(tabs.map(status))).map((s) => s.applied)), { timeout: 10_000 }).toBeGreaterThanOrEqual(leaderCommit);
    const views = await Promise.all(tabs.map((t) => t.page.evaluate(() => window.meshkvTab!.localKeys(''))));
    for (const view of views) expect(view).toEqual(views[0]);
    for (const key of acknowledged) expect(views[0]).toHaveProperty(key);
    expect(views[0]).not.toHaveProperty('cut-off');

    // A tab crashes for good: it stays a voter until removed; a follower's tab removes it.
    const leader = await waitForCluster(tabs);
    const [gone, remover] = tabs.filter((t) => t !== leader);
    void (await context.newCDPSession(gone.page)).send('Page.crash').catch(() => {});
    const survivors = tabs.filter((t) => t !== gone);
    expect((await status(remover)).voters).toContain(gone.id);
    await remover.page.evaluate((id) => window.meshkvTab!.removeMember(id), gone.id);
    await waitForCluster(survivors);
    await writeAndReadBack(history, survivors, 'four', 1);
    history.expectLinearizable();
  } finally {
    await context.close();
  }
});

test('closing the leader tab: a new leader within two seconds at default timings; reopened, it recovers from IndexedDB and catches up', async () => {
  const context = await browser.newContext();
  try {
    const tabs = await openTabs(context, url, options('close-reopen'), 3);
    const leader = await waitForCluster(tabs);
    const history = new History();
    await writeAndReadBack(history, tabs, 'a', 3);

    const rest = tabs.filter((t) => t !== leader);
    const closedAt = performance.now();
    await leader.page.close();
    await waitForLeader(rest, leader.id, 5000);
    const electedMs = performance.now() - closedAt;
    expect(electedMs).toBeLessThan(2000);
    // It said it was leaving (pagehide), and the new leader removed it.
    await expect.poll(async () => (await Promise.all(rest.map(status))).every((s) => !s.voters.includes(leader.id) && !s.learners.includes(leader.id)), { timeout: 5000 }).toBe(true);

    await writeAndReadBack(history, rest, 'b', 3);
    const reopened = await openTab(context, url, options('close-reopen'), leader.client);
    expect(reopened.id).toBe(leader.id);
    const all = [...rest, reopened];
    await waitForCluster(all);
    // Its own writes came back from IndexedDB, the ones made while it was gone from the leader.
    const mine = await reopened.page.evaluate(() => window.meshkvTab!.localKeys(''));
    expect(mine).toMatchObject({ [`a${leader.client}-2`]: 'v2', [`b${rest[0].client}-2`]: 'v2' });
    expect(await history.get(reopened, `b${rest[1].client}-2`)).toBe('v2');
    await writeAndReadBack(history, all, 'c', 2);
    history.expectLinearizable();

    // Leaving for good: it is removed from the configuration and its database is deleted.
    const database = `meshkv/close-reopen/member/${reopened.id}`;
    expect(await reopened.page.evaluate(() => window.meshkvTab!.databases())).toContain(database);
    await reopened.page.evaluate(() => window.meshkvTab!.close(true));
    await waitForCluster(rest);
    expect(await reopened.page.evaluate(() => window.meshkvTab!.databases())).not.toContain(database);
  } finally {
    await context.close();
  }
});

test('a closing leader whose TimeoutNow is lost: the successor named in its leave notice takes over before any election timeout', async () => {
  const context = await browser.newContext();
  try {
    const tabs = await openTabs(context, url, options('successor'), 3);
    const leader = await waitForCluster(tabs);
    const history = new History();
    await writeAndReadBack(history, tabs, 's', 1);
    const rest = tabs.filter((t) => t !== leader);
    // The data channels drop everything from now on, as when the page tears them down before
    // the TimeoutNow is out; signaling still carries the leave notice.
    await leader.page.evaluate((ids) => window.meshkvTab!.block(ids), rest.map((t) => t.id));
    const closedAt = performance.now();
    await leader.page.close();
    await waitForLeader(rest, leader.id, 5000);
    // No follower heard from the leader after closedAt, and none times out sooner than an
    // election timeout (1 s at default timings) after that: only the notice explains this.
    expect(performance.now() - closedAt).toBeLessThan(1000);
    await writeAndReadBack(history, rest, 't', 1);
    history.expectLinearizable();
  } finally {
    await context.close();
  }
});

test('the whole browser restarted on a persistent profile: the tabs come back as the same members with the data', async () => {
  const profile = await newProfileDir();
  try {
    let context = await launchPersistent(profile);
    let tabs = await openTabs(context, url, options('restart'), 3);
    await waitForCluster(tabs);
    const before = new Set(tabs.map((t) => t.id));
    const history = new History();
    await writeAndReadBack(history, tabs, 'kept', 3);
    await context.close();

    context = await launchPersistent(profile);
    try {
      tabs = await openTabs(context, url, options('restart'), 3);
      expect(new Set(tabs.map((t) => t.id))).toEqual(before);
      await waitForCluster(tabs);
      for (const reader of tabs) for (const writer of tabs) expect(await history.get(reader, `kept${writer.client}-2`)).toBe('v2');
      history.expectLinearizable();
    } finally {
      await context.close();
    }
  } finally {
    await rm(profile, { recursive: true, force: true });
  }
});

test('tabs of two browser profiles form one cluster through WebSocket signaling; a tab that wants no vote stays a learner', async () => {
  const signaling = new SignalingServer({ cluster: 'ws', secret: 'ws-secret' });
  const wsUrl = await signaling.listen(0);
  const [first, second] = [await browser.newContext(), await browser.newContext()];
  try {
    const o = { ...options('ws'), signaling: wsUrl };
    const founder = await openTab(first, url, o, 0);
    const voter = await openTab(second, url, o, 1);
    const learner = await openTab(second, url, { ...o, wantsVote: false }, 2);
    const tabs = [founder, voter, learner];
    await waitFor(
      'two voters, one learner and one leader',
      async () => {
        const all = await Promise.all(tabs.map(status));
        return all.every((s) => s.joined && s.leader !== 0 && s.leader === all[0].leader && s.voters.length === 2 && s.learners.length === 1);
      },
      30_000,
    );
    const s = await status(learner);
    expect(s.learners).toEqual([learner.id]);
    expect([...s.voters].sort()).toEqual([founder.id, voter.id].sort());

    const history = new History();
    await writeAndReadBack(history, tabs, 'ws', 3);
    for (const reader of tabs) for (const writer of tabs) expect(await history.get(reader, `ws${writer.client}-2`)).toBe('v2');
    history.expectLinearizable();
  } finally {
    await first.close();
    await second.close();
    await signaling.close();
  }
});
