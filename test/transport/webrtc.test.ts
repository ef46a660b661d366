// The WebRTC transport in Node: node-datachannel's RTCPeerConnection (rtc-session.ts), members finding each
// other through the WebSocket signaling server, everything on 127.0.0.1.

import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { SignalingError } from '../../adapters/signaling/types.ts';
import { WebSocketSignaling } from '../../adapters/signaling/ws-client.ts';
import { SignalingServer } from '../../adapters/signaling/ws-server.ts';
import { FrameType, encodeBatch, frameBytesMax } from '../../adapters/transport/webrtc/frame.ts';
import { WebRtcTransport, type WebRtcBounds } from '../../adapters/transport/webrtc/index.ts';
import { nodeWrtc } from '../../adapters/transport/webrtc/node-wrtc.ts';
import { encodeMessage } from '../../src/codec/message.ts';
import { EntryType, MessageType, newMessage, type MemberId, type Message } from '../../src/raft/types.ts';
import type { Transport } from '../../src/seams.ts';
import { MemoryHub } from '../../adapters/transport/memory.ts';
import type { KvMember } from '../../src/server/kv-member.ts';
import { startKvMember } from '../helpers/kv-members.ts';
import { waitFor } from '../helpers/wait.ts';
import { transportCompliance } from './compliance.ts';

const cluster = 'webrtc-test';
const secret = 'webrtc-secret';

interface Opened {
  t: WebRtcTransport;
  inbox: Message[];
  logs: string[];
}

function openTransport(url: string, id: MemberId, log?: (level: string, msg: string) => void, bounds?: Partial<WebRtcBounds>): Promise<WebRtcTransport> {
  const signaling = new WebSocketSignaling({ url, cluster, secret, id, WebSocket, log });
  return WebRtcTransport.open({ id, signaling, wrtc: nodeWrtc, rtcConfig: { iceServers: [], bindAddress: '127.0.0.1' }, log, bounds });
}

/** A started transport whose messages go to `inbox`. */
async function openMember(url: string, id: MemberId, extra: { bounds?: Partial<WebRtcBounds> } = {}): Promise<Opened> {
  const logs: string[] = [];
  const t = await openTransport(url, id, (level, msg) => logs.push(`${level}: ${msg}`), extra.bounds);
  const inbox: Message[] = [];
  t.start((m) => inbox.push(m));
  return { t, inbox, logs };
}

async function startServer(): Promise<{ server: SignalingServer; url: string }> {
  const server = new SignalingServer({ cluster, secret });
  return { server, url: await server.listen(0) };
}

transportCompliance('webrtc (node-datachannel, WebSocket signaling)', async (ids) => {
  const { server, url } = await startServer();
  const byId = new Map<MemberId, WebRtcTransport>();
  for (const id of ids) byId.set(id, await openTransport(url, id));
  for (const [id, t] of byId) for (const peer of ids) if (peer !== id) t.addPeer(peer, '');
  return {
    transports: new Map<MemberId, Transport>(byId),
    async close() {
      for (const t of byId.values()) await t.close();
      await server.close();
    },
  };
});

function heartbeat(from: MemberId, to: MemberId, commit: number): Message {
  const m = newMessage(MessageType.Heartbeat, to, from, 1);
  m.commit = commit;
  return m;
}

