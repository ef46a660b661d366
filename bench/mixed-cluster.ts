// Writes per second and commit latency of the two mixed clusters of issue 5: 2 Node members
// (fs-wal, TCP between them) + 1 tab, and 1 Node member + 2 tabs (IndexedDB), tabs in their own
// browser contexts joining through the first Node member's signaling, WebRTC between tabs and
// Node members. Run: npm run bench:mixed [-- --seconds 5]. Prints markdown tables for
// docs/benchmarks.md. The Node members run with --tabs-may-outvote, so the tabs vote (by default
// they would stay learners, issue 12).
//
// A put's latency is measured where it is issued, from the call to its acknowledgement (the
// entry is durable on a majority and applied on the member that answers): in the tab for a tab
// writer, in this process over gRPC for a Node writer (which adds a loopback gRPC round trip).

import type { Page } from '@playwright/test';
import { connectGrpc } from '../adapters/etcd-api/grpc-connection.ts';
import { putLoad, type PutLoadResult } from './put-load.ts';
import { openTab, status, type Tab } from '../test/e2e/cluster-harness.ts';
import { admissionSecret, clusterToken, startNodes, type NodeCluster } from '../test/e2e/mixed-harness.ts';
import { launchBrowser, servePages } from '../test/e2e/serve.ts';
import { waitFor } from '../test/helpers/wait.ts';

const seconds = Number(process.argv[process.argv.indexOf('--seconds') + 1]) || 5;
const valueBytes = 128;

/** One Writer issues puts from `concurrency` loops for `durationMs`. */
interface Writer {
  name: string;
  load(durationMs: number, concurrency: number, prefix: string): Promise<PutLoadResult>;
}

function tabWriter(tab: Tab): Writer {
  const page: Page = tab.page;
  return {
    name: `tab ${tab.client}`,
    load: (d, c, p) => page.evaluate(([d, c, p]) => window.meshkvTab!.writeLoad(d, c, p), [d, c, p] as const),
  };
}

function nodeWriter(name: string, endpoint: string): Writer {
  return {
    name,
    async load(durationMs, concurrency, prefix) {
      const client = connectGrpc([endpoint], { callTimeoutMs: 5000 });
      try {
        return await putLoad(client, durationMs, concurrency, prefix, valueBytes);
      } finally {
        client.close();
      }
    },
  };
}

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function runCases(title: string, cases: { label: string; writers: Writer[]; concurrency: number }[]): Promise<void> {
  console.log(`\n${title}, ${seconds} s per case, ${valueBytes}-byte values\n`);
  console.log('| writers | puts/s | p50 ms | p99 ms | failed |');
  console.log('|---|---:|---:|---:|---:|');
  for (const c of cases) {
    const results = await Promise.all(c.writers.map((w) => w.load(seconds * 1000, c.concurrency, `${c.label}/${w.name}/`)));
    const latencies = results.flatMap((r) => r.latenciesMs).sort((a, b) => a - b);
    const failures = results.reduce((n, r) => n + r.failures, 0);
    console.log(`| ${c.label} | ${Math.round(latencies.length / seconds)} | ${percentile(latencies, 50).toFixed(1)} | ${percentile(latencies, 99).toFixed(1)} | ${failures} |`);
  }
}

/** Waits until every tab is a voter of a configuration of `voters` members with a leader. */
async function waitForVoters(tabs: Tab[], voters: number): Promise<number> {
  let leader = 0;
  await waitFor(
    `${tabs.length} tabs to be voters of ${voters}`,
    async () => {
      const all = await Promise.all(tabs.map(status));
      leader = all[0].leader;
      return all.every((s) => s.joined && s.voters.length === voters && s.leader !== 0 && s.leader === leader);
    },
    60_000,
  );
  return leader;
}

async function main(): Promise<void> {
  const server = await servePages();
  const browser = await launchBrowser();
  const pageUrl = server.url('test/e2e/fixtures/cluster.html');
  const origin = new URL(pageUrl).origin;
  let nodes: NodeCluster | null = null;
  const openMixedTab = async (signaling: string, client: number) =>
    openTab(await browser.newContext(), pageUrl, { cluster: clusterToken, secret: admissionSecret, signaling }, client);
  try {
    nodes = await startNodes(['n1', 'n2'], origin, ['--tabs-may-outvote']);
    const tab = await openMixedTab(nodes.signalingUrl, 0);
    const leader = await waitForVoters([tab], 3);
    const [n1, n2] = nodes.members.map((m) => nodeWriter(m.spec.name, m.endpoint));
    const nodeLeader = leader === nodes.ids[0] ? n1 : leader === nodes.ids[1] ? n2 : null;
    await n1.load(1000, 4, 'warm/');
    await runCases(`2 Node members + 1 tab (leader: ${nodeLeader?.name ?? 'the tab'})`, [
      { label: 'Node leader, 1 writer', writers: [nodeLeader ?? n1], concurrency: 1 },
      { label: 'Node leader, 16 writers', writers: [nodeLeader ?? n1], concurrency: 16 },
      { label: 'tab, 16 writers', writers: [tabWriter(tab)], concurrency: 16 },
      { label: 'every member, 16 writers each', writers: [n1, n2, tabWriter(tab)], concurrency: 16 },
    ]);
    await nodes.procs.cleanup();
    for (const c of browser.contexts()) await c.close();

    nodes = await startNodes(['solo'], origin, ['--tabs-may-outvote']);
    const tabs = [await openMixedTab(nodes.signalingUrl, 0), await openMixedTab(nodes.signalingUrl, 1)];
    const soloLeader = await waitForVoters(tabs, 3);
    const solo = nodeWriter('solo', nodes.members[0].endpoint);
    await solo.load(1000, 4, 'warm/');
    await runCases(`1 Node member + 2 tabs (leader: ${soloLeader === nodes.ids[0] ? 'the Node member' : 'a tab'})`, [
      { label: 'Node member, 1 writer', writers: [solo], concurrency: 1 },
      { label: 'Node member, 16 writers', writers: [solo], concurrency: 16 },
      { label: 'one tab, 16 writers', writers: [tabWriter(tabs[0])], concurrency: 16 },
      { label: 'every member, 16 writers each', writers: [solo, ...tabs.map(tabWriter)], concurrency: 16 },
    ]);
  } finally {
    await nodes?.procs.cleanup();
    await browser.close();
    await server.close();
  }
}

await main();
