// The client port's gRPC transport (adapters/etcd-api/grpc-h2.ts), on node:http2 and on
// meshkv's own HTTP/2 server (h2/), driven by a raw node:http2 client: what gRPC clients see on the wire for good calls, and a clear status (never a crash
// or a hung stream) for bad ones: wrong content-type, unknown methods, malformed, truncated,
// compressed and oversized messages, a second message on a unary call, deadlines, and cancels
// that must free a watch stream's state.

import * as http2 from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packageDefinition } from '../../adapters/etcd-api/proto.ts';
import { grpcOverheadBytes } from '../../adapters/etcd-api/grpc-server.ts';
import { encodeGrpcMessage } from '../../adapters/etcd-api/grpc-h2.ts';
import { DEFAULT_LIMITS } from '../../src/mvcc/validate.ts';
import { serve, waitFor, type Served } from './harness.ts';

type Wire = Record<string, any>;
interface Codec {
  requestSerialize(w: Wire): Buffer;
  responseDeserialize(b: Buffer): Wire;
}
const method = (service: string, name: string) => (packageDefinition[`etcdserverpb.${service}`] as unknown as Record<string, Codec>)[name]!;
const Put = method('KV', 'Put');
const Range = method('KV', 'Range');
const Watch = method('Watch', 'Watch');

function frame(message: Buffer, flag = 0): Buffer {
  const prefix = Buffer.alloc(5);
  prefix[0] = flag;
  prefix.writeUInt32BE(message.length, 1);
  return Buffer.concat([prefix, message]);
}

interface Answer {
  headers: http2.IncomingHttpHeaders;
  trailers: http2.IncomingHttpHeaders;
  body: Buffer;
  /** grpc-status from the trailers, or from the headers of a trailers-only answer. */
  status: number;
  message: string;
}

let s: Served;
let session: http2.ClientHttp2Session;


/** One request on the shared connection; resolves when the server has closed the stream. */
function request(path: string, body: Buffer | null, headers: http2.OutgoingHttpHeaders = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...headers });
    let got: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    stream.on('response', (h) => (got = h));
    stream.on('trailers', (t) => (trailers = t));
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('error', reject);
    stream.on('close', () => {
      const status = trailers['grpc-status'] ?? got['grpc-status'];
      const message = trailers['grpc-message'] ?? got['grpc-message'] ?? '';
      resolve({ headers: got, trailers, body: Buffer.concat(chunks), status: Number(status), message: decodeURIComponent(String(message)) });
    });
    if (body === null) stream.end();
    else stream.end(body);
  });
}

/** The messages of a response body. */
function messages(body: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let pos = 0; pos < body.length; ) {
    const n = body.readUInt32BE(pos + 1);
    out.push(body.subarray(pos + 5, pos + 5 + n));
    pos += 5 + n;
  }
  return out;
}

const putBytes = (key: string, value: string) => Put.requestSerialize({ key: Buffer.from(key), value: Buffer.from(value) });

