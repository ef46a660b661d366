// meshkv's own HTTP/2 server (adapters/etcd-api/h2/) on the client port, driven over raw TCP
// sockets with hand-built frames: a good call frame by frame (etcdctl's `:authority:
// http://host:port` included), then bad input — malformed frames, bad HPACK, window overflow,
// oversize header lists, frames on idle and closed streams — each answered with GOAWAY or
// RST_STREAM and the HTTP/2 error code RFC 9113 names, never a crash: a client on another
// connection keeps being served throughout.

import * as http2 from 'node:http2';
import { connect, type Socket } from 'node:net';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeLiterals, HpackDecoder, type HeaderField } from '../../adapters/etcd-api/hpack.ts';
import { packageDefinition } from '../../adapters/etcd-api/proto.ts';
import { clientPreface, ErrorCode, Flag, frame, FrameType, goawayFrame, settingsFrame, Setting, windowUpdateFrame } from '../../adapters/etcd-api/h2/frames.ts';
import { serve, waitFor, type Served } from './harness.ts';

type Wire = Record<string, any>;
interface Codec {
  requestSerialize(w: Wire): Buffer;
  responseDeserialize(b: Buffer): Wire;
}
const Range = (packageDefinition['etcdserverpb.KV'] as unknown as Record<string, Codec>).Range!;
const Put = (packageDefinition['etcdserverpb.KV'] as unknown as Record<string, Codec>).Put!;
const Watch = (packageDefinition['etcdserverpb.Watch'] as unknown as Record<string, Codec>).Watch!;

interface Frame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}

/** A raw HTTP/2 client connection: sends bytes as given, parses every frame the server sends. */
class RawClient {
  readonly frames: Frame[] = [];
  closed = false;
  private readonly socket: Socket;
  private buf = Buffer.alloc(0);
  readonly decoder = new HpackDecoder();

  constructor(port: number) {
    this.socket = connect(port, '127.0.0.1');
    this.socket.on('data', (chunk: Buffer) => {
      this.buf = Buffer.concat([this.buf, chunk]);
      while (this.buf.length >= 9) {
        const length = this.buf.readUIntBE(0, 3);
        if (this.buf.length < 9 + length) break;
        this.frames.push({ type: this.buf[3]!, flags: this.buf[4]!, streamId: this.buf.readUInt32BE(5) & 0x7fffffff, payload: this.buf.subarray(9, 9 + length) });
        this.buf = this.buf.subarray(9 + length);
      }
    });
    this.socket.on('error', () => {});
    this.socket.on('close', () => (this.closed = true));
  }

  /** The preface and an empty SETTINGS frame, as every client starts. */
  start(): this {
    return this.send(Buffer.concat([clientPreface, settingsFrame([])]));
  }

  send(bytes: Buffer): this {
    this.socket.write(bytes);
    return this;
  }

  headers(streamId: number, fields: Record<string, string>, flags: number = Flag.END_HEADERS): this {
    return this.send(frame(FrameType.HEADERS, flags, streamId, encodeLiterals(toFields(fields))));
  }

  async next(what: string, pred: (f: Frame) => boolean): Promise<Frame> {
    return waitFor(what, () => this.frames.find(pred), 10_000);
  }

  /** The GOAWAY the server sent, once the connection is closed. */
  async goaway(): Promise<{ code: number; lastStreamId: number }> {
    const f = await this.next('GOAWAY', (f) => f.type === FrameType.GOAWAY);
    await waitFor('connection closed', () => this.closed, 10_000);
    return { lastStreamId: f.payload.readUInt32BE(0), code: f.payload.readUInt32BE(4) };
  }

  async rst(streamId: number): Promise<number> {
    const f = await this.next(`RST_STREAM on ${streamId}`, (f) => f.type === FrameType.RST_STREAM && f.streamId === streamId);
    return f.payload.readUInt32BE(0);
  }

  close(): void {
    this.socket.destroy();
  }
}

function toFields(fields: Record<string, string>): HeaderField[] {
  return Object.entries(fields).map(([name, value]) => ({ name, value, sensitive: false }));
}

function grpcMessage(message: Buffer): Buffer {
  const out = Buffer.alloc(5 + message.length);
  out.writeUInt32BE(message.length, 1);
  message.copy(out, 5);
  return out;
}

let s: Served;
let port: number;
/** A well-behaved client on its own connection, asked again after every bad one. */
let bystander: http2.ClientHttp2Session;

const rangeHeaders = (authority: string) => ({
  ':method': 'POST',
  ':scheme': 'http',
  ':path': '/etcdserverpb.KV/Range',
  ':authority': authority,
  'content-type': 'application/grpc',
  te: 'trailers',
});

