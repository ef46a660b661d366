// The demo's entry: start the cluster this tab shows, draw the page, and expose `window.meshkv`
// so scripts and tests can drive it without scraping the page.

import type { Client } from '../../src/client/index.ts';
import type { ClusterView, DemoCluster, MemberView } from './cluster.ts';
import { InPageCluster, inPageDefaults, inPageMembersMax } from './in-page-cluster.ts';
import { TabCluster } from './tab-cluster.ts';
import { fetchAdmission } from '../../adapters/browser/admission.ts';
import { mountApp } from './ui/app.ts';

/** What `window.meshkv` holds. */
export interface MeshkvHandle {
  mode: DemoCluster['mode'];
  /** Every member's status as this tab sees it (the tab's own member is `self`). */
  status(): ClusterView;
  /** This tab's own member (null in the in-page mode, where the tab runs them all). */
  self(): MemberView | null;
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

/** The cluster name of tabs that form a cluster among themselves (?signaling=broadcast). */
const defaultBroadcastCluster = 'meshkv-cluster';

/**
 * Whether a meshkv Node member served this page: its JSON gateway answers GET /health on the
 * same origin (a static server or Vite answers with a page or 404).
 */
async function servedByNodeMember(): Promise<boolean> {
  try {
    const res = await fetch(new URL('/health', location.href), { cache: 'no-store' });
    const body: unknown = await res.json();
    return typeof body === 'object' && body !== null && 'health' in body;
  } catch {
    return false;
  }
}

/**
 * Which cluster this tab shows. `?mode=in-page` runs a whole cluster in this tab; `?mode=tab`
 * makes the tab a member (through the Node member's signaling when it served the page, else
 * `?signaling=broadcast`: the tabs of this browser alone). Without `mode`, a page a Node member
 * served is a tab member and any other page runs the in-page cluster.
 */
async function startCluster(params: URLSearchParams): Promise<DemoCluster> {
  const mode = params.get('mode');
  if (mode !== null && mode !== 'in-page' && mode !== 'tab') throw new Error(`?mode=${mode}: choose in-page or tab`);
  const signalingParam = params.get('signaling');
  if (signalingParam !== null && signalingParam !== 'broadcast') throw new Error(`?signaling=${signalingParam}: only 'broadcast' may be chosen (the default is the serving member's endpoint)`);
  const node = mode === 'in-page' || signalingParam === 'broadcast' ? false : await servedByNodeMember();
  if (mode === 'in-page' || (mode === null && !node)) {
    const size = intParam(params, 'members', inPageDefaults.size, 1, inPageMembersMax);
    const flightMs = intParam(params, 'flight', inPageDefaults.flightMs, 0, flightMsMax);
    return InPageCluster.start({ size, flightMs });
  }
  if (!node && signalingParam !== 'broadcast') throw new Error('?mode=tab: no meshkv member served this page; add &signaling=broadcast for a cluster of this browser’s tabs');
  if (node) {
    // The serving member gives its own pages what they need to join its signaling.
    const admission = await fetchAdmission(location.origin);
    return TabCluster.start({ ...admission, servingMember: location.origin });
  }
  // Tabs of one browser on their own: same-origin pages, which share storage anyway, need no secret of their own.
  const cluster = params.get('cluster') ?? defaultBroadcastCluster;
  return TabCluster.start({ cluster, secret: cluster, signaling: 'broadcast' });
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
  const cluster = await startCluster(params);
  const { kv } = mountApp(root, cluster);
  await kv.start();
  window.meshkv = {
    mode: cluster.mode,
    status: () => cluster.view(),
    self: () => {
      const view = cluster.view();
      return view.members.find((m) => m.id === view.self) ?? null;
    },
    client: cluster.client,
    cluster,
  };
  document.body.dataset.ready = 'true';
}

main().catch((err: Error) => {
  const root = document.getElementById('app')!;
  root.textContent = `The demo could not start: ${err.message}`;
  root.className = 'fatal';
  throw err;
});
