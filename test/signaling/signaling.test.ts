// Signaling without WebRTC: who sees whom, what is relayed to whom, and who is refused.
// The WebSocket server and client run on 127.0.0.1; BroadcastChannel is Node's own.

import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { BroadcastChannelSignaling } from '../../adapters/signaling/broadcast-channel.ts';
import type { Signaling } from '../../adapters/signaling/types.ts';
import { WebSocketSignaling } from '../../adapters/signaling/ws-client.ts';
import { SignalingServer } from '../../adapters/signaling/ws-server.ts';
import type { MemberId } from '../../src/raft/types.ts';
import { freePort } from '../helpers/processes.ts';
import { waitFor } from '../helpers/wait.ts';

interface Joined {
  s: Signaling;
  events: string[];
}

async function joinWith(s: Signaling): Promise<Joined> {
  const events: string[] = [];
  await s.join({
    onSignal: (from, data) => events.push(`signal from ${from}: ${JSON.stringify(data)}`),
    onPresence: (id, present) => events.push(`${id} ${present ? 'here' : 'gone'}`),
    onClosed: (reason) => events.push(`closed: ${reason}`),
  });
  return { s, events };
}

describe('websocket signaling', () => {
  const cleanups: (() => void | Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function serve(joinTimeoutMs?: number): Promise<string> {
    const server = new SignalingServer({ cluster: 'c', secret: 't', joinTimeoutMs });
    cleanups.push(() => server.close());
    return server.listen(0);
  }

  async function member(url: string, id: MemberId): Promise<Joined> {
    const j = await joinWith(new WebSocketSignaling({ url, cluster: 'c', secret: 't', id, WebSocket }));
    cleanups.push(() => j.s.close());
    return j;
  }

  it('announces members both ways, relays signals to the addressee only, and announces leaving', async () => {
    const url = await serve();
    const m1 = await member(url, 1);
    const m2 = await member(url, 2);
    const m3 = await member(url, 3);
    await waitFor('1 and 2 to see the others', () => m1.events.length === 2 && m2.events.length === 2);
    expect(m2.events).toEqual(['1 here', '3 here']);
    expect(m1.events).toEqual(['2 here', '3 here']);
    m1.s.send(2, { hello: 'two' });
    await waitFor('the signal', () => m2.events.length === 3);
    expect(m2.events[2]).toBe('signal from 1: {"hello":"two"}');
    m2.s.close();
    await waitFor('1 and 3 to see 2 go', () => m1.events.includes('2 gone') && m3.events.includes('2 gone'));
    expect(m3.events).toEqual(['1 here', '2 here', '2 gone']); // no signal: it was addressed to 2
  });

  it('stamps the sender from its join: a member cannot sign as another', async () => {
    const url = await serve();
    const m1 = await member(url, 1);
    const raw = new WebSocket(url);
    cleanups.push(() => raw.terminate());
    await new Promise((r) => raw.once('open', r));
    raw.send(JSON.stringify({ type: 'join', cluster: 'c', secret: 't', id: 5, key: 'raw-member-key-0005' }));
    raw.send(JSON.stringify({ type: 'signal', to: 1, from: 2, data: 'forged' }));
    await waitFor('the signal', () => m1.events.some((e) => e.startsWith('signal')));
    expect(m1.events).toEqual(['5 here', 'signal from 5: "forged"']);
  });

  it('closes a connection that does not join in time, or speaks out of turn', async () => {
    const url = await serve(200);
    const silent = new WebSocket(url);
    const closed = new Promise<[number, string]>((r) => silent.once('close', (code, reason) => r([code, reason.toString()])));
    expect(await closed).toEqual([4003, 'no join in time']);
    const rude = new WebSocket(url);
    await new Promise((r) => rude.once('open', r));
    const closedRude = new Promise<[number, string]>((r) => rude.once('close', (code, reason) => r([code, reason.toString()])));
    rude.send('not json');
    expect(await closedRude).toEqual([4003, 'not a JSON signaling message']);
  });

  /** A raw connection that joins as `id` with `key`; resolves with its first answer or its close. */
  async function rawJoin(url: string, id: MemberId, key: string): Promise<{ ws: WebSocket; answer: string; closes: string[] }> {
    const ws = new WebSocket(url);
    cleanups.push(() => ws.terminate());
    const closes: string[] = [];
    const answer = new Promise<string>((resolve) => {
      ws.once('message', (data) => resolve(String(data)));
      ws.on('close', (code, reason) => {
        closes.push(`${code} ${reason}`);
        resolve(`closed ${code} ${reason}`);
      });
    });
    await new Promise((r) => ws.once('open', r));
    ws.send(JSON.stringify({ type: 'join', cluster: 'c', secret: 't', id, key }));
    return { ws, answer: await answer, closes };
  }

  it('the first connection holds a member id: another key is turned away, the same key replaces it', async () => {
    const url = await serve();
    const first = await rawJoin(url, 2, 'first-member-key-2');
    expect(first.answer).toBe('{"type":"joined","members":[]}');
    const other = await rawJoin(url, 2, 'another-member-key-2');
    expect(other.answer).toBe('closed 4004 member id 2 is held by another connection');
    expect(first.closes).toEqual([]);
    const again = await rawJoin(url, 2, 'first-member-key-2');
    expect(again.answer).toBe('{"type":"joined","members":[]}');
    await waitFor('the first connection to be replaced', () => first.closes.length > 0);
    expect(first.closes).toEqual(['4002 replaced by a newer connection for member 2']);
  });

  it('a client turned away because its id is held retries, and joins once the holder is gone', async () => {
    const url = await serve();
    const holder = await rawJoin(url, 3, 'holder-member-key-3');
    const logs: string[] = [];
    const s = new WebSocketSignaling({ url, cluster: 'c', secret: 't', id: 3, WebSocket, reconnectDelayMsMin: 20, log: (_l, m) => logs.push(m) });
    cleanups.push(() => s.close());
    let joined = false;
    const joining = joinWith(s).then((j) => ((joined = true), j));
    await waitFor('a retry', () => logs.filter((l) => l.includes('member id 3 is held by another connection')).length >= 2);
    expect(joined).toBe(false);
    holder.ws.close();
    await joining;
  });

  it('after a join, a lost server is rejoined once it is back', async () => {
    const port = await freePort();
    const first = new SignalingServer({ cluster: 'c', secret: 't' });
    const url = await first.listen(port);
    const m1 = await member(url, 1);
    const m2 = await joinWith(new WebSocketSignaling({ url, cluster: 'c', secret: 't', id: 2, WebSocket, reconnectDelayMsMin: 20 }));
    cleanups.push(() => m2.s.close());
    await first.close();
    const second = new SignalingServer({ cluster: 'c', secret: 't' });
    cleanups.push(() => second.close());
    expect(await second.listen(port)).toBe(url);
    await waitFor('both members to rejoin', () => second.memberIds.length === 2, 10_000);
    // The server may count a member before that member's own side has seen its rejoin
    // confirmed, and signals sent before that are dropped (best effort): send until one arrives.
    let polls = 0;
    await waitFor('a signal through the new server', () => {
      if (polls++ % 20 === 0) m1.s.send(2, 'after the restart');
      return m2.events.includes('signal from 1: "after the restart"');
    }, 10_000);
  });

  it('reports an unreachable server', async () => {
    const url = await serve();
    const dead = url.replace(/:\d+\//, ':1/');
    await expect(joinWith(new WebSocketSignaling({ url: dead, cluster: 'c', secret: 't', id: 1, WebSocket }))).rejects.toThrow(
      `signaling server ${dead} closed the connection before the join (code 1006)`,
    );
  });
});

describe('broadcast-channel signaling', () => {
  it('members of one cluster and secret see each other; others do not', async () => {
    const cluster = `bc-${Math.random().toString(36).slice(2)}`;
    const logs: string[] = [];
    const a = await joinWith(new BroadcastChannelSignaling({ cluster, secret: 't', id: 1 }, (_l, m) => logs.push(m)));
    const b = await joinWith(new BroadcastChannelSignaling({ cluster, secret: 't', id: 2 }));
    const stranger = await joinWith(new BroadcastChannelSignaling({ cluster, secret: 'other', id: 3 }));
    const elsewhere = await joinWith(new BroadcastChannelSignaling({ cluster: `${cluster}-x`, secret: 't', id: 4 }));
    try {
      await waitFor('1 and 2 to see each other', () => a.events.includes('2 here') && b.events.includes('1 here'));
      a.s.send(2, 'offer');
      stranger.s.send(1, 'sneaky');
      await waitFor('the signal', () => b.events.some((e) => e.startsWith('signal')));
      b.s.close();
      await waitFor('1 to see 2 go', () => a.events.includes('2 gone'));
      expect(a.events).toEqual(['2 here', '2 gone']);
      expect(b.events).toEqual(['1 here', 'signal from 1: "offer"']);
      expect([stranger.events, elsewhere.events]).toEqual([[], []]);
      expect(logs).toEqual(['broadcast-channel signaling 1: ignoring member 3: it presents another secret']);
    } finally {
      for (const j of [a, b, stranger, elsewhere]) j.s.close();
    }
  });
});
