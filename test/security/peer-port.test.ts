// Attacks on the peer port (TCP), against a real Node member started as the CLI starts it:
// a stranger who knows the cluster token (which etcd treats as a name, not a secret) but not
// the admission secret, and one who holds the secret but was never added to the cluster.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { helloProof } from '../../adapters/transport/tcp/admission.ts';
import { FrameReader, FrameType, encodeFrame, encodeHello, frameHeader, helloFrameBytesMax, protocolVersion } from '../../adapters/transport/tcp/frame.ts';
import { TcpTransport, peerFrameBytesMax, type TcpTlsOptions } from '../../adapters/transport/tcp/index.ts';
import { parseConfig } from '../../adapters/node/config.ts';
import { startNodeMember, type NodeMember } from '../../adapters/node/node-member.ts';
import { encodeMessage } from '../../src/codec/message.ts';
import { defaultMessageBytesMax } from '../../src/raft/config.ts';
import { MessageType, newMessage, type MemberId, type Message } from '../../src/raft/types.ts';
import { DEFAULT_LIMITS } from '../../src/mvcc/validate.ts';
import { freePort } from '../helpers/processes.ts';
import { waitFor } from '../helpers/wait.ts';

const clusterToken = 'security-peer-cluster';
const secret = 'security-peer-admission-secret';
const strangerId = 0x5eed;

let dir: string;
let node: NodeMember;
let peerPort: number;
const logs: string[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'meshkv-sec-peer-'));
  peerPort = await freePort();
  // A member listening for peers, as one of a cluster would (a lone one needs no peer port).
  const parsed = parseConfig(
    [
      '--data-dir', join(dir, 'data'),
      '--listen-client-urls', `http://127.0.0.1:${await freePort()}`,
      '--listen-peer-urls', `http://127.0.0.1:${peerPort}`,
      '--initial-advertise-peer-urls', `http://127.0.0.1:${peerPort}`,
      '--initial-cluster-token', clusterToken,
      '--admission-secret', secret,
      '--browser-peers', 'off',
    ],
    {},
  );
  if (parsed.kind !== 'start') throw new Error('expected a start config');
  node = await startNodeMember(parsed.config, { log: (level, msg) => logs.push(`${level}: ${msg}`) });
  await waitFor('the member to lead', () => node.kv.member.isLeader(), 20_000);
});

