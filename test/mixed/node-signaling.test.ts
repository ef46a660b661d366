// A Node member with browser peers on (the default): it hosts WebSocket signaling on its
// client port, and a member reached over WebRTC — here a Node process's KvMember with
// node-datachannel, standing in for a tab — joins it through the control channel, is promoted
// to voter and serves the data. A wrong admission secret and a foreign page's origin are refused.

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { parseConfig, signalingPath } from '../../adapters/node/config.ts';
import { StartError, startNodeMember, type NodeMember } from '../../adapters/node/node-member.ts';
import { ControlChannel } from '../../adapters/signaling/control.ts';
import { SignalingError } from '../../adapters/signaling/types.ts';
import { WebSocketSignaling } from '../../adapters/signaling/ws-client.ts';
import { SignalingServer } from '../../adapters/signaling/ws-server.ts';
import { MemoryHub } from '../../adapters/transport/memory.ts';
import { WebRtcTransport } from '../../adapters/transport/webrtc/index.ts';
import { nodeWrtc } from '../../adapters/transport/webrtc/node-wrtc.ts';
import type { KvMember } from '../../src/server/kv-member.ts';
import { startKvMember } from '../helpers/kv-members.ts';
import { freePort } from '../helpers/processes.ts';
import { waitFor } from '../helpers/wait.ts';

const token = 'mixed-test-token';
const secret = 'mixed-test-admission-secret';
const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function startNode(extraFlags: string[] = []): Promise<{ node: NodeMember; url: string; port: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'meshkv-mixed-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const port = await freePort();
  const parsed = parseConfig(['--data-dir', dir, '--listen-client-urls', `http://127.0.0.1:${port}`, '--initial-cluster-token', token, '--admission-secret', secret, ...extraFlags], {});
  if (parsed.kind !== 'start') throw new Error('expected a start config');
  const node = await startNodeMember(parsed.config, { log: () => {} });
  cleanups.push(() => node.stop());
  await waitFor('the Node member to lead', () => node.kv.member.isLeader());
  return { node, url: `ws://127.0.0.1:${port}${signalingPath}`, port };
}

/** A member reached over WebRTC that joins through the control channel, as a tab does. */
async function startWebRtcJoiner(url: string, id: number, nodeId: number): Promise<KvMember> {
  const channel = new ControlChannel(new WebSocketSignaling({ url, cluster: token, secret, id, WebSocket }));
  const transport = await WebRtcTransport.open({ id, signaling: channel.transportSignaling, wrtc: nodeWrtc, rtcConfig: { iceServers: [], bindAddress: '127.0.0.1' } });
  transport.addPeer(nodeId, '');
  const kv = await startKvMember(new MemoryHub(), id, [], { transport, tickMs: 10, electionTicks: 20 });
  cleanups.push(() => kv.stop());
  const ask = setInterval(() => {
    channel.broadcast({ kind: 'join', request: { id, name: `joiner-${id}`, peerURLs: [`webrtc://${id}`], wantsVote: true } });
  }, 100);
  cleanups.push(async () => clearInterval(ask));
  return kv;
}

/** How a WebSocket to `url` from a page of `origin` ends: 'open', or the HTTP status or error. */
function opened(url: string, origin: string): Promise<string> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { origin });
    ws.on('open', () => {
      ws.close();
      resolve('open');
    });
    ws.on('unexpected-response', (_req, res) => resolve(`HTTP ${res.statusCode}`));
    ws.on('error', (e) => resolve(e.message));
  });
}

