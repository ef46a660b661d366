// The WebRTC transport in Chromium: the browser's own RTCPeerConnection (rtc-session.ts), members in
// one page finding each other through BroadcastChannel signaling (no server), and a tab
// linking to a Node member (webrtc-node-peer.global-setup.ts) through WebSocket signaling.

import { describe, expect, inject, it } from 'vitest';
import { BroadcastChannelSignaling } from '../../adapters/signaling/broadcast-channel.ts';
import { SignalingError } from '../../adapters/signaling/types.ts';
import { WebSocketSignaling } from '../../adapters/signaling/ws-client.ts';
import { WebRtcTransport } from '../../adapters/transport/webrtc/index.ts';
import { MessageType, newMessage, type MemberId, type Message } from '../../src/raft/types.ts';
import type { Transport } from '../../src/seams.ts';
import { waitFor } from '../helpers/wait.ts';
import { transportCompliance } from './compliance.ts';

let clusters = 0;
/** Each test gets its own cluster name, so a closing cluster's goodbyes reach nobody else. */
const freshCluster = () => `browser-${++clusters}-${Math.random().toString(36).slice(2, 8)}`;

async function open(cluster: string, id: MemberId, secret = 'browser-secret', logs: string[] = []): Promise<WebRtcTransport> {
  const log = (level: string, msg: string) => logs.push(`${level}: ${msg}`);
  return WebRtcTransport.open({ id, signaling: new BroadcastChannelSignaling({ cluster, secret, id }, log), log });
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
  it('a member with another secret is ignored by the others', async () => {
    const cluster = freshCluster();
    const logs: string[] = [];
    const a = await open(cluster, 1, 'browser-secret', logs);
    const stranger = await open(cluster, 2, 'wrong-secret');
    try {
      const inbox: Message[] = [];
      a.start((m) => inbox.push(m));
      stranger.start(() => {});
      a.addPeer(2, '');
      stranger.addPeer(1, '');
      const hb = newMessage(MessageType.Heartbeat, 1, 2, 1);
      stranger.send([hb]);
      await waitFor('member 1 to log the stranger', () => logs.some((l) => l.includes('ignoring member 2: it presents another secret')));
      await new Promise((r) => setTimeout(r, 500));
      expect([a.isConnected(2), stranger.isConnected(1), inbox]).toEqual([false, false, []]);
    } finally {
      await a.close();
      await stranger.close();
    }
  });

  it('reconnects after a link drops', async () => {
    const cluster = freshCluster();
    const a = await open(cluster, 1);
    const b = await open(cluster, 2);
    try {
      const inbox: Message[] = [];
      a.start(() => {});
      b.start((m) => inbox.push(m));
      a.addPeer(2, '');
      b.addPeer(1, '');
      await waitFor('the link', () => a.isConnected(2) && b.isConnected(1));
      a.cutLink(2);
      await waitFor('member 2 to see the link drop', () => !b.isConnected(1));
      const hb = newMessage(MessageType.Heartbeat, 2, 1, 1);
      a.send([hb]);
      await waitFor('a heartbeat over the new link', () => inbox.length === 1, 10_000);
      expect(inbox).toEqual([hb]);
    } finally {
      await a.close();
      await b.close();
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

describe('webrtc transport, tab <-> Node', () => {
  const node = inject('nodePeer');

  it('a tab and a Node member (node-datachannel) link through WebSocket signaling, big messages included', async () => {
    const signaling = new WebSocketSignaling({ url: node.url, cluster: node.cluster, secret: node.secret, id: 2 });
    const logs: string[] = [];
    const tab = await WebRtcTransport.open({ id: 2, signaling, log: (level, msg) => logs.push(`${level}: ${msg}`) });
    try {
      const inbox: Message[] = [];
      tab.start((m) => inbox.push(m));
      tab.addPeer(node.id, '');
      const hb = newMessage(MessageType.Heartbeat, node.id, 2, 3);
      hb.commit = 41;
      const snap = newMessage(MessageType.Snap, node.id, 2, 3);
      const data = new Uint8Array(1024 * 1024).map((_, i) => (i * 7) & 0xff);
      snap.snapshot = { metadata: { index: 9, term: 3, confState: { voters: [1, 2], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false } }, data };
      tab.send([hb, snap]);
      await waitFor('both echoed back by the Node member', () => inbox.length === 2, 10_000).catch((err: Error) => {
        throw new Error(`${err.message}\nthe tab's log:\n${logs.join('\n')}`);
      });
      expect(inbox.find((m) => m.type === MessageType.Heartbeat)).toEqual({ ...hb, from: node.id, to: 2 });
      const echoed = inbox.find((m) => m.type === MessageType.Snap)!;
      // Compared apart: a deep equal over a MiB of bytes takes seconds in the browser.
      expect({ ...echoed, snapshot: { ...echoed.snapshot!, data: null } }).toEqual({ ...snap, from: node.id, to: 2, snapshot: { ...snap.snapshot, data: null } });
      expect(echoed.snapshot!.data.length).toBe(data.length);
      expect(echoed.snapshot!.data.every((b, i) => b === data[i])).toBe(true);
    } finally {
      await tab.close();
    }
  });

  it('the Node member\'s signaling refuses a tab with the wrong secret, with the reason', async () => {
    const signaling = new WebSocketSignaling({ url: node.url, cluster: node.cluster, secret: 'wrong', id: 3 });
    const err = await WebRtcTransport.open({ id: 3, signaling }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SignalingError);
    expect((err as Error).message).toBe(`signaling server ${node.url} refused member 3: admission secret mismatch`);
  });
});
