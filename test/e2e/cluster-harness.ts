// Driving a cluster of browser tabs from Playwright: each tab runs test/e2e/fixtures/cluster.html
// (one member, opened with openBrowserMember); the test process records every client
// operation with one clock (performance.now() here, around each page.evaluate) in the shape
// test/check/history.ts describes, for checkLinearizable.

import { expect, type BrowserContext, type Page } from '@playwright/test';
import type { BrowserMemberOptions, BrowserMemberStatus } from '../../adapters/browser/index.ts';
import type { HistoryOp, OpInput, OpOutput } from '../check/history.ts';
import { checkLinearizable } from '../check/index.ts';
import { waitFor } from '../helpers/wait.ts';
import type {} from './fixtures/cluster-page.ts';

export interface Tab {
  page: Page;
  id: number;
  /** Index in the test's list of tabs: the history's client number. */
  client: number;
}

export type MemberOptions = Omit<BrowserMemberOptions, 'log'>;

/** Opens a tab on `url` and its member; resolves once the member is open (founded, joining or restarted). */
export async function openTab(context: BrowserContext, url: string, options: MemberOptions, client: number): Promise<Tab> {
  const page = await context.newPage();
  page.on('pageerror', (err) => console.error(`tab ${client}: ${err.message}`));
  await page.goto(url);
  await page.waitForFunction(() => window.meshkvTab !== undefined);
  const status = await page.evaluate((o) => window.meshkvTab!.open(o), options);
  return { page, id: status.id, client };
}

/** Opens `n` tabs at once (they race to found the cluster). */
export function openTabs(context: BrowserContext, url: string, options: MemberOptions, n: number, firstClient = 0): Promise<Tab[]> {
  return Promise.all(Array.from({ length: n }, (_, i) => openTab(context, url, options, firstClient + i)));
}

export function status(tab: Tab): Promise<BrowserMemberStatus> {
  return tab.page.evaluate(() => window.meshkvTab!.status());
}

/**
 * Waits until every tab is a voter of one configuration of `tabs.length` voters and they all
 * follow the same leader, which is one of them. Returns the leader's tab.
 */
export function waitForCluster(tabs: Tab[], timeoutMs = 30_000): Promise<Tab> {
  const ids = tabs.map((t) => t.id).sort((a, b) => a - b);
  return waitFor(
    `tabs ${tabs.map((t) => t.client).join(', ')} to be voters of one cluster with one leader`,
    async () => {
      const all = await Promise.all(tabs.map(status));
      const lead = all[0].leader;
      return all.every((s) => s.leader === lead && s.joined && sameIds(s.voters, ids)) && tabs.find((t) => t.id === lead);
    },
    timeoutMs,
  );
}

/** Waits until the tabs agree on a leader among them other than `not`; returns it. */
export function waitForLeader(tabs: Tab[], not: number, timeoutMs: number): Promise<Tab> {
  return waitFor(
    `tabs ${tabs.map((t) => t.client).join(', ')} to agree on a leader other than ${not}`,
    async () => {
      const all = await Promise.all(tabs.map(status));
      const lead = all[0].leader;
      return lead !== not && all.every((s) => s.leader === lead) && tabs.find((t) => t.id === lead);
    },
    timeoutMs,
  );
}

function sameIds(a: readonly number[], sorted: readonly number[]): boolean {
  return a.length === sorted.length && [...a].sort((x, y) => x - y).every((v, i) => v === sorted[i]);
}

/** Records every operation the tabs' clients make. */
export class History {
  readonly ops: HistoryOp[] = [];

  /** A put; a failure leaves its outcome unknown (it may still commit). Returns whether it was acknowledged. */
  async put(tab: Tab, key: string, value: string): Promise<boolean> {
    const input: OpInput = { f: 'put', key, value };
    const call = performance.now();
    try {
      const r = await tab.page.evaluate(([k, v]) => window.meshkvTab!.put(k, v), [key, value] as const);
      this.record(tab, call, performance.now(), input, { f: 'put', revision: r.revision });
      return true;
    } catch {
      this.record(tab, call, Infinity, input, null);
      return false;
    }
  }

  /** A linearizable get; a failed read changed nothing and is left out. Returns the value, or undefined if it failed. */
  async get(tab: Tab, key: string): Promise<string | null | undefined> {
    const call = performance.now();
    try {
      const r = await tab.page.evaluate((k) => window.meshkvTab!.get(k), key);
      this.record(tab, call, performance.now(), { f: 'get', key }, { f: 'get', value: r.value, revision: r.revision });
      return r.value;
    } catch {
      return undefined;
    }
  }

  /** Asserts the recorded history is linearizable. */
  expectLinearizable(): void {
    const result = checkLinearizable(this.ops);
    expect(result, JSON.stringify(result).slice(0, 2000)).toMatchObject({ ok: true });
  }

  private record(tab: Tab, call: number, ret: number, input: OpInput, output: OpOutput | null): void {
    this.ops.push({ id: this.ops.length, client: tab.client, call, ret, input, output });
  }
}

/** Each tab writes `perTab` keys `<prefix><client>-<i>` and reads each back; every op recorded. */
export async function writeAndReadBack(history: History, tabs: Tab[], prefix: string, perTab: number): Promise<void> {
  await Promise.all(
    tabs.map(async (tab) => {
      for (let i = 0; i < perTab; i++) {
        const key = `${prefix}${tab.client}-${i}`;
        expect(await history.put(tab, key, `v${i}`)).toBe(true);
        expect(await history.get(tab, key)).toBe(`v${i}`);
      }
    }),
  );
}