describe('a Node member with browser peers', () => {
  it('adds a WebRTC member that asks to join as a learner, and keeps it one: the Node member keeps the quorum', async () => {
    const { node, url } = await startNode();
    await node.kv.put({ key: enc('before'), value: enc('joined') });
    const joinerId = 0x7ab2;
    const joiner = await startWebRtcJoiner(url, joinerId, node.id);
    await waitFor('the joiner to be a learner', () => node.kv.member.status().confState.learners.includes(joinerId), 20_000);
    await waitFor('the joiner to catch up', () => joiner.member.status().applied >= node.kv.member.status().commit, 10_000);
    expect(dec((await joiner.range({ key: enc('before') })).kvs[0].value)).toBe('joined');
    await expect(node.kv.promoteMember(joinerId)).rejects.toThrow(/is a browser tab and the cluster has Node voters, so it stays a learner/);
    expect(node.kv.member.status().confState.voters).toEqual([node.id]);
  }, 60_000);

  it('with --tabs-may-outvote, promotes the WebRTC member, and both serve the same data', async () => {
    const { node, url } = await startNode(['--tabs-may-outvote']);
    await node.kv.put({ key: enc('before'), value: enc('joined') });
    const joinerId = 0x7ab1;
    const joiner = await startWebRtcJoiner(url, joinerId, node.id);
    await waitFor('the joiner to become a voter', () => node.kv.member.status().confState.voters.includes(joinerId), 20_000);
    expect(node.kv.members.get(joinerId)?.peerURLs).toEqual([`webrtc://${joinerId}`]);
    // Two voters now: a write commits only with the joiner's vote, over WebRTC.
    await node.kv.put({ key: enc('after'), value: enc('two voters') });
    await waitFor('the joiner to apply both writes', () => joiner.member.status().applied >= node.kv.member.status().commit, 10_000);
    const before = await joiner.range({ key: enc('before'), serializable: true });
    const after = await joiner.range({ key: enc('after') });
    expect(dec(before.kvs[0].value)).toBe('joined');
    expect(dec(after.kvs[0].value)).toBe('two voters');
  }, 60_000);

  it('refuses a member presenting the wrong admission secret', async () => {
    const { url } = await startNode();
    const signaling = new WebSocketSignaling({ url, cluster: token, secret: 'wrong-secret', id: 99, WebSocket });
    const err = await signaling.join({ onSignal() {}, onPresence() {} }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SignalingError);
    expect((err as Error).message).toBe(`signaling server ${url} refused member 99: admission secret mismatch`);
  });

  it('refuses a page of another origin, and lets the pages it serves in and those listed', async () => {
    const { url, port } = await startNode(['--browser-origins', 'http://127.0.0.1:5173']);
    expect(await opened(url, 'http://evil.example')).toBe('HTTP 403');
    expect(await opened(url, `http://127.0.0.1:${port}`)).toBe('open');
    expect(await opened(url, 'http://127.0.0.1:5173')).toBe('open');
  });

  it('with client TLS, serves signaling as wss:// on the same port', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'meshkv-mixed-tls-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const [cert, key] = [join(dir, 'member.crt'), join(dir, 'member.key')];
    execFileSync('/usr/bin/openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'pipe' });
    const port = await freePort();
    const parsed = parseConfig(['--data-dir', join(dir, 'data'), '--listen-client-urls', `https://127.0.0.1:${port}`, '--cert-file', cert, '--key-file', key, '--initial-cluster-token', token, '--admission-secret', secret], {});
    if (parsed.kind !== 'start') throw new Error('expected a start config');
    const node = await startNodeMember(parsed.config, { log: () => {} });
    cleanups.push(() => node.stop());
    const reply = await new Promise<unknown>((resolve, reject) => {
      const ws = new WebSocket(`wss://127.0.0.1:${port}${signalingPath}`, { ca: readFileSync(cert), origin: `https://127.0.0.1:${port}` });
      ws.on('open', () => ws.send(JSON.stringify({ type: 'join', cluster: token, secret, id: 7, key: 'tls-test-member-key' })));
      ws.on('message', (data) => {
        ws.close();
        resolve(JSON.parse(data.toString()));
      });
      ws.on('error', reject);
    });
    expect(reply).toEqual({ type: 'joined', members: [node.id] });
  });

  it('with --browser-peers off, serves no signaling endpoint', async () => {
    const { url, port } = await startNode(['--browser-peers', 'off']);
    expect(await opened(url, `http://127.0.0.1:${port}`)).not.toBe('open');
  });

  it('starts while the signaling endpoint it is told to join is down, and joins it once it is up', async () => {
    const port = await freePort();
    const { node } = await startNode(['--signaling-url', `ws://127.0.0.1:${port}${signalingPath}`]);
    const server = new SignalingServer({ cluster: token, secret, path: signalingPath });
    cleanups.push(() => server.close());
    await server.listen(port);
    await waitFor('the member to join the endpoint', () => server.memberIds.includes(node.id), 15_000);
  });

  it('refuses to start when the signaling endpoint it is told to join serves another cluster', async () => {
    const server = new SignalingServer({ cluster: 'another-token', secret, path: signalingPath });
    cleanups.push(() => server.close());
    const url = await server.listen(0);
    const err = await startNode(['--signaling-url', url]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StartError);
    expect((err as Error).message).toMatch(new RegExp(`^signaling: signaling server ${url} refused member \\d+: cluster "${token}" is not served here$`));
  });
});
