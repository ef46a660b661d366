// The client port's handshake deadline (EtcdListenerOptions.handshakeTimeoutMs): a connection
// that does not finish its TLS handshake, or send enough to be routed, in time is closed, but a
// pause of this process (SIGSTOP, a debugger, Atomics.wait) does not count against a client
// whose bytes wait unread meanwhile. Node's tls.Server handshakeTimeout, used before, fired at
// once after a pause and the listener dropped the healthy client.

import net from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdListener, type EtcdListenerOptions } from '../../adapters/etcd-api/listener.ts';
import { MemoryHub } from '../../adapters/transport/memory.ts';
import type { KvMember } from '../../src/server/kv-member.ts';
import { startKvMember } from '../helpers/kv-members.ts';
import { makeSelfSignedCert } from '../helpers/tls-cert.ts';
import { waitFor } from '../helpers/wait.ts';

const handshakeTimeoutMs = 200;
let kv: KvMember;
let cert: ReturnType<typeof makeSelfSignedCert>;
const listeners: EtcdListener[] = [];
const sockets: net.Socket[] = [];

beforeAll(async () => {
  kv = await startKvMember(new MemoryHub(), 1, [1]);
  await waitFor('a leader', () => kv.isLeader());
  cert = makeSelfSignedCert();
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  for (const l of listeners) await l.close();
  await kv.stop();
});

async function listen(extra: Partial<EtcdListenerOptions>): Promise<EtcdListener> {
  const l = await EtcdListener.listen({ kv, host: '127.0.0.1', port: 0, clusterId: '1', members: () => undefined, handshakeTimeoutMs, ...extra });
  listeners.push(l);
  return l;
}

/** A TCP connection the listener holds (its deadline runs), with nothing sent yet. */
async function held(l: EtcdListener): Promise<net.Socket> {
  const before = (l as unknown as { sockets: Set<unknown> }).sockets.size;
  const raw = net.connect(l.port, '127.0.0.1');
  sockets.push(raw);
  raw.on('error', () => {});
  await new Promise<void>((r) => raw.once('connect', () => r()));
  await waitFor('the listener to hold the connection', () => (l as unknown as { sockets: Set<unknown> }).sockets.size === before + 1);
  return raw;
}

/** Stops this process for `ms`, as SIGSTOP would: sockets' bytes wait in the kernel meanwhile. */
function pause(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

const closed = (s: net.Socket) => new Promise<void>((r) => (s.destroyed ? r() : s.once('close', () => r())));

/** Reads one HTTP/1.1 response's status line from `s`. */
function statusLine(s: net.Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    s.on('data', (c: Buffer) => {
      text += c.toString();
      if (text.includes('\r\n')) resolve(text.slice(0, text.indexOf('\r\n')));
    });
    s.once('close', () => reject(new Error(`closed before a response (${JSON.stringify(text)})`)));
  });
}

const versionRequest = 'GET /version HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n';

describe('client port handshake deadline', () => {
  it('closes a TLS connection that sends nothing, and a plain one that sends too little to route', async () => {
    const secure = await listen({ tls: { cert: cert.cert, key: cert.key } });
    await closed(await held(secure));
    const plain = await listen({});
    const raw = await held(plain);
    raw.write('PRI * HTTP'); // the start of an HTTP/2 preface: not yet decided
    await closed(raw);
  });

  it('completes a TLS handshake that waited while the process was paused past the deadline', async () => {
    const l = await listen({ tls: { cert: cert.cert, key: cert.key } });
    const raw = await held(l);
    const client = tls.connect({ socket: raw, host: '127.0.0.1', ca: cert.ca, ALPNProtocols: ['http/1.1'] });
    client.on('error', () => {});
    const response = statusLine(client);
    pause(5 * handshakeTimeoutMs);
    await new Promise<void>((resolve, reject) => {
      client.once('secureConnect', () => resolve());
      client.once('close', () => reject(new Error('the listener closed the connection during its TLS handshake')));
    });
    client.write(versionRequest);
    expect(await response).toBe('HTTP/1.1 200 OK');
  });

  it('routes a plain request that waited while the process was paused past the deadline', async () => {
    const l = await listen({});
    const raw = await held(l);
    const response = statusLine(raw);
    raw.write(versionRequest);
    pause(5 * handshakeTimeoutMs);
    expect(await response).toBe('HTTP/1.1 200 OK');
  });
});
