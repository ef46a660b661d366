import net from 'node:net';
import tls from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import {
  FrameReader,
  FrameType,
  encodeFrame,
  encodeHello,
  encodeSnapshotHead,
  frameBytesMax,
  protocolVersion,
  snapshotChunkBytes,
  type Hello,
} from '../../adapters/transport/tcp/frame.ts';
import { helloProof } from '../../adapters/transport/tcp/admission.ts';
import { TcpTransport, TcpTransportError, type TcpTlsOptions, type TcpTransportOptions } from '../../adapters/transport/tcp/index.ts';
import { encodeMessage } from '../../src/codec/message.ts';
import { EntryType, MessageType, newMessage, type MemberId, type Message } from '../../src/raft/types.ts';
import type { Transport } from '../../src/seams.ts';
import { transportCompliance } from './compliance.ts';
import { waitFor } from '../helpers/wait.ts';
import { freePort } from '../helpers/processes.ts';
import { makeSelfSignedCert } from '../helpers/tls-cert.ts';

const admissionSecret = 'tcp-test-admission-secret';

async function tcpCluster(ids: MemberId[], tls?: TcpTlsOptions) {
  const byId = new Map<number, TcpTransport>();
  for (const id of ids) byId.set(id, await TcpTransport.listen({ id, clusterToken: 'compliance', admissionSecret: 'compliance-admission-secret', port: 0, tls }));
  for (const [id, t] of byId) for (const [peer, p] of byId) if (peer !== id) t.addPeer(peer, p.addressString);
  return {
    transports: new Map<number, Transport>(byId),
    async close() {
      for (const t of byId.values()) await t.close();
    },
  };
}

transportCompliance('tcp', (ids) => tcpCluster(ids));

let complianceCert: TcpTlsOptions | null = null;
transportCompliance('tcp with mutual TLS', (ids) => tcpCluster(ids, (complianceCert ??= makeSelfSignedCert())));