describe('webrtc transport', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function pair(bounds?: Partial<WebRtcBounds>): Promise<{ a: Opened; b: Opened; server: SignalingServer; url: string }> {
    const { server, url } = await startServer();
    cleanups.push(() => server.close());
    const a = await openMember(url, 1, { bounds });
    cleanups.push(() => a.t.close());
    const b = await openMember(url, 2, { bounds });
    cleanups.push(() => b.t.close());
    a.t.addPeer(2, '');
    b.t.addPeer(1, '');
    await waitFor('the data channel 1 <-> 2', () => a.t.isConnected(2) && b.t.isConnected(1), 15_000).catch((err: Error) => {
      throw new Error(`${err.message}\nmember 1:\n${a.logs.join('\n')}\nmember 2:\n${b.logs.join('\n')}`);
    });
    return { a, b, server, url };
  }

  it('signaling refuses a member with the wrong admission secret, with the reason', async () => {
    const { server, url } = await startServer();
    cleanups.push(() => server.close());
    const good = await openMember(url, 1);
    cleanups.push(() => good.t.close());
    const signaling = new WebSocketSignaling({ url, cluster, secret: 'not-the-secret', id: 2, WebSocket });
    const err = await WebRtcTransport.open({ id: 2, signaling, wrtc: nodeWrtc }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SignalingError);
    expect((err as SignalingError).code).toBe('refused');
    expect((err as Error).message).toBe(`signaling server ${url} refused member 2: admission secret mismatch`);
    expect(server.memberIds).toEqual([1]);
  });

  it('signaling refuses a member of another cluster', async () => {
    const { server, url } = await startServer();
    cleanups.push(() => server.close());
    const signaling = new WebSocketSignaling({ url, cluster: 'other', secret, id: 3, WebSocket });
    await expect(signaling.join({ onSignal() {}, onPresence() {} })).rejects.toThrow(`refused member 3: cluster "other" is not served here`);
  });

  it('without wrtc, in a runtime with no RTCPeerConnection (Node), open() refuses before joining signaling', async () => {
    const { server, url } = await startServer();
    cleanups.push(() => server.close());
    expect(typeof (globalThis as { RTCPeerConnection?: unknown }).RTCPeerConnection).toBe('undefined');
    const signaling = new WebSocketSignaling({ url, cluster, secret, id: 4, WebSocket });
    await expect(WebRtcTransport.open({ id: 4, signaling })).rejects.toThrow(
      'webrtc transport 4: this runtime has no RTCPeerConnection; pass wrtc (in Node: nodeWrtc from adapters/transport/webrtc/node-wrtc.ts)',
    );
    expect(server.memberIds).toEqual([]);
  });

  it('reconnects after a link drops', async () => {
    const { a, b } = await pair();
    a.t.cutLink(2);
    await waitFor('member 2 to see the link drop', () => !b.t.isConnected(1));
    a.t.send([heartbeat(1, 2, 1)]);
    b.t.send([heartbeat(2, 1, 2)]);
    await waitFor('heartbeats both ways over the new link', () => b.inbox.some((m) => m.commit === 1) && a.inbox.some((m) => m.commit === 2), 15_000);
    expect(b.logs.some((l) => l.includes('link to member 1 down: its connection closed'))).toBe(true);
  }, 30_000);

  it('reconnects to a member that restarted', async () => {
    const { a, b, url } = await pair();
    await b.t.close();
    await waitFor('member 1 to see the link drop', () => !a.t.isConnected(2));
    const b2 = await openMember(url, 2);
    cleanups.push(() => b2.t.close());
    b2.t.addPeer(1, '');
    a.t.send([heartbeat(1, 2, 2)]);
    await waitFor('a heartbeat over the new link', () => b2.inbox.some((m) => m.commit === 2), 15_000);
    b2.t.send([heartbeat(2, 1, 3)]);
    await waitFor('and back', () => a.inbox.some((m) => m.commit === 3));
  }, 30_000);

  function appends(count: number, entryBytes: number): Message[] {
    const data = new Uint8Array(entryBytes).fill(9);
    return Array.from({ length: count }, (_, i) => {
      const m = newMessage(MessageType.App, 2, 1, 1);
      m.index = i;
      m.entries = [{ term: 1, index: i + 1, type: EntryType.Normal, data }];
      return m;
    });
  }

  it.each([
    ['the default 64 KiB', undefined],
    ['16 KiB', 16 * 1024],
  ])('a burst far above the channel buffer arrives whole: sends pause at %s and resume on bufferedamountlow', async (_name, channelBufferedBytesMax) => {
    const { a, b } = await pair({ channelBufferedBytesMax });
    a.t.send(appends(4000, 4096)); // 16 MiB at once
    expect(a.t.queuedMessages(2)).toBe(4000);
    await waitFor('all 4000 appends', () => b.inbox.length === 4000, 20_000);
    expect(b.inbox.map((m) => m.index)).toEqual([...Array(4000).keys()]);
    expect(a.t.stats.messagesDroppedQueueFull).toBe(0);
  }, 30_000);

  it('bounds the queue under a burst: the oldest messages are dropped, the newest arrive', async () => {
    const { a, b } = await pair({ queueMessagesMax: 200 });
    a.t.send(appends(5000, 4096));
    expect(a.t.queuedMessages(2)).toBe(200);
    await waitFor('the newest message', () => b.inbox.some((m) => m.index === 4999), 15_000);
    expect(b.inbox.map((m) => m.index)).toEqual(Array.from({ length: 200 }, (_, i) => 4800 + i));
    expect(a.t.stats.messagesDroppedQueueFull).toBe(4800);
    expect(a.logs.filter((l) => l.includes('queue to member 2 is full')).length).toBe(1);
  }, 30_000);

  it('drops malformed frames and messages, counting them, and keeps the link', async () => {
    const { a, b } = await pair();
    const forged = encodeMessage(heartbeat(3, 2, 7)); // claims to come from member 3
    const garbage = [
      new Uint8Array([99, 1, 2, 3]), // unknown frame type
      new Uint8Array([FrameType.Batch, 0, 0, 0, 200, 1]), // a length overrunning the frame
      new Uint8Array([FrameType.More, 1, 2]), // More without Start
      encodeBatch([new Uint8Array([1, 0xc1, 0xc1])]), // not a message
      encodeBatch([forged]),
      new Uint8Array(frameBytesMax + 1).fill(FrameType.Batch), // too big a frame
    ];
    for (const g of garbage) a.t.sendRawFrame(2, g);
    a.t.send([heartbeat(1, 2, 8)]);
    await waitFor('the good heartbeat after the garbage', () => b.inbox.some((m) => m.commit === 8));
    expect(b.inbox.map((m) => m.commit)).toEqual([8]);
    expect(b.t.stats).toEqual({ framesDropped: 4, messagesRejected: 2, messagesUnadmitted: 0, messagesDroppedQueueFull: 0 });
    expect(b.logs.filter((l) => l.includes('dropped a frame from member 1')).length).toBe(4);
    expect(b.logs.some((l) => l.includes('claiming to be 3 -> 2'))).toBe(true);
    expect(b.t.isConnected(1)).toBe(true);
  });
});

