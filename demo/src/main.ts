// The demo's entry: start the cluster this tab shows, draw the page, and expose `window.meshkv`
// so scripts and tests can drive it without scraping the page.

import type { Client } from '../../src/client/index.ts';
import type { ClusterView, DemoCluster } from './cluster.ts';
import { InPageCluster, inPageMembersMax } from './in-page-cluster.ts';
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

async function main(): Promise<void> {
  const root = document.getElementById('app')!;
  const size = Number(new URLSearchParams(location.search).get('members') ?? 3);
  if (!(Number.isInteger(size) && size >= 1 && size <= inPageMembersMax)) {
    throw new Error(`?members=${size}: choose a whole number from 1 to ${inPageMembersMax}`);
  }
  const cluster = await InPageCluster.start({ size });
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
