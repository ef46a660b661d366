// The WebRTC transport in Chromium: the browser's own WebRTC under simple-peer, members in
// one page finding each other through BroadcastChannel signaling (no server).

import { describe, expect, it } from 'vitest';
import { BroadcastChannelSignaling } from '../../adapters/signaling/broadcast-channel.ts';
import { WebRtcTransport } from '../../adapters/transport/webrtc/index.ts';
import { MessageType, newMessage, type MemberId, type Message } from '../../src/raft/types.ts';
import type { Transport } from '../../src/seams.ts';
import { waitFor } from '../helpers/wait.ts';
import { transportCompliance } from './compliance.ts';

let clusters = 0;
/** Each test gets its own cluster name, so a closing cluster's goodbyes reach nobody else. */
const freshCluster = () => `browser-${++clusters}-${Math.random().toString(36).slice(2, 8)}`;

async function open(cluster: string, id: MemberId, token = 'browser-token', logs: string[] = []): Promise<WebRtcTransport> {
  const log = (level: string, msg: string) => logs.push(`${level}: ${msg}`);
  return WebRtcTransport.open({ id, signaling: new BroadcastChannelSignaling({ cluster, token, id }, log), log });
}

transportCompliance('webrtc (Chromium, BroadcastChannel signaling)', async (ids) => {
  const cluster = freshCluster();
  const byId = new Map<MemberId, WebRtcTransport>();
  for (const id of ids) byId.set(id, await open(cluster, id));
  for (const [id, t] of byId) for (const peer of ids) if (peer !== id) t.addPeer(peer, '');
  return {
    transports: new Map<MemberId, Transport>(byId),
    async close() {
      for (const t of byId.values()) await t.close();
    },
  };
});

describe('webrtc transport in Chromium', () => {
  it('a member with another cluster token is ignored by the others', async () => {
    const cluster = freshCluster();
    const logs: string[] = [];
    const a = await open(cluster, 1, 'browser-token', logs);
    const stranger = await open(cluster, 2, 'wrong-token');
    try {
      const inbox: Message[] = [];
      a.start((m) => inbox.push(m));
      stranger.start(() => {});
      a.addPeer(2, '');
      stranger.addPeer(1, '');
      const hb = newMessage(MessageType.Heartbeat, 1, 2, 1);
      stranger.send([hb]);
      await waitFor('member 1 to log the stranger', () => logs.some((l) => l.includes('ignoring member 2: it presents another cluster token')));
      await new Promise((r) => setTimeout(r, 500));
      expect([a.isConnected(2), stranger.isConnected(1), inbox]).toEqual([false, false, []]);
    } finally {
      await a.close();
      await stranger.close();
    }
  });

  it('pagehide tears the links down, and the peers see it at once', async () => {
    const cluster = freshCluster();
    const a = await open(cluster, 1);
    const b = await open(cluster, 2);
    try {
      a.addPeer(2, '');
      b.addPeer(1, '');
      await waitFor('the link', () => a.isConnected(2) && b.isConnected(1));
      window.dispatchEvent(new PageTransitionEvent('pagehide'));
      await waitFor('member 2 to see the link drop', () => !b.isConnected(1), 3000);
      expect(a.isConnected(2)).toBe(false);
    } finally {
      await a.close();
      await b.close();
    }
  });
});