describe('tcp transport', () => {
  const open: TcpTransport[] = [];
  const rawSockets: net.Socket[] = [];
  afterEach(async () => {
    for (const s of rawSockets.splice(0)) s.destroy();
    for (const t of open.splice(0)) await t.close();
  });

  async function listen(id: MemberId, extra: Partial<TcpTransportOptions> = {}): Promise<{ t: TcpTransport; inbox: Message[]; logs: string[] }> {
    const logs: string[] = [];
    const t = await TcpTransport.listen({ id, clusterToken: 'test-cluster', admissionSecret, port: 0, log: (level, msg) => logs.push(`${level}: ${msg}`), ...extra });
    open.push(t);
    const inbox: Message[] = [];
    t.start((m) => inbox.push(m));
    return { t, inbox, logs };
  }

  /** A raw client that has sent a Hello (none when `hello` is null) and received the Accept (unless `expectAccept` is false). */
  async function rawClient(target: TcpTransport, hello: Partial<Hello> | null = {}, expectAccept = true): Promise<{ socket: net.Socket; frames: FrameType[]; closed: Promise<void> }> {
    const socket = net.connect(target.address.port, '127.0.0.1');
    rawSockets.push(socket);
    const frames: FrameType[] = [];
    const reader = new FrameReader();
    reader.frameBytesLimit = 1 << 20;
    socket.on('data', (c) => {
      for (const f of reader.push(c)) frames.push(f.type);
    });
    socket.on('error', () => {});
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    await new Promise<void>((r) => socket.once('connect', () => r()));
    if (hello !== null) {
      const claims = { version: protocolVersion, clusterToken: 'test-cluster', from: 1, to: 2, ...hello };
      socket.write(encodeFrame(FrameType.Hello, encodeHello({ proof: helloProof(admissionSecret, claims), ...claims })));
      if (expectAccept) await waitFor('Accept', () => frames.includes(FrameType.Accept));
    }
    return { socket, frames, closed };
  }

  function heartbeat(from: MemberId, to: MemberId, commit: number): Message {
    const m = newMessage(MessageType.Heartbeat, to, from, 1);
    m.commit = commit;
    return m;
  }

  it('an occupied port gives a clear error', async () => {
    const { t } = await listen(1);
    const err = await TcpTransport.listen({ id: 2, clusterToken: 'x', admissionSecret, port: t.address.port }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TcpTransportError);
    expect((err as TcpTransportError).code).toBe('address-in-use');
    expect((err as Error).message).toBe(`listen 127.0.0.1:${t.address.port}: address in use`);
  });

  it('refuses bounds that cannot work', async () => {
    await expect(TcpTransport.listen({ id: 1, clusterToken: 'x', admissionSecret, port: 0, bounds: { queueMessagesMax: 0 } })).rejects.toThrow(
      new TcpTransportError('invalid-options', 'bound queueMessagesMax is 0, not a positive integer'),
    );
    await expect(TcpTransport.listen({ id: 1, clusterToken: 'x', admissionSecret, port: 0, bounds: { reconnectDelayMsMin: 500, reconnectDelayMsMax: 100 } })).rejects.toThrow(
      /reconnectDelayMsMin 500 exceeds reconnectDelayMsMax 100/,
    );
    await expect(TcpTransport.listen({ id: 0, clusterToken: 'x', admissionSecret, port: 0 })).rejects.toThrow(/member id 0/);
  });

  it('refuses malformed peer addresses', async () => {
    const { t } = await listen(1);
    for (const bad of ['localhost', 'host:0', 'host:70000', ':2380', 'a:b:c'])
      expect(() => t.addPeer(2, bad), bad).toThrow(new TcpTransportError('invalid-address', `peer address "${bad}" is not host:port`));
    expect(() => t.addPeer(1, '127.0.0.1:2380')).toThrow(/own id/);
    expect(() => t.addPeer(2, '[::1]:2380')).not.toThrow();
  });

  it('reconnects after the remote restarts on the same port', async () => {
    const a = await listen(1, { bounds: { reconnectDelayMsMax: 100 } });
    let b = await listen(2);
    const port = b.t.address.port;
    a.t.addPeer(2, b.t.addressString);
    a.t.send([heartbeat(1, 2, 1)]);
    await waitFor('first message', () => b.inbox.length === 1);
    await b.t.close();
    await waitFor('the link to notice', () => a.logs.some((l) => l.includes('connection to peer 2') && l.includes('ECONNREFUSED')));
    b = await listen(2, { port });
    // Messages sent while the peer was down wait in the queue and go out on reconnection.
    for (let i = 0; !b.inbox.some((m) => m.commit === 2); i++) {
      if (i > 200) throw new Error(`no delivery after restart; logs: ${a.logs.join(' | ')}`);
      a.t.send([heartbeat(1, 2, 2)]);
      await sleep(20);
    }
    // Messages go out before the Accept comes back, so the log line may trail the delivery.
    await waitFor('the reconnection log', () => a.logs.includes(`info: tcp transport 1: connected to peer 2 (127.0.0.1:${port})`));
  });

  it('writes what send() is given before it returns: a message sent right before close() still arrives', async () => {
    const a = await listen(1);
    const b = await listen(2);
    a.t.addPeer(2, b.t.addressString);
    a.t.send([heartbeat(1, 2, 1)]);
    await waitFor('first message', () => b.inbox.length === 1);
    await waitFor('the link to be accepted', () => a.t.activeSince(2) !== null);
    // close() destroys the link's socket at once: only bytes already handed to the kernel leave.
    a.t.send([heartbeat(1, 2, 2), heartbeat(1, 2, 3)]);
    await a.t.close();
    await waitFor('the messages sent before close()', () => b.inbox.some((m) => m.commit === 3));
    expect(b.inbox.map((m) => m.commit)).toEqual([1, 2, 3]);
  });

  it('refuses a peer with a different cluster token, and says why on both sides', async () => {
    const a = await listen(1, { clusterToken: 'cluster-a' });
    const b = await listen(2, { clusterToken: 'cluster-b' });
    a.t.addPeer(2, b.t.addressString);
    a.t.send([heartbeat(1, 2, 1)]);
    const reason = 'cluster token mismatch: member 1 has another --initial-cluster-token than member 2';
    await waitFor('refusal', () => a.logs.some((l) => l.includes(`refused the connection: ${reason}`)));
    expect(b.logs.some((l) => l.startsWith('warn: tcp transport 2: refused connection from') && l.endsWith(reason))).toBe(true);
    await sleep(100);
    expect(b.inbox).toEqual([]);
  });

  it('refuses a connection that sends no Hello in time', async () => {
    const b = await listen(2, { bounds: { handshakeTimeoutMs: 50 } });
    const c = await rawClient(b.t, null);
    await c.closed;
    expect(c.frames).toEqual([FrameType.Refuse]);
    expect(b.logs.some((l) => l.endsWith('no hello within 50 ms'))).toBe(true);
  });

  it('accepts a Hello that arrived while the process was paused for longer than the handshake timeout', async () => {
    const handshakeTimeoutMs = 200;
    const b = await listen(2, { bounds: { handshakeTimeoutMs } });
    const c = await rawClient(b.t, null);
    // The listener has accepted the connection (its handshake timer runs) before the pause.
    await waitFor('the listener to accept the connection', () => (b.t as unknown as { inbound: Set<unknown> }).inbound.size === 1);
    const claims = { version: protocolVersion, clusterToken: 'test-cluster', from: 1, to: 2 };
    c.socket.write(encodeFrame(FrameType.Hello, encodeHello({ proof: helloProof(admissionSecret, claims), ...claims })));
    // This process stops running, as under SIGSTOP: the Hello waits in the kernel's buffer while
    // the timer's deadline passes, and on resume both are due at once.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5 * handshakeTimeoutMs);
    await waitFor('Accept or Refuse', () => c.frames.length > 0);
    expect(c.frames).toEqual([FrameType.Accept]);
    expect(b.logs.filter((l) => l.includes('refused'))).toEqual([]);
  });

  it('keeps a connection whose frame completed while the process was paused for longer than the stall timeout', async () => {
    const stallTimeoutMs = 200;
    const b = await listen(2, { bounds: { stallTimeoutMs } });
    const c = await rawClient(b.t);
    const frame = encodeFrame(FrameType.Message, encodeMessage(heartbeat(1, 2, 7)));
    const half = Math.floor(frame.length / 2);
    c.socket.write(frame.subarray(0, half));
    // The listener holds a partial frame: its stall timer runs.
    const inbound = (b.t as unknown as { inbound: Set<{ reader: { pendingBytes: number } }> }).inbound;
    await waitFor('the first half read', () => [...inbound].some((conn) => conn.reader.pendingBytes === half));
    c.socket.write(frame.subarray(half));
    // This process stops running, as under SIGSTOP: the rest of the frame waits in the kernel's
    // buffer while the stall deadline passes, and on resume the timer runs before the read.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5 * stallTimeoutMs);
    await waitFor('the message', () => b.inbox.length === 1);
    expect(b.inbox[0].commit).toBe(7);
    expect(b.logs.filter((l) => l.includes('stalled'))).toEqual([]);
    expect(c.socket.destroyed).toBe(false);
  });

  /** A raw TCP connection to `target` that the listener holds (its TLS handshake deadline runs), with no TLS byte sent yet. */
  async function heldConnection(target: TcpTransport): Promise<net.Socket> {
    const raw = net.connect(target.address.port, '127.0.0.1');
    rawSockets.push(raw);
    raw.on('error', () => {});
    await new Promise<void>((r) => raw.once('connect', () => r()));
    await waitFor('the listener to hold the connection', () => (target as unknown as { sockets: Set<unknown> }).sockets.size === 1);
    return raw;
  }

  it('closes a connection that does not finish its TLS handshake in time', async () => {
    const b = await listen(2, { tls: (tlsCert ??= makeSelfSignedCert()), bounds: { handshakeTimeoutMs: 50 } });
    const raw = await heldConnection(b.t);
    const port = raw.localPort;
    await new Promise<void>((r) => (raw.destroyed ? r() : raw.once('close', () => r())));
    expect(b.logs.filter((l) => l.includes('no TLS handshake'))).toEqual([`warn: tcp transport 2: closing connection from 127.0.0.1:${port}: no TLS handshake within 50 ms`]);
  });

  it('completes a TLS handshake that arrived while the process was paused for longer than the handshake timeout', async () => {
    const handshakeTimeoutMs = 200;
    const creds = (tlsCert ??= makeSelfSignedCert());
    const b = await listen(2, { tls: creds, bounds: { handshakeTimeoutMs } });
    const raw = await heldConnection(b.t);
    const secure = tls.connect({ socket: raw, host: '127.0.0.1', cert: creds.cert, key: creds.key, ca: creds.ca });
    secure.on('error', () => {});
    const frames: FrameType[] = [];
    const reader = new FrameReader();
    reader.frameBytesLimit = 1 << 20;
    secure.on('data', (c) => {
      for (const f of reader.push(c)) frames.push(f.type);
    });
    // This process stops running, as under SIGSTOP: the client's TLS bytes wait in the kernel's
    // buffers while the listener's handshake deadline passes, and on resume it is due at once.
    // Node's own handshakeTimeout dropped the connection here.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5 * handshakeTimeoutMs);
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', () => resolve());
      secure.once('close', () => reject(new Error(`the TLS connection closed before its handshake; listener logs: ${b.logs.join(' | ')}`)));
    });
    const claims = { version: protocolVersion, clusterToken: 'test-cluster', from: 1, to: 2 };
    secure.write(encodeFrame(FrameType.Hello, encodeHello({ proof: helloProof(admissionSecret, claims), ...claims })));
    await waitFor('Accept', () => frames.includes(FrameType.Accept));
    expect(b.logs.filter((l) => l.includes('TLS handshake') && !l.startsWith('debug'))).toEqual([]);
    expect(b.logs.some((l) => l.startsWith('debug: tcp transport 2: the TLS handshake timer of 127.0.0.1:') && l.includes('(this process was paused)'))).toBe(true);
  });

  it('refuses a Hello meant for another member', async () => {
    const b = await listen(2);
    const c = await rawClient(b.t, { to: 3 }, false);
    await c.closed;
    expect(c.frames).toEqual([FrameType.Refuse]);
    expect(b.logs.some((l) => l.endsWith('member 1 expected member 3 at this address, but this is member 2'))).toBe(true);
  });

  it('drops messages whose from differs from the handshake, and keeps the connection', async () => {
    const b = await listen(2);
    const c = await rawClient(b.t, { from: 1 });
    c.socket.write(encodeFrame(FrameType.Message, encodeMessage(heartbeat(3, 2, 1))));
    c.socket.write(encodeFrame(FrameType.Message, encodeMessage(heartbeat(1, 3, 2))));
    c.socket.write(encodeFrame(FrameType.Message, encodeMessage(heartbeat(1, 2, 3))));
    await waitFor('the genuine message', () => b.inbox.length === 1);
    expect(b.inbox[0].commit).toBe(3);
    expect(b.logs.some((l) => l.endsWith('claiming to be from member 3'))).toBe(true);
    expect(b.logs.some((l) => l.endsWith('addressed to member 3'))).toBe(true);
  });

  it('drops an undecodable message frame but keeps the connection; refuses local types', async () => {
    const b = await listen(2);
    const c = await rawClient(b.t);
    c.socket.write(encodeFrame(FrameType.Message, new Uint8Array([1, 0xc1, 0xc1])));
    const local = encodeMessage(heartbeat(1, 2, 9));
    local[2] = MessageType.Prop;
    c.socket.write(encodeFrame(FrameType.Message, local));
    c.socket.write(encodeFrame(FrameType.Message, encodeMessage(heartbeat(1, 2, 4))));
    await waitFor('the valid message', () => b.inbox.length === 1);
    expect(b.inbox[0].commit).toBe(4);
    expect(b.logs.filter((l) => l.includes('dropped message from peer 1')).map((l) => l.replace(/.*: undecodable/, 'undecodable').replace(/.*: /, ''))).toHaveLength(2);
    expect(b.logs.some((l) => l.endsWith('message type 2 is local'))).toBe(true);
  });

  it('closes connections whose framing is broken, and keeps serving others', async () => {
    const b = await listen(2);
    const garbage = await rawClient(b.t, null);
    garbage.socket.write(new Uint8Array([0, 0, 0, 9, 0xee, 1, 2, 3, 4, 5, 6, 7, 8]));
    await garbage.closed;
    const hugeBeforeHello = await rawClient(b.t, null);
    hugeBeforeHello.socket.write(new Uint8Array([0xff, 0xff, 0xff, 0xff, FrameType.Hello]));
    await hugeBeforeHello.closed;
    const hugeAfterHello = await rawClient(b.t);
    hugeAfterHello.socket.write(new Uint8Array([0xff, 0xff, 0xff, 0xff, FrameType.Message]));
    await hugeAfterHello.closed;
    expect(b.logs.filter((l) => l.includes('closing connection from')).map((l) => l.replace(/.*: /, ''))).toEqual([
      'unknown frame type 238',
      'frame of 4294967295 bytes exceeds the limit of 1024',
      `frame of 4294967295 bytes exceeds the limit of ${frameBytesMax}`,
    ]);
    const a = await listen(1);
    a.t.addPeer(2, b.t.addressString);
    a.t.send([heartbeat(1, 2, 5)]);
    await waitFor('a genuine peer after the garbage', () => b.inbox.length === 1);
  });

  it('discards a snapshot stream cut by a disconnect', async () => {
    const b = await listen(2);
    const c = await rawClient(b.t);
    const snap = newMessage(MessageType.Snap, 2, 1, 3);
    snap.snapshot = { metadata: { index: 10, term: 3, confState: { voters: [1, 2], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false } }, data: new Uint8Array(0) };
    c.socket.write(encodeFrame(FrameType.SnapshotHead, encodeSnapshotHead(3 * snapshotChunkBytes, encodeMessage(snap))));
    c.socket.write(encodeFrame(FrameType.SnapshotChunk, new Uint8Array(snapshotChunkBytes)));
    await sleep(50);
    c.socket.destroy();
    await waitFor('the discard', () => b.logs.some((l) => l.endsWith(`interrupted at ${snapshotChunkBytes}/${3 * snapshotChunkBytes} bytes; discarded`)));
    expect(b.inbox).toEqual([]);
    const d = await rawClient(b.t);
    d.socket.write(encodeFrame(FrameType.SnapshotChunk, new Uint8Array(10)));
    await d.closed;
    expect(b.logs.some((l) => l.endsWith('snapshot chunk without a snapshot head'))).toBe(true);
  });

  it('bounds the queue to an unreachable peer: drops the oldest and logs', async () => {
    const a = await listen(1, { bounds: { queueMessagesMax: 100, reconnectDelayMsMax: 50 } });
    const port = await freePort();
    a.t.addPeer(2, `127.0.0.1:${port}`);
    const snap = newMessage(MessageType.Snap, 2, 1, 1);
    snap.snapshot = { metadata: { index: 5, term: 1, confState: { voters: [1, 2], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false } }, data: new Uint8Array(2 * snapshotChunkBytes).fill(9) };
    a.t.send([snap]);
    for (let i = 0; i < 500; i++) a.t.send([heartbeat(1, 2, i)]);
    expect(a.t.queuedMessages(2)).toBe(100);
    expect(a.logs.filter((l) => l.includes('is full'))).toEqual([
      `warn: tcp transport 1: queue to peer 2 (127.0.0.1:${port}) is full (queueMessagesMax 100, queueBytesMax ${64 * 1024 * 1024}): dropping the oldest messages`,
    ]);
    const b = await listen(2, { port });
    await waitFor('the queued messages', () => b.inbox.length === 100, 5000).catch((e) => { throw new Error(`${e.message}: ${b.inbox.length} arrived; ${a.logs.join(' | ')} // ${b.logs.join(' | ')}`); });
    // The snapshot survives; of the heartbeats, only the newest 99 do.
    expect(b.inbox.filter((m) => m.type === MessageType.Snap).map((m) => m.snapshot!.data.length)).toEqual([2 * snapshotChunkBytes]);
    expect(b.inbox.filter((m) => m.type === MessageType.Heartbeat).map((m) => m.commit)).toEqual(Array.from({ length: 99 }, (_, i) => 401 + i));
    await waitFor('the drop summary', () => a.logs.includes('info: tcp transport 1: dropped 401 messages to peer 2 while its queue was full'));
  });

  it('bounds the queue to a peer that stopped reading: drops by bytes and logs', async () => {
    const accepted: net.Socket[] = [];
    const stalled = net.createServer((socket) => {
      accepted.push(socket);
      socket.pause();
    });
    await new Promise<void>((r) => stalled.listen(0, '127.0.0.1', () => r()));
    try {
      const queueBytesMax = 2 * 1024 * 1024;
      const a = await listen(1, { bounds: { queueBytesMax } });
      a.t.addPeer(2, `127.0.0.1:${(stalled.address() as net.AddressInfo).port}`);
      const data = new Uint8Array(64 * 1024);
      for (let i = 0; i < 600; i++) {
        const m = newMessage(MessageType.App, 2, 1, 1);
        m.entries = [{ term: 1, index: i + 1, type: EntryType.Normal, data }];
        a.t.send([m]);
        if (i % 50 === 0) await sleep(5);
      }
      await waitFor('the byte bound to bite', () => a.logs.some((l) => l.includes(`is full (queueMessagesMax 4096, queueBytesMax ${queueBytesMax})`)));
      expect(a.t.queuedMessages(2)).toBeLessThanOrEqual(Math.ceil(queueBytesMax / data.length));
    } finally {
      for (const socket of accepted) socket.destroy();
      await new Promise<void>((r) => stalled.close(() => r()));
    }
  });

  it('carries messages over mutual TLS; refuses a plain-TCP peer', async () => {
    const creds = makeSelfSignedCert();
    const a = await listen(1, { tls: creds });
    const b = await listen(2, { tls: creds });
    a.t.addPeer(2, b.t.addressString);
    b.t.addPeer(1, a.t.addressString);
    a.t.send([heartbeat(1, 2, 1)]);
    b.t.send([heartbeat(2, 1, 2)]);
    await waitFor('TLS delivery both ways', () => a.inbox.length === 1 && b.inbox.length === 1);
    const plain = await listen(3);
    plain.t.addPeer(2, b.t.addressString);
    plain.t.send([heartbeat(3, 2, 3)]);
    await waitFor('the TLS listener to refuse plain TCP', () => b.logs.some((l) => l.includes('TLS handshake with a client failed')));
    await sleep(100);
    expect(b.inbox.map((m) => m.from)).toEqual([1]);
  });
});

/** One self-signed certificate for the TLS tests that need no particular one (openssl takes a while). */
let tlsCert: TcpTlsOptions | undefined;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));


/** A port nothing listens on (just released by a throwaway listener). */
