// The demo's entry: start the cluster this tab shows, draw the page, and expose `window.meshkv`
// so scripts and tests can drive it without scraping the page.

import type { Client } from '../../src/client/index.ts';
import type { ClusterView, DemoCluster } from './cluster.ts';
import { InPageCluster, inPageDefaults, inPageMembersMax } from './in-page-cluster.ts';
import { mountApp } from './ui/app.ts';

/** What `window.meshkv` holds. */
export interface MeshkvHandle {
  mode: DemoCluster['mode'];
  /** Every member's status as this tab sees it (the tab's own member is `self`). */
  status(): ClusterView;
  /** A client of the cluster: src/client's whole API. */
  client: Client;
  /** Fault controls and the message stream, as the page uses them. */
  cluster: DemoCluster;
}

declare global {
  interface Window {
    meshkv?: MeshkvHandle;
  }
}

/** Longest flight time allowed: a round trip must stay well inside the shortest election timeout. */
const flightMsMax = 400;

/** A whole-number query parameter within [min, max], or `fallback` when absent. */
function intParam(params: URLSearchParams, name: string, fallback: number, min: number, max: number): number {
  const raw = params.get(name);
  if (raw === null) return fallback;
  const n = Number(raw);
  if (!(Number.isInteger(n) && n >= min && n <= max)) throw new Error(`?${name}=${raw}: choose a whole number from ${min} to ${max}`);
  return n;
}

async function main(): Promise<void> {
  const root = document.getElementById('app')!;
  const params = new URLSearchParams(location.search);
  const size = intParam(params, 'members', inPageDefaults.size, 1, inPageMembersMax);
  const flightMs = intParam(params, 'flight', inPageDefaults.flightMs, 0, flightMsMax);
  const cluster = await InPageCluster.start({ size, flightMs });
  const { kv } = mountApp(root, cluster);
  await kv.start();
  window.meshkv = { mode: cluster.mode, status: () => cluster.view(), client: cluster.client, cluster };
  document.body.dataset.ready = 'true';
}

main().catch((err: Error) => {
  const root = document.getElementById('app')!;
  root.textContent = `The demo could not start: ${err.message}`;
  root.className = 'fatal';
  throw err;
});