// The same calls on both HTTP/2 servers the client port can run (--http2-server).
describe.each(['node', 'meshkv'] as const)('gRPC on the %s HTTP/2 server (grpc-h2.ts)', (http2Server) => {
  beforeAll(async () => {
    s = await serve({ http2Server });
    session = http2.connect(`http://${s.endpoint}`);
    session.on('error', () => {});
  });

  afterAll(async () => {
    session?.close();
    await s?.stop();
  });

  it('answers a unary call with :status 200, application/grpc, one message and grpc-status 0 in the trailers', async () => {
    const a = await request('/etcdserverpb.KV/Put', frame(putBytes('h2/a', 'one')));
    expect(a.headers[':status']).toBe(200);
    expect(a.headers['content-type']).toBe('application/grpc');
    expect(a.trailers['grpc-status']).toBe('0');
    const [res] = messages(a.body);
    expect(Number(Put.responseDeserialize(res!).header.revision)).toBeGreaterThan(1);
    const r = await request('/etcdserverpb.KV/Range', frame(Range.requestSerialize({ key: Buffer.from('h2/a') })));
    expect(Range.responseDeserialize(messages(r.body)[0]!).kvs.map((kv: Wire) => String(kv.value))).toEqual(['one']);
  });

  it('a message split across DATA frames, and its prefix split too, is read whole', async () => {
    const bytes = frame(putBytes('h2/split', 'x'.repeat(40_000)));
    const stream = session.request({ ':method': 'POST', ':path': '/etcdserverpb.KV/Put', 'content-type': 'application/grpc+proto', te: 'trailers' });
    const trailers = new Promise<http2.IncomingHttpHeaders>((resolve) => stream.on('trailers', resolve));
    stream.on('data', () => {});
    stream.write(bytes.subarray(0, 3));
    stream.write(bytes.subarray(3, 20_000));
    stream.end(bytes.subarray(20_000));
    expect((await trailers)['grpc-status']).toBe('0');
    expect(s.kv.mvcc.range({ key: Buffer.from('h2/split') }).kvs[0]!.value.length).toBe(40_000);
  });

  it('refuses a content-type that is not gRPC with 415 and a status', async () => {
    const a = await request('/etcdserverpb.KV/Put', frame(putBytes('h2/ct', 'v')), { 'content-type': 'application/json' });
    expect(a.headers[':status']).toBe(415);
    expect(a.status).toBe(13);
    expect(a.message).toBe('invalid gRPC request content-type "application/json"');
    expect(s.kv.mvcc.range({ key: Buffer.from('h2/ct') }).kvs).toEqual([]);
  });

  it('answers unknown services and methods with UNIMPLEMENTED, in grpc-go\'s words', async () => {
    const m = await request('/etcdserverpb.KV/Frobnicate', frame(Buffer.alloc(0)));
    expect([m.headers[':status'], m.status, m.message]).toEqual([200, 12, 'unknown method Frobnicate for service etcdserverpb.KV']);
    const sv = await request('/etcdserverpb.Nope/Range', frame(Buffer.alloc(0)));
    expect([sv.status, sv.message]).toEqual([12, 'unknown service etcdserverpb.Nope']);
  });

  it('refuses a compressed message with UNIMPLEMENTED and an unknown flag with INTERNAL', async () => {
    const gz = await request('/etcdserverpb.KV/Put', frame(putBytes('h2/gz', 'v'), 1), { 'grpc-encoding': 'gzip' });
    expect([gz.status, gz.message]).toEqual([12, 'grpc: Decompressor is not installed for grpc-encoding "gzip"']);
    const odd = await request('/etcdserverpb.KV/Put', frame(putBytes('h2/gz', 'v'), 7));
    expect([odd.status, odd.message]).toEqual([13, 'grpc: received unexpected payload format 7']);
    expect(s.kv.mvcc.range({ key: Buffer.from('h2/gz') }).kvs).toEqual([]);
  });

  it('a truncated message, or a prefix cut short, gets INTERNAL', async () => {
    const whole = frame(putBytes('h2/cut', 'value'));
    const cut = await request('/etcdserverpb.KV/Put', whole.subarray(0, whole.length - 3));
    expect(cut.status).toBe(13);
    expect(cut.message).toMatch(/^grpc: request ended inside a message: \d+ bytes received of \d+ bytes$/);
    const prefix = await request('/etcdserverpb.KV/Put', whole.subarray(0, 3));
    expect([prefix.status, prefix.message]).toEqual([13, 'grpc: request ended inside a message: 3 bytes received of a 5-byte prefix']);
    expect(s.kv.mvcc.range({ key: Buffer.from('h2/cut') }).kvs).toEqual([]);
  });

  it('no message, or a second message, on a unary call gets INTERNAL and nothing is written', async () => {
    const none = await request('/etcdserverpb.KV/Put', null);
    expect([none.status, none.message]).toEqual([13, 'grpc: client sent no request message on a unary call']);
    const two = await request('/etcdserverpb.KV/Put', Buffer.concat([frame(putBytes('h2/two', '1')), frame(putBytes('h2/two', '2'))]));
    expect([two.status, two.message]).toEqual([13, 'grpc: client streaming protocol violation: get <nil>, want <EOF>']);
    expect(s.kv.mvcc.range({ key: Buffer.from('h2/two') }).kvs).toEqual([]);
  });

  it('bytes that are not the request message get INTERNAL "grpc: error unmarshalling request"', async () => {
    const a = await request('/etcdserverpb.KV/Put', frame(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f])));
    expect(a.status).toBe(13);
    expect(a.message).toMatch(/^grpc: error unmarshalling request: /);
    // The same from the methods protobufjs reads (loaded on their first call), the snapshot
    // stream included, and from Status: a truncated varint.
    for (const path of ['/etcdserverpb.Maintenance/HashKV', '/etcdserverpb.Maintenance/Snapshot', '/etcdserverpb.Maintenance/Status']) {
      const b = await request(path, frame(Buffer.from([0x08, 0x80])));
      expect([path, b.status]).toEqual([path, 13]);
      expect(b.message).toMatch(/^grpc: error unmarshalling request: /);
    }
  });

  it("answers every method of etcd's rpc.proto (none is UNIMPLEMENTED)", async () => {
    const paths = Object.entries(packageDefinition)
      .filter(([name]) => name.startsWith('etcdserverpb.'))
      .flatMap(([, service]) => Object.values(service as Record<string, { path?: string }>).map((m) => m.path))
      .filter((path): path is string => typeof path === 'string');
    expect(paths).toContain('/etcdserverpb.Maintenance/Status');
    // etcd 3.4: KV 5, Watch 1, Lease 5, Cluster 5, Maintenance 7, Auth 16.
    expect(paths.length).toBe(39);
    for (const path of paths) {
      // An empty request: most methods refuse it with etcd's error, none may be unknown.
      const a = await request(path, frame(Buffer.alloc(0)));
      expect([path, Number.isInteger(a.status), a.status === 12]).toEqual([path, true, false]);
    }
  });

  it('a message over the receive limit gets RESOURCE_EXHAUSTED from its prefix alone, and the connection keeps serving', async () => {
    const max = DEFAULT_LIMITS.requestBytesMax + grpcOverheadBytes;
    const prefix = Buffer.alloc(5);
    prefix.writeUInt32BE(max + 1, 1);
    // Only the prefix is sent: the answer must not wait for the body.
    const stream = session.request({ ':method': 'POST', ':path': '/etcdserverpb.KV/Put', 'content-type': 'application/grpc', te: 'trailers' });
    const headers = new Promise<http2.IncomingHttpHeaders>((resolve) => stream.on('response', resolve));
    stream.write(prefix);
    const h = await headers;
    expect([h['grpc-status'], h['grpc-message']]).toEqual(['8', `grpc: received message larger than max (${max + 1} vs. ${max})`]);
    stream.close();
    const ok = await request('/etcdserverpb.KV/Put', frame(putBytes('h2/after', 'ok')));
    expect(ok.status).toBe(0);
  });

  it('a malformed grpc-timeout gets INTERNAL; an expired one ends a watch stream with DEADLINE_EXCEEDED and frees its watcher', async () => {
    const bad = await request('/etcdserverpb.KV/Range', frame(Range.requestSerialize({ key: Buffer.from('a') })), { 'grpc-timeout': '5 seconds' });
    expect([bad.status, bad.message]).toEqual([13, 'transport: malformed grpc-timeout: "5 seconds"']);
    const before = s.listener.api.watcherCount;
    const stream = session.request({ ':method': 'POST', ':path': '/etcdserverpb.Watch/Watch', 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': '300m' });
    const trailers = new Promise<http2.IncomingHttpHeaders>((resolve) => stream.on('trailers', resolve));
    stream.on('data', () => {});
    stream.write(frame(Watch.requestSerialize({ create_request: { key: Buffer.from('h2/w') } })));
    await waitFor('the watcher created', () => s.listener.api.watcherCount === before + 1, 5000);
    const t = await trailers;
    expect([t['grpc-status'], t['grpc-message']]).toEqual(['4', 'context deadline exceeded']);
    expect(s.listener.api.watcherCount).toBe(before);
    stream.close();
  });

  it('a client cancel (RST_STREAM) ends a watch stream and frees its watchers; the server keeps serving', async () => {
    const before = s.listener.api.watcherCount;
    const stream = session.request({ ':method': 'POST', ':path': '/etcdserverpb.Watch/Watch', 'content-type': 'application/grpc', te: 'trailers' });
    const events: Wire[] = [];
    let pending = Buffer.alloc(0);
    stream.on('data', (c: Buffer) => {
      pending = Buffer.concat([pending, c]);
      while (pending.length >= 5 && pending.length >= 5 + pending.readUInt32BE(1)) {
        events.push(Watch.responseDeserialize(pending.subarray(5, 5 + pending.readUInt32BE(1))) as unknown as Wire);
        pending = pending.subarray(5 + pending.readUInt32BE(1));
      }
    });
    stream.write(frame(Watch.requestSerialize({ create_request: { key: Buffer.from('h2/c') } })));
    stream.write(frame(Watch.requestSerialize({ create_request: { key: Buffer.from('h2/d') } })));
    await waitFor('both watchers created', () => s.listener.api.watcherCount === before + 2, 5000);
    await request('/etcdserverpb.KV/Put', frame(putBytes('h2/c', 'seen')));
    await waitFor('the put\'s event', () => events.some((e) => e.events.length > 0), 5000);
    stream.close(http2.constants.NGHTTP2_CANCEL);
    await waitFor('the watchers freed', () => s.listener.api.watcherCount === before, 5000);
    expect((await request('/etcdserverpb.KV/Put', frame(putBytes('h2/c', 'later')))).status).toBe(0);
  });

  // A put's response and its events on the watch streams sharing its connection are separate
  // writes. Without TCP_NODELAY the second waited for the client's delayed ACK of the first
  // (~40 ms a put; a benchmark writer fell from ~220 to 21 puts/s when the response was second).
  it("a put's response and its events on busy watch streams of the same connection arrive without waiting for a delayed ACK", async () => {
    const watchStreams = 10;
    const puts = 60;
    const received = new Array<number>(watchStreams).fill(0);
    let allReceived: (() => void) | null = null;
    let want = 0;
    const before = s.listener.api.watcherCount;
    const streams = Array.from({ length: watchStreams }, (_, i) => {
      const stream = session.request({ ':method': 'POST', ':path': '/etcdserverpb.Watch/Watch', 'content-type': 'application/grpc', te: 'trailers' });
      let pending = Buffer.alloc(0);
      stream.on('data', (c: Buffer) => {
        pending = Buffer.concat([pending, c]);
        while (pending.length >= 5 && pending.length >= 5 + pending.readUInt32BE(1)) {
          received[i]! += (Watch.responseDeserialize(pending.subarray(5, 5 + pending.readUInt32BE(1))) as unknown as Wire).events.length;
          pending = pending.subarray(5 + pending.readUInt32BE(1));
        }
        if (allReceived !== null && received.every((n) => n >= want)) allReceived();
      });
      stream.on('error', () => {});
      stream.write(frame(Watch.requestSerialize({ create_request: { key: Buffer.from('h2/nd/'), range_end: Buffer.from('h2/nd0') } })));
      return stream;
    });
    await waitFor('the watchers created', () => s.listener.api.watcherCount === before + watchStreams, 5000);
    const latenciesMs: number[] = [];
    for (let i = 0; i < puts; i++) {
      const t0 = performance.now();
      want = i + 1;
      const events = new Promise<void>((resolve) => (allReceived = resolve));
      expect((await request('/etcdserverpb.KV/Put', frame(putBytes(`h2/nd/${i}`, 'v')))).status).toBe(0);
      if (!received.every((n) => n >= want)) await events;
      latenciesMs.push(performance.now() - t0);
    }
    allReceived = null;
    expect(received).toEqual(new Array(watchStreams).fill(puts));
    for (const stream of streams) stream.close(http2.constants.NGHTTP2_CANCEL);
    latenciesMs.sort((a, b) => a - b);
    // The delayed ACK holds back nearly every put by ~40 ms. The faster quarter is under 5 ms on
    // an idle machine and stays well under 20 ms on a loaded one (where the median may not).
    expect(latenciesMs[Math.floor(puts / 4)], `put-to-events latencies (ms): ${latenciesMs.map((x) => x.toFixed(1)).join(' ')}`).toBeLessThan(20);
  });

  it('a watch request that is not a WatchRequest fails that stream only, with INTERNAL', async () => {
    const a = await request('/etcdserverpb.Watch/Watch', frame(Buffer.from([0x0a, 0x05, 0x01])));
    expect(a.status).toBe(13);
    expect(a.message).toMatch(/^grpc: error unmarshalling request: /);
  });

  it('percent-encodes grpc-message outside printable ASCII, and "%" itself', () => {
    expect(encodeGrpcMessage('etcdserver: key not found')).toBe('etcdserver: key not found');
    expect(encodeGrpcMessage('50% of ключ\n')).toBe('50%25 of %D0%BA%D0%BB%D1%8E%D1%87%0A');
  });

  it('a GET is refused with 405, not served', async () => {
    const a = await request('/etcdserverpb.KV/Range', null, { ':method': 'GET' });
    expect(a.headers[':status']).toBe(405);
    expect(a.status).toBe(13);
  });
});
