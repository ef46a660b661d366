// Founding over real WebSocket signaling (adapters/browser/founding.ts, foundOrJoin): a tab
// with no state founds a cluster only when nobody answers its probe AND the signaling server
// grants it the founding, which it grants once per cluster. The orderings are controlled, not
// timed: a member "too slow to answer" holds its probe replies until the server has refused
// the asker's founding claim, i.e. until after the asker's probe window ran out. Before the
// server decided founding, a tab whose probe went unanswered in time founded a cluster of its
// own beside a Node member (seen at load ~40 in test/e2e/mixed-cluster.test.ts), and the next
// tab joined that one: two clusters, one name.

import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { foundOrJoin } from '../../adapters/browser/founding.ts';
import { ControlChannel, type BootstrapMember } from '../../adapters/signaling/control.ts';
import { WebSocketSignaling } from '../../adapters/signaling/ws-client.ts';
import { SignalingServer } from '../../adapters/signaling/ws-server.ts';
import { freePort } from '../helpers/processes.ts';
import { waitFor } from '../helpers/wait.ts';
import type { MemberId } from '../../src/raft/types.ts';

const cluster = 'founding-test';
const secret = 'founding-secret';
/** Short, so the windows run out quickly: the orderings below do not depend on it. */
const probeWindowMs = 50;
const cleanups: (() => Promise<void> | void)[] = [];

afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups.length = 0;
});

/** A server whose log lines the test can wait on. */
async function server(founder?: MemberId): Promise<{ s: SignalingServer; url: string; lines: string[]; onLine: (fn: (line: string) => void) => void }> {
  const lines: string[] = [];
  const listeners: ((line: string) => void)[] = [];
  const s = new SignalingServer({ cluster, secret, ...(founder === undefined ? {} : { founder }), log: (_level, msg) => {
    lines.push(msg);
    for (const fn of listeners) fn(msg);
  } });
  const url = await s.listen(0);
  cleanups.push(() => s.close());
  return { s, url, lines, onLine: (fn) => listeners.push(fn) };
}

async function tabChannel(url: string, id: MemberId): Promise<ControlChannel> {
  const channel = new ControlChannel(new WebSocketSignaling({ url, cluster, secret, id, WebSocket }));
  await channel.transportSignaling.join({ onSignal: () => {}, onPresence: () => {} });
  cleanups.push(() => channel.close());
  return channel;
}

/** Answers probes on `channel` as a member of the cluster founded with `bootstrap`. */
function answerProbes(channel: ControlChannel, bootstrap: BootstrapMember[], gate: (asker: MemberId) => Promise<void> = async () => {}): void {
  channel.onControl((from, msg) => {
    if (msg.kind !== 'probe') return;
    void gate(from).then(() => channel.send(from, { kind: 'probe-reply', inCluster: true, leader: bootstrap[0].id, voters: bootstrap.map((b) => b.id), learners: [], bootstrapMembers: bootstrap }));
  });
}

const start = (channel: ControlChannel, id: MemberId, log: string[] = []) => foundOrJoin({ id, name: `tab-${id}`, channel, probeWindowMs, log: (_l, m) => log.push(m) });