beforeAll(async () => {
  s = await serve({ http2Server: 'meshkv' });
  port = s.listener.port;
  await s.kv.put({ key: new TextEncoder().encode('k'), value: new TextEncoder().encode('v') });
  bystander = http2.connect(`http://${s.endpoint}`);
  bystander.on('error', () => {});
});

afterAll(async () => {
  bystander?.close();
  await s?.stop();
});

/** The bystander's Range still answers: the bad connection hurt no other. */
async function bystanderServed(): Promise<void> {
  const body = await new Promise<Buffer>((resolve, reject) => {
    const stream = bystander.request(rangeHeaders(s.endpoint));
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('error', reject);
    stream.on('close', () => resolve(Buffer.concat(chunks)));
    stream.end(grpcMessage(Range.requestSerialize({ key: Buffer.from('k') })));
  });
  expect(Range.responseDeserialize(body.subarray(5)).kvs[0].value.toString()).toBe('v');
}

describe("meshkv's own HTTP/2 server over raw sockets", () => {
  it("serves a unary call frame by frame, with etcdctl's `:authority: http://host:port`, and answers PING", async () => {
    const c = new RawClient(port).start();
    const settings = await c.next('server SETTINGS', (f) => f.type === FrameType.SETTINGS && (f.flags & Flag.ACK) === 0);
    const values = new Map<number, number>();
    for (let at = 0; at < settings.payload.length; at += 6) values.set(settings.payload.readUInt16BE(at), settings.payload.readUInt32BE(at + 2));
    expect(values.get(Setting.ENABLE_PUSH)).toBe(0);
    await c.next('SETTINGS ack', (f) => f.type === FrameType.SETTINGS && (f.flags & Flag.ACK) !== 0);
    c.headers(1, rangeHeaders(`http://127.0.0.1:${port}`));
    c.send(frame(FrameType.DATA, Flag.END_STREAM, 1, grpcMessage(Range.requestSerialize({ key: Buffer.from('k') }))));
    c.send(frame(FrameType.PING, 0, 0, Buffer.from('12345678')));
    const trailers = await c.next('trailers', (f) => f.type === FrameType.HEADERS && f.streamId === 1 && (f.flags & Flag.END_STREAM) !== 0);
    const [headers] = c.frames.filter((f) => f.type === FrameType.HEADERS && f.streamId === 1);
    expect(c.decoder.decode(headers!.payload).map((f) => [f.name, f.value])).toEqual([[':status', '200'], ['content-type', 'application/grpc']]);
    const data = c.frames.find((f) => f.type === FrameType.DATA && f.streamId === 1)!;
    expect(Range.responseDeserialize(data.payload.subarray(5)).kvs[0].value.toString()).toBe('v');
    expect(c.decoder.decode(trailers.payload).map((f) => [f.name, f.value])).toEqual([['grpc-status', '0']]);
    // Node's client counts empty DATA frames as invalid (a flood) and drops the connection after 1000.
    expect(c.frames.filter((f) => f.type === FrameType.DATA && f.payload.length === 0)).toEqual([]);
    const pong = await c.next('PING ack', (f) => f.type === FrameType.PING && (f.flags & Flag.ACK) !== 0);
    expect(pong.payload.toString()).toBe('12345678');
    c.close();
  });

  it("answers a put ahead of the watch events it causes on the same connection; each watcher's response carries its own watch id", async () => {
    const c = new RawClient(port).start();
    const call = (path: string) => ({ ...rangeHeaders(s.endpoint), ':path': path });
    const create = grpcMessage(Watch.requestSerialize({ create_request: { key: Buffer.from('order/'), range_end: Buffer.from('order0') } }));
    // Stream 1: watchers 0 and 1; stream 3: watcher 0, whose response matches stream 1's first.
    c.headers(1, call('/etcdserverpb.Watch/Watch')).send(frame(FrameType.DATA, 0, 1, Buffer.concat([create, create])));
    c.headers(3, call('/etcdserverpb.Watch/Watch')).send(frame(FrameType.DATA, 0, 3, create));
    const dataOn = (id: number) => c.frames.filter((f) => f.type === FrameType.DATA && f.streamId === id);
    await waitFor('three created responses', () => dataOn(1).length === 2 && dataOn(3).length === 1, 10_000);
    c.headers(5, call('/etcdserverpb.KV/Put'));
    c.send(frame(FrameType.DATA, Flag.END_STREAM, 5, grpcMessage(Put.requestSerialize({ key: Buffer.from('order/a'), value: Buffer.from('v') }))));
    await waitFor('the events', () => dataOn(1).length === 4 && dataOn(3).length === 2, 10_000);
    const put = c.frames.findIndex((f) => f.type === FrameType.DATA && f.streamId === 5);
    const events = [dataOn(1)[2]!, dataOn(1)[3]!, dataOn(3)[1]!];
    expect(put).toBeGreaterThanOrEqual(0);
    for (const e of events) expect(c.frames.indexOf(e)).toBeGreaterThan(put);
    const decoded = events.map((e) => Watch.responseDeserialize(e.payload.subarray(5)));
    expect(decoded.map((d) => [Number(d.watch_id), d.events.map((e: Wire) => `${e.kv.key}=${e.kv.value}`)])).toEqual([
      [0, ['order/a=v']],
      [1, ['order/a=v']],
      [0, ['order/a=v']],
    ]);
    const revision = Number(Put.responseDeserialize(dataOn(5)[0]!.payload.subarray(5)).header.revision);
    for (const d of decoded) expect(Number(d.header.revision)).toBe(revision);
    c.send(goawayFrame(5, ErrorCode.NO_ERROR, ''));
  });

  it('takes 1500 concurrent puts from the etcd3 client on one connection', async () => {
    const client = new Etcd3({ hosts: `http://${s.endpoint}` });
    try {
      await Promise.all(Array.from({ length: 1500 }, (_, i) => client.put(`many/${i}`).value('v')));
      expect(await client.getAll().prefix('many/').count()).toBe(1500);
    } finally {
      client.close();
    }
  });

  const connectionErrors: [string, (c: RawClient) => void, number][] = [
    ['a first frame that is not SETTINGS', (c) => c.send(Buffer.concat([clientPreface, frame(FrameType.PING, 0, 0, Buffer.alloc(8))])), ErrorCode.PROTOCOL_ERROR],
    ['a frame longer than SETTINGS_MAX_FRAME_SIZE', (c) => c.start().send(frame(FrameType.DATA, 0, 1, Buffer.alloc(20_000))), ErrorCode.FRAME_SIZE_ERROR],
    ['a SETTINGS payload that is not a multiple of 6 bytes', (c) => c.start().send(frame(FrameType.SETTINGS, 0, 0, Buffer.alloc(5))), ErrorCode.FRAME_SIZE_ERROR],
    ['SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1', (c) => c.start().send(settingsFrame([[Setting.INITIAL_WINDOW_SIZE, 2 ** 31]])), ErrorCode.FLOW_CONTROL_ERROR],
    ['a PING of 4 bytes', (c) => c.start().send(frame(FrameType.PING, 0, 0, Buffer.alloc(4))), ErrorCode.FRAME_SIZE_ERROR],
    ['a connection window pushed past 2^31-1', (c) => c.start().send(windowUpdateFrame(0, 2 ** 31 - 1)), ErrorCode.FLOW_CONTROL_ERROR],
    ['a WINDOW_UPDATE of 0 on the connection', (c) => c.start().send(windowUpdateFrame(0, 0)), ErrorCode.PROTOCOL_ERROR],
    ['an undecodable HPACK block (index beyond both tables)', (c) => c.start().send(frame(FrameType.HEADERS, Flag.END_HEADERS, 1, Buffer.from([0xff, 0x7f]))), ErrorCode.COMPRESSION_ERROR],
    ['HEADERS on an even (server) stream id', (c) => c.start().headers(2, rangeHeaders('x')), ErrorCode.PROTOCOL_ERROR],
    ['DATA on an idle stream', (c) => c.start().send(frame(FrameType.DATA, 0, 5, Buffer.alloc(4))), ErrorCode.PROTOCOL_ERROR],
    ['RST_STREAM on an idle stream', (c) => c.start().send(frame(FrameType.RST_STREAM, 0, 7, Buffer.alloc(4))), ErrorCode.PROTOCOL_ERROR],
    ['CONTINUATION without HEADERS', (c) => c.start().send(frame(FrameType.CONTINUATION, Flag.END_HEADERS, 1, Buffer.alloc(0))), ErrorCode.PROTOCOL_ERROR],
    [
      'another frame in the middle of a header block',
      (c) => c.start().headers(1, rangeHeaders('x'), 0).send(frame(FrameType.DATA, 0, 1, Buffer.alloc(1))),
      ErrorCode.PROTOCOL_ERROR,
    ],
    ['PUSH_PROMISE from a client', (c) => c.start().send(frame(FrameType.PUSH_PROMISE, Flag.END_HEADERS, 1, Buffer.alloc(4))), ErrorCode.PROTOCOL_ERROR],
    [
      'a header block growing past the header list limit in CONTINUATION frames',
      (c) => {
        c.start().headers(1, rangeHeaders('x'), 0);
        for (let i = 0; i < 5; i++) c.send(frame(FrameType.CONTINUATION, 0, 1, encodeLiterals([{ name: `x-big-${i}`, value: 'y'.repeat(16_000), sensitive: false }])));
      },
      ErrorCode.ENHANCE_YOUR_CALM,
    ],
  ];

  it.each(connectionErrors)('%s: GOAWAY with its error code, other connections served', async (_what, misbehave, code) => {
    const c = new RawClient(port);
    misbehave(c);
    expect((await c.goaway()).code).toBe(code);
    await bystanderServed();
  });

  it('HEADERS reusing a finished stream id: GOAWAY STREAM_CLOSED naming the last stream served', async () => {
    const c = new RawClient(port).start();
    c.headers(3, rangeHeaders('x'));
    c.send(frame(FrameType.DATA, Flag.END_STREAM, 3, grpcMessage(Range.requestSerialize({ key: Buffer.from('k') }))));
    await c.next('the answer', (f) => f.type === FrameType.HEADERS && f.streamId === 3 && (f.flags & Flag.END_STREAM) !== 0);
    c.headers(1, rangeHeaders('x'));
    expect(await c.goaway()).toEqual({ code: ErrorCode.STREAM_CLOSED, lastStreamId: 3 });
    await bystanderServed();
  });

  it('stream errors reset that stream only: DATA after the end, a stream window past 2^31-1, an upper-case header name', async () => {
    const c = new RawClient(port).start();
    c.headers(1, rangeHeaders('x'));
    c.send(frame(FrameType.DATA, Flag.END_STREAM, 1, grpcMessage(Range.requestSerialize({ key: Buffer.from('k') }))));
    await c.next('the answer', (f) => f.type === FrameType.HEADERS && f.streamId === 1 && (f.flags & Flag.END_STREAM) !== 0);
    c.send(frame(FrameType.DATA, 0, 1, Buffer.alloc(3)));
    expect(await c.rst(1)).toBe(ErrorCode.STREAM_CLOSED);

    c.headers(3, rangeHeaders('x'));
    c.send(windowUpdateFrame(3, 2 ** 31 - 1));
    expect(await c.rst(3)).toBe(ErrorCode.FLOW_CONTROL_ERROR);

    c.headers(5, { ...rangeHeaders('x'), 'X-Upper': '1' });
    expect(await c.rst(5)).toBe(ErrorCode.PROTOCOL_ERROR);

    // The connection itself still serves.
    c.headers(7, rangeHeaders('x'));
    c.send(frame(FrameType.DATA, Flag.END_STREAM, 7, grpcMessage(Range.requestSerialize({ key: Buffer.from('k') }))));
    const done = await c.next('stream 7 answered', (f) => f.type === FrameType.HEADERS && f.streamId === 7 && (f.flags & Flag.END_STREAM) !== 0);
    expect(c.closed).toBe(false);
    expect(done.streamId).toBe(7);
    c.close();
  });

  it('a header list that decodes beyond SETTINGS_MAX_HEADER_LIST_SIZE gets HTTP 431, and the connection goes on', async () => {
    const c = new RawClient(port).start();
    // One 4000-byte entry in the dynamic table, then 20 one-byte references to it: a small block, a large list.
    // Literal with incremental indexing, new name (RFC 7541 §6.2.1); 4000 = 127 + 33 + 30·128.
    const insert = Buffer.concat([Buffer.from([0x40, 6]), Buffer.from('x-fill'), Buffer.from([0x7f, 0x80 | 33, 30]), Buffer.alloc(4000, 'y')]);
    const big = Buffer.concat([insert, Buffer.alloc(20, 0x80 | 62)]);
    c.send(frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, 1, Buffer.concat([encodeLiterals(toFields(rangeHeaders('x'))), big])));
    const answer = await c.next('the answer', (f) => f.type === FrameType.HEADERS && f.streamId === 1);
    expect(c.decoder.decode(answer.payload).find((f) => f.name === ':status')?.value).toBe('431');
    c.headers(3, rangeHeaders('x'));
    c.send(frame(FrameType.DATA, Flag.END_STREAM, 3, grpcMessage(Range.requestSerialize({ key: Buffer.from('k') }))));
    await c.next('stream 3 answered', (f) => f.type === FrameType.HEADERS && f.streamId === 3 && (f.flags & Flag.END_STREAM) !== 0);
    c.close();
  });

  it('a GOAWAY from the client is taken quietly: its open call still completes', async () => {
    const c = new RawClient(port).start();
    c.headers(1, rangeHeaders('x'));
    c.send(goawayFrame(1, ErrorCode.NO_ERROR, ''));
    c.send(frame(FrameType.DATA, Flag.END_STREAM, 1, grpcMessage(Range.requestSerialize({ key: Buffer.from('k') }))));
    await c.next('the answer', (f) => f.type === FrameType.HEADERS && f.streamId === 1 && (f.flags & Flag.END_STREAM) !== 0);
    c.close();
  });
});
