// Attacks through a Node member's signaling endpoint and WebRTC, against a real member with
// browser peers on: strangers who know the cluster token (the default one is public) but not
// the admission secret, and secret holders who try to be someone else, to remove someone
// else, or to reach Raft without having been added.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { parseConfig, signalingPath } from '../../adapters/node/config.ts';
import { startNodeMember, type NodeMember } from '../../adapters/node/node-member.ts';
import { ControlChannel, type ControlMessage } from '../../adapters/signaling/control.ts';
import { SignalingError } from '../../adapters/signaling/types.ts';
import { WebSocketSignaling } from '../../adapters/signaling/ws-client.ts';
import { MemoryHub } from '../../adapters/transport/memory.ts';
import { WebRtcTransport } from '../../adapters/transport/webrtc/index.ts';
import { nodeWrtc } from '../../adapters/transport/webrtc/node-wrtc.ts';
import { MessageType, newMessage, type MemberId } from '../../src/raft/types.ts';
import { startKvMember } from '../helpers/kv-members.ts';
import { freePort } from '../helpers/processes.ts';
import { waitFor } from '../helpers/wait.ts';

const token = 'meshkv-cluster';
const secret = 'security-signaling-admission-secret';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function startNode(): Promise<{ node: NodeMember; url: string; logs: string[] }> {
  const dir = await mkdtemp(join(tmpdir(), 'meshkv-sec-signal-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const port = await freePort();
  const parsed = parseConfig(['--data-dir', dir, '--listen-client-urls', `http://127.0.0.1:${port}`, '--admission-secret', secret], {});
  if (parsed.kind !== 'start') throw new Error('expected a start config');
  const logs: string[] = [];
  const node = await startNodeMember(parsed.config, { log: (level, msg) => logs.push(`${level}: ${msg}`) });
  cleanups.push(() => node.stop());
  await waitFor('the Node member to lead', () => node.kv.member.isLeader());
  return { node, url: `ws://127.0.0.1:${port}${signalingPath}`, logs };
}

/** A control channel joined as `id` with `withSecret`; collects the control messages it receives. */
async function joinControl(url: string, id: MemberId, withSecret = secret): Promise<{ channel: ControlChannel; heard: ControlMessage[] }> {
  const channel = new ControlChannel(new WebSocketSignaling({ url, cluster: token, secret: withSecret, id, WebSocket }));
  cleanups.push(() => channel.close());
  const heard: ControlMessage[] = [];
  channel.onControl((_from, m) => heard.push(m));
  await channel.transportSignaling.join({ onSignal() {}, onPresence() {} });
  return { channel, heard };
}

/** A raw join as `id`: resolves with the server's first answer, or how it closed. */
function rawJoin(url: string, id: MemberId, withSecret: string): Promise<string> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url);
    cleanups.push(() => ws.terminate());
    ws.on('open', () => ws.send(JSON.stringify({ type: 'join', cluster: token, secret: withSecret, id, key: `stranger-key-${id}-0000` })));
    ws.once('message', (data) => resolve(String(data)));
    ws.on('close', (code, reason) => resolve(`closed ${code} ${reason}`));
    ws.on('error', (e) => resolve(e.message));
  });
}

/** A member reached over WebRTC that joins through the control channel, as a tab does. */
async function startWebRtcJoiner(url: string, id: MemberId, nodeId: MemberId) {
  const channel = new ControlChannel(new WebSocketSignaling({ url, cluster: token, secret, id, WebSocket }));
  const transport = await WebRtcTransport.open({ id, signaling: channel.transportSignaling, wrtc: nodeWrtc, rtcConfig: { iceServers: [], bindAddress: '127.0.0.1' } });
  transport.addPeer(nodeId, '');
  const kv = await startKvMember(new MemoryHub(), id, [], { transport, tickMs: 10, electionTicks: 20 });
  cleanups.push(() => kv.stop());
  const ask = setInterval(() => channel.broadcast({ kind: 'join', request: { id, name: `joiner-${id}`, peerURLs: [`webrtc://${id}`], wantsVote: false } }), 100);
  cleanups.push(() => clearInterval(ask));
  return kv;
}

describe("a Node member's signaling", () => {
  it('does not admit a member that presents the cluster token instead of the admission secret', async () => {
    const { url, logs } = await startNode();
    const err = await joinControl(url, 0x51, token).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SignalingError);
    expect((err as Error).message).toBe(`signaling server ${url} refused member ${0x51}: admission secret mismatch`);
    expect(logs.join('\n')).not.toContain(secret);
  });

  it('refuses a flood of joiners without the secret: the member table stays as it was', async () => {
    const { node, url } = await startNode();
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => rawJoin(url, 0x1000 + i, token)));
    expect(new Set(answers)).toEqual(new Set(['closed 4001 admission secret mismatch']));
    expect(node.kv.members.list().map((m) => m.id)).toEqual([node.id]);
  });

  it("turns away a secret holder joining with the host member's id, and the host's signaling keeps working", async () => {
    const { node, url } = await startNode();
    expect(await rawJoin(url, node.id, secret)).toBe(`closed 4004 member id ${node.id} is held by another connection`);
    // The host still answers over signaling: a probe gets its reply.
    const { channel, heard } = await joinControl(url, 0x52);
    await waitFor('the host to answer a probe', () => {
      channel.send(node.id, { kind: 'probe' });
      return heard.some((m) => m.kind === 'probe-reply' && m.inCluster);
    });
  });

  it('lets nobody ask to remove another member: not by taking its id, not by naming it', async () => {
    const { node, url, logs } = await startNode();
    const joinerId = 0x7ab2;
    await startWebRtcJoiner(url, joinerId, node.id);
    await waitFor('the joiner to be added', () => node.kv.members.get(joinerId) !== undefined, 20_000);
    expect(await rawJoin(url, joinerId, secret)).toBe(`closed 4004 member id ${joinerId} is held by another connection`);
    const { channel } = await joinControl(url, 0x53);
    channel.send(node.id, { kind: 'leave', id: joinerId });
    await waitFor('the host to ignore the leave', () => logs.some((l) => l.includes(`ignored a malformed control message from member ${0x53}`)));
    expect(node.kv.members.get(joinerId)).toBeDefined();
  }, 60_000);

  it('drops Raft messages over WebRTC from a secret holder that was never added', async () => {
    const { node, url, logs } = await startNode();
    const strangerId = 0x5eed;
    const stranger = await WebRtcTransport.open({
      id: strangerId,
      signaling: new WebSocketSignaling({ url, cluster: token, secret, id: strangerId, WebSocket }),
      wrtc: nodeWrtc,
      rtcConfig: { iceServers: [], bindAddress: '127.0.0.1' },
    });
    cleanups.push(() => stranger.close());
    stranger.start(() => {});
    stranger.addPeer(node.id, '');
    const termBefore = node.kv.member.status().term;
    await waitFor('the data channel', () => stranger.isConnected(node.id), 20_000);
    // A heartbeat at a higher term would make the leader step down and follow the stranger.
    await waitFor('the node to drop the stranger\'s messages', () => {
      stranger.send([newMessage(MessageType.Heartbeat, node.id, strangerId, termBefore + 5)]);
      return logs.some((l) => l.includes(`dropping messages from member ${strangerId}: not a member of the configuration`));
    }, 10_000);
    expect(node.kv.member.isLeader()).toBe(true);
    expect(node.kv.member.status().term).toBe(termBefore);
  }, 60_000);
});