describe('founding over WebSocket signaling', () => {
  it('tabs beside a Node member too slow to answer within the probe window join its cluster; none founds another', async () => {
    const hostId = 100;
    const { s, url, onLine } = await server(hostId);
    const host = new ControlChannel(s.local(hostId));
    await host.transportSignaling.join({ onSignal: () => {}, onPresence: () => {} });
    cleanups.push(() => host.close());
    const hostBootstrap = [{ id: hostId, name: 'solo', peerURLs: ['http://127.0.0.1:2380'] }];
    // The host answers a tab's probes only once the server refused that tab's founding claim:
    // later than any probe window, as a member under heavy load would.
    const refused = new Map<MemberId, () => void>();
    const refusal = (id: MemberId) => new Promise<void>((resolve) => refused.set(id, resolve));
    const gates = new Map<MemberId, Promise<void>>([1, 2].map((id) => [id, refusal(id)]));
    onLine((line) => {
      const m = /^signaling server: member (\d+) may not found/.exec(line);
      if (m) refused.get(Number(m[1]))?.();
    });
    answerProbes(host, hostBootstrap, (asker) => gates.get(asker) ?? Promise.resolve());

    const logs: string[] = [];
    const [a, b] = [await tabChannel(url, 1), await tabChannel(url, 2)];
    const [first, second] = await Promise.all([start(a, 1, logs), start(b, 2, logs)]);
    expect(first).toEqual({ bootstrapMembers: hostBootstrap, founded: false });
    expect(second).toEqual({ bootstrapMembers: hostBootstrap, founded: false });
    expect(logs).toContain(`signaling names member ${hostId} the founder of this cluster, and no member of it answered within ${probeWindowMs} ms; waiting for one to answer`);
  });

  it('tabs that open at once with nobody there: exactly one founds, the others join its cluster', async () => {
    const { url } = await server();
    const ids = [1, 2, 3, 4];
    const channels = await Promise.all(ids.map((id) => tabChannel(url, id)));
    const plans = await Promise.all(
      ids.map(async (id, i) => {
        const plan = await start(channels[i], id);
        // A founder's member is up and answers probes from then on, as a tab's does.
        if (plan.founded) answerProbes(channels[i], plan.bootstrapMembers);
        return plan;
      }),
    );
    const founders = ids.filter((_, i) => plans[i].founded);
    expect(founders).toHaveLength(1);
    for (const plan of plans) expect(plan.bootstrapMembers).toEqual([{ id: founders[0], name: `tab-${founders[0]}`, peerURLs: [`webrtc://${founders[0]}`] }]);
  });

  it('the server grants the founding once, for its lifetime: the founder asking again gets it again, nobody else does', async () => {
    const { s, url } = await server();
    const a = await tabChannel(url, 7);
    const b = await tabChannel(url, 8);
    expect(await a.claimFounding!()).toBe(7);
    expect(await b.claimFounding!()).toBe(7);
    expect(await a.claimFounding!()).toBe(7);
    expect(s.claimFounding(9)).toBe(7);
    // A server a Node member hosts names that member, whoever asks first.
    const hosted = await server(100);
    const c = await tabChannel(hosted.url, 1);
    expect(await c.claimFounding!()).toBe(100);
  });

  it('a claim made while the server is away is answered once the member has rejoined it', async () => {
    const port = await freePort();
    const first = new SignalingServer({ cluster, secret, founder: 100 });
    const url = await first.listen(port);
    const channel = new ControlChannel(new WebSocketSignaling({ url, cluster, secret, id: 3, WebSocket, reconnectDelayMsMin: 20 }));
    await channel.transportSignaling.join({ onSignal: () => {}, onPresence: () => {} });
    cleanups.push(() => channel.close());
    await first.close();
    const claim = channel.claimFounding!();
    const second = new SignalingServer({ cluster, secret, founder: 100 });
    cleanups.push(() => second.close());
    await second.listen(port);
    expect(await claim).toBe(100);
  });

  it('a restarted server, which forgot its founder, learns it again from the founder rejoining: a new tab may not found', async () => {
    const port = await freePort();
    const first = new SignalingServer({ cluster, secret });
    const url = await first.listen(port);
    const founder = new ControlChannel(new WebSocketSignaling({ url, cluster, secret, id: 5, WebSocket, reconnectDelayMsMin: 20 }));
    await founder.transportSignaling.join({ onSignal: () => {}, onPresence: () => {} });
    cleanups.push(() => founder.close());
    expect(await founder.claimFounding!()).toBe(5);
    await first.close();
    const lines: string[] = [];
    const second = new SignalingServer({ cluster, secret, log: (_l, m) => lines.push(m) });
    cleanups.push(() => second.close());
    await second.listen(port);
    await waitFor('the founder to claim again on the new server', () => lines.includes(`signaling server: member 5 founds cluster "${cluster}"`), 10_000);
    const newcomer = await tabChannel(url, 6);
    expect(await newcomer.claimFounding!()).toBe(5);
  });
});