describe('a Raft cluster over WebRTC (Node)', () => {
  const snapshotsArrived = new Map<MemberId, number>();
  /** `t` as a member sees it, counting the snapshots that arrive. */
  function countingSnapshots(t: WebRtcTransport): Transport {
    return {
      start: (deliver) =>
        t.start((m) => {
          if (m.type === MessageType.Snap) snapshotsArrived.set(t.id, (snapshotsArrived.get(t.id) ?? 0) + 1);
          deliver(m);
        }),
      send: (ms) => t.send(ms),
      addPeer: (id, address) => t.addPeer(id, address),
      removePeer: (id) => t.removePeer(id),
      close: () => t.close(),
      faults: t.faults,
    };
  }

  it('elects, replicates, and catches an isolated member up with a snapshot once healed', async () => {
    const { server, url } = await startServer();
    const ids = [1, 2, 3];
    const ts = await Promise.all(ids.map((id) => openTransport(url, id)));
    for (const t of ts) for (const peer of ids) if (peer !== t.id) t.addPeer(peer, '');
    const members: KvMember[] = [];
    try {
      // The hub is unused: every member gets its WebRTC transport.
      for (const t of ts) members.push(await startKvMember(new MemoryHub(), t.id, ids, { transport: countingSnapshots(t), snapshotEntries: 50, snapshotKeepEntries: 0 }));
      const leader = await waitFor('a leader', () => members.find((m) => m.member.isLeader()), 15_000);
      const isolated = members.find((m) => m !== leader)!;
      const isolatedId = members.indexOf(isolated) + 1;
      for (const t of ts) {
        if (t.id === isolatedId) for (const peer of ids) t.faults.block(peer);
        else t.faults.block(isolatedId);
      }
      const b = (s: string) => new TextEncoder().encode(s);
      for (let i = 0; i < 4; i++) await Promise.all(Array.from({ length: 50 }, (_, j) => leader.put({ key: b(`k/${i}/${j}`), value: b('v'.repeat(100)) })));
      expect(isolated.mvcc.keyCount).toBe(0);
      for (const t of ts) t.faults.heal();
      await waitFor('the isolated member to catch up', () => isolated.mvcc.currentRevision === leader.mvcc.currentRevision, 15_000);
      expect(isolated.mvcc.keyCount).toBe(200);
      expect(snapshotsArrived.get(isolatedId)).toBeGreaterThan(0); // the leader had compacted its log
      expect(isolated.hashKV(0)).toEqual(leader.hashKV(0));
    } finally {
      for (const m of members) await m.stop();
      for (const t of ts) await t.close();
      await server.close();
    }
  }, 40_000);
});
