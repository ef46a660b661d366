// The demo's in-page cluster, in Node: its fault controls act on real members, and its view and
// message stream report what the members really do.

import { afterEach, describe, expect, it } from 'vitest';
import { clusterLeader, type ClusterView, type WireMessage } from '../../demo/src/cluster.ts';
import { InPageCluster } from '../../demo/src/in-page-cluster.ts';
import { waitFor } from '../helpers/wait.ts';

const fast = { flightMs: 2, tickMs: 10, heartbeatTicks: 1, electionTicks: 10 };
let cluster: InPageCluster | null = null;

afterEach(async () => {
  await cluster?.close();
  cluster = null;
});

/** The leader every running member outside `except` agrees on. */
function agreed(view: ClusterView, except: number[] = []): number {
  const running = view.members.filter((m) => m.liveness === 'running' && !except.includes(m.id));
  const leaders = running.filter((m) => m.role === 'leader');
  if (leaders.length !== 1) return 0;
  return running.every((m) => m.leader === leaders[0].id && m.term === leaders[0].term) ? leaders[0].id : 0;
}

describe('in-page cluster', () => {
  it('elects one leader, reports messages, and serves the client', async () => {
    cluster = await InPageCluster.start(fast);
    const seen: WireMessage[] = [];
    cluster.onMessage((m) => seen.push(m));
    const leader = await waitFor('a leader', () => agreed(cluster!.view()));
    await cluster.client.put('k').value('v');
    expect(await cluster.client.get('k')).toBe('v');
    await waitFor('heartbeats', () => seen.some((m) => m.kind === 'heartbeat' && m.from === leader && !m.response));
    await waitFor('an append with the put', () => seen.some((m) => m.kind === 'append' && m.from === leader && m.entries > 0));
    expect(seen.every((m) => !m.dropped)).toBe(true);
    await waitFor('every member applied the put', () => cluster!.view().members.every((m) => m.revision === 2));
  });

  it('isolating the leader elects another; healing makes the old one follow; cut links drop messages', async () => {
    cluster = await InPageCluster.start(fast);
    const first = await waitFor('a leader', () => agreed(cluster!.view()));
    const dropped: WireMessage[] = [];
    cluster.onMessage((m) => m.dropped && dropped.push(m));
    await cluster.act('isolate', first);
    expect(cluster.view().members.find((m) => m.id === first)!.reachable).toEqual([]);
    expect(cluster.view().cutLinks).toHaveLength(2);
    const second = await waitFor('a new leader', () => agreed(cluster!.view(), [first]), 10_000);
    expect(second).not.toBe(first);
    expect(dropped.some((m) => m.from === first || m.to === first)).toBe(true);
    await cluster.act('heal', first);
    expect(cluster.view().cutLinks).toEqual([]);
    // Whoever leads after the heal (normally `second`), everyone agrees and the old leader follows.
    await waitFor('the old leader follows', () => {
      const view = cluster!.view();
      const leader = agreed(view);
      return leader !== 0 && leader !== first;
    }, 10_000);
  });

  it('a crashed member keeps its synced log and catches up after a restart; a paused one resumes', async () => {
    cluster = await InPageCluster.start(fast);
    const leader = await waitFor('a leader', () => agreed(cluster!.view()));
    const victim = cluster.view().members.find((m) => m.id !== leader)!.id;
    await cluster.client.put('before').value('1');
    await waitFor('the victim applied it', () => cluster!.view().members.find((m) => m.id === victim)!.revision === 2);
    await cluster.act('crash', victim);
    expect(cluster.view().members.find((m) => m.id === victim)!.liveness).toBe('crashed');
    expect(cluster.can('restart', victim)).toBe(true);
    for (let i = 0; i < 60; i++) await cluster.client.put(`while-down/${i}`).value('x'); // past a snapshot
    const snapshots: WireMessage[] = [];
    cluster.onMessage((m) => m.kind === 'snapshot' && snapshots.push(m));
    await cluster.act('restart', victim);
    // Generous: on a loaded CI machine, catching up means a probe, a rejection and a snapshot
    // sent again (the first ones went out while the member was down), each a few ticks apart.
    await waitFor('the restarted member caught up', () => cluster!.view().members.find((m) => m.id === victim)!.revision === 62, 30_000);
    // It was behind the leader's last snapshot (every 40 entries), so it caught up from one.
    expect(snapshots.some((m) => m.to === victim && !m.dropped)).toBe(true);

    await cluster.act('pause', leader);
    expect(cluster.view().members.find((m) => m.id === leader)!.liveness).toBe('paused');
    const next = await waitFor('a leader while the old one is paused', () => agreed(cluster!.view(), [leader]), 10_000);
    expect(next).not.toBe(leader);
    await cluster.act('resume', leader);
    await waitFor('the resumed member follows', () => agreed(cluster!.view()) === next, 10_000);
  }, 90_000);

  it('adds a member as a learner and promotes it; removes a member', async () => {
    cluster = await InPageCluster.start(fast);
    await waitFor('a leader', () => agreed(cluster!.view()));
    await cluster.client.put('k').value('v');
    await cluster.addMember();
    expect(cluster.view().members.map((m) => m.id)).toEqual([1, 2, 3, 4]);
    await waitFor('the new member is promoted', () => {
      const m = cluster!.view().members.find((x) => x.id === 4)!;
      return m.role === 'follower' && m.revision === 2;
    }, 10_000);
    const leader = clusterLeader(cluster.view());
    const removed = cluster.view().members.find((m) => m.id !== leader)!.id;
    await cluster.act('remove', removed);
    expect(cluster.view().members.map((m) => m.id)).not.toContain(removed);
    await cluster.client.put('after').value('1');
    expect(await cluster.client.get('after')).toBe('1');

    // The leader itself can be removed: it steps aside and the rest elect another.
    const oldLeader = clusterLeader(cluster.view());
    await cluster.act('remove', oldLeader);
    expect(cluster.view().members).toHaveLength(2);
    const newLeader = await waitFor('a leader of the two left', () => agreed(cluster!.view()), 10_000);
    expect(newLeader).not.toBe(oldLeader);
    await cluster.client.put('after-leader-left').value('1');
    expect(await cluster.client.get('after-leader-left')).toBe('1');
  });
});