afterAll(async () => {
  await node?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** A raw connection to the member's peer port; collects the frames it answers and whether it closed. */
async function connect(): Promise<{ socket: net.Socket; frames: { type: FrameType; text: string }[]; closed: Promise<void> }> {
  const socket = net.connect(peerPort, '127.0.0.1');
  const frames: { type: FrameType; text: string }[] = [];
  const reader = new FrameReader();
  reader.frameBytesLimit = 1 << 20;
  socket.on('data', (c) => {
    for (const f of reader.push(c)) frames.push({ type: f.type, text: new TextDecoder().decode(f.payload) });
  });
  socket.on('error', () => {});
  const closed = new Promise<void>((r) => socket.once('close', () => r()));
  await new Promise<void>((r, j) => socket.once('connect', r).once('error', j));
  return { socket, frames, closed };
}

function hello(from: MemberId, opts: { token?: string; secret?: string } = {}): Uint8Array {
  const claims = { version: protocolVersion, clusterToken: opts.token ?? clusterToken, from, to: node.id };
  return encodeFrame(FrameType.Hello, encodeHello({ ...claims, proof: helloProof(opts.secret ?? secret, claims) }));
}

/** A heartbeat from `from` at a term far above the member's: Raft would follow it and depose the leader. */
function forgedHeartbeat(from: MemberId): Message {
  return newMessage(MessageType.Heartbeat, node.id, from, node.kv.member.status().term + 5);
}

describe('the peer port', () => {
  it('refuses a Hello that has the cluster token but no proof of the admission secret, and delivers nothing after it', async () => {
    const termBefore = node.kv.member.status().term;
    const c = await connect();
    c.socket.write(hello(strangerId, { secret: 'a-guess-at-the-admission-secret' }));
    c.socket.write(encodeFrame(FrameType.Message, encodeMessage(forgedHeartbeat(strangerId))));
    await waitFor('the refusal', () => c.frames.length > 0);
    expect(c.frames[0]).toEqual({ type: FrameType.Refuse, text: `admission refused: member ${strangerId} does not prove the cluster's admission secret` });
    await c.closed;
    expect(node.kv.member.isLeader()).toBe(true);
    expect(node.kv.member.status().term).toBe(termBefore);
  });

  it('does not tell a stranger the cluster token, nor the secret, in a refusal', async () => {
    const c = await connect();
    c.socket.write(hello(strangerId, { token: 'guessed-token' }));
    await waitFor('the refusal', () => c.frames.length > 0);
    expect(c.frames[0].type).toBe(FrameType.Refuse);
    expect(c.frames[0].text).toBe(`cluster token mismatch: member ${strangerId} has another --initial-cluster-token than member ${node.id}`);
    expect(c.frames[0].text).not.toContain(clusterToken);
    expect(logs.join('\n')).not.toContain(secret);
  });

  it('a secret holder that is not a member of the configuration cannot reach Raft', async () => {
    const termBefore = node.kv.member.status().term;
    const c = await connect();
    c.socket.write(hello(strangerId));
    await waitFor('the accept', () => c.frames.some((f) => f.type === FrameType.Accept));
    c.socket.write(encodeFrame(FrameType.Message, encodeMessage(forgedHeartbeat(strangerId))));
    await waitFor('the drop to be logged', () => logs.some((l) => l.includes(`dropping messages from peer ${strangerId}`) && l.includes('not a member of the configuration')));
    expect(node.kv.member.isLeader()).toBe(true);
    expect(node.kv.member.status().term).toBe(termBefore);
    c.socket.destroy();
  });

  it('closes a connection announcing a large frame before its Hello, without buffering it', async () => {
    const c = await connect();
    c.socket.write(frameHeader(FrameType.Hello, 64 * 1024 * 1024 - 1));
    await c.closed;
    expect(logs.some((l) => l.includes(`frame of ${64 * 1024 * 1024} bytes exceeds the limit of ${helloFrameBytesMax}`))).toBe(true);
  });

  it('after the Hello, bounds frames by --max-request-bytes, not by the transport ceiling', async () => {
    const limit = peerFrameBytesMax(DEFAULT_LIMITS.requestBytesMax, defaultMessageBytesMax);
    expect(limit).toBeLessThan(16 * 1024 * 1024);
    const c = await connect();
    c.socket.write(hello(0x5eee));
    await waitFor('the accept', () => c.frames.some((f) => f.type === FrameType.Accept));
    c.socket.write(frameHeader(FrameType.Message, limit));
    await c.closed;
    expect(logs.some((l) => l.includes(`frame of ${limit + 1} bytes exceeds the limit of ${limit}`))).toBe(true);
  });
});

describe('peer transport limits', () => {
  const open: TcpTransport[] = [];
  afterAll(async () => {
    for (const t of open) await t.close();
  });

  it('caps connections still in their handshake, and closes one that stalls mid-frame after its Hello', async () => {
    const tLogs: string[] = [];
    const t = await TcpTransport.listen({
      id: 1,
      clusterToken,
      admissionSecret: secret,
      port: 0,
      log: (level, msg) => tLogs.push(`${level}: ${msg}`),
      bounds: { inboundHandshakesMax: 4, inboundConnectionsMax: 8, stallTimeoutMs: 300 },
    });
    open.push(t);
    t.start(() => {});
    const silent: net.Socket[] = [];
    const closedEarly: boolean[] = [];
    for (let i = 0; i < 10; i++) {
      const s = net.connect(t.address.port, '127.0.0.1');
      s.on('error', () => {});
      silent.push(s);
      const idx = i;
      closedEarly[idx] = false;
      s.once('close', () => (closedEarly[idx] = true));
      await new Promise<void>((r) => s.once('connect', () => r()).once('close', () => r()));
    }
    await waitFor('the connections over the cap to be closed', () => closedEarly.filter(Boolean).length >= 6);
    expect(closedEarly.slice(0, 4)).toEqual([false, false, false, false]);
    expect(tLogs.some((l) => l.includes('closing new connections') && l.includes('4 in handshake'))).toBe(true);
    for (const s of silent) s.destroy();

    // An admitted connection that starts a frame and stops is closed after stallTimeoutMs; one
    // idle between frames stays. (The server may not have seen the sockets above go yet:
    // connect until one is accepted.)
    const claims = { version: protocolVersion, clusterToken, from: 2, to: 1 };
    let closed: Promise<void> | null = null;
    let socket: net.Socket | null = null;
    await waitFor('an admitted connection', async () => {
      const s = net.connect(t.address.port, '127.0.0.1');
      s.on('error', () => {});
      const reader = new FrameReader();
      let accepted = false;
      s.on('data', (c) => {
        for (const f of reader.push(c)) if (f.type === FrameType.Accept) accepted = true;
      });
      const gone = new Promise<void>((r) => s.once('close', () => r()));
      await new Promise<void>((r) => s.once('connect', () => r()).once('close', () => r()));
      if (!s.destroyed) s.write(encodeFrame(FrameType.Hello, encodeHello({ ...claims, proof: helloProof(secret, claims) })));
      await Promise.race([gone, new Promise((r) => setTimeout(r, 100))]);
      if (accepted) [closed, socket] = [gone, s];
      return accepted;
    });
    let isClosed = false;
    void closed!.then(() => (isClosed = true));
    // Idle between frames for twice the stall timeout, after a whole frame: still open.
    const heartbeat = encodeFrame(FrameType.Message, encodeMessage(newMessage(MessageType.Heartbeat, 1, 2, 1)));
    socket!.write(heartbeat);
    await new Promise((r) => setTimeout(r, 600));
    expect(isClosed).toBe(false);
    // Half a frame, then nothing.
    socket!.write(heartbeat.subarray(0, 8));
    await closed;
    expect(tLogs.some((l) => l.includes('stalled for 300 ms in a frame with 8 bytes received'))).toBe(true);
  });

  it('with --peer-cert-allowed-cn, accepts only peers whose certificate carries that CommonName', async () => {
    const tls = makeCert('meshkv-peer');
    const heard: Message[] = [];
    const strict = await TcpTransport.listen({ id: 1, clusterToken, admissionSecret: secret, port: 0, tls, allowedCn: 'another-name', log: () => {} });
    const loose = await TcpTransport.listen({ id: 3, clusterToken, admissionSecret: secret, port: 0, tls, allowedCn: 'meshkv-peer' });
    const sender = await TcpTransport.listen({ id: 2, clusterToken, admissionSecret: secret, port: 0, tls });
    open.push(strict, loose, sender);
    strict.start((m) => heard.push(m));
    loose.start((m) => heard.push(m));
    sender.start(() => {});
    sender.addPeer(1, strict.addressString);
    sender.addPeer(3, loose.addressString);
    for (let i = 0; !heard.some((m) => m.to === 3); i++) {
      if (i > 200) throw new Error('the allowed peer was never heard');
      sender.send([newMessage(MessageType.Heartbeat, 1, 2, 1), newMessage(MessageType.Heartbeat, 3, 2, 1)]);
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(heard.filter((m) => m.to === 1)).toEqual([]);
  });
});

function makeCert(cn: string): TcpTlsOptions {
  const d = mkdtempSync(join(tmpdir(), 'meshkv-sec-tls-'));
  try {
    const r = spawnSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', `/CN=${cn}`, '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(d, 'key.pem'), '-out', join(d, 'cert.pem'),
    ]);
    if (r.status !== 0) throw new Error(`openssl could not make a test certificate: ${r.stderr.toString()}`);
    const cert = readFileSync(join(d, 'cert.pem'), 'utf8');
    return { cert, key: readFileSync(join(d, 'key.pem'), 'utf8'), ca: cert };
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
}
