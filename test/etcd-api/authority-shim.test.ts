// The authority shim between a real HTTP/2 client (Node's, nghttp2's HPACK encoder: Huffman
// strings, dynamic table indexing) and a real Node http2 server: authorities with a scheme
// arrive without it, every other header arrives unchanged across many requests on one
// connection, and without the shim the same requests are refused (so the test can fail).

import * as http2 from 'node:http2';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { AuthorityRewriter, routeHttp2, shimAuthority } from '../../adapters/etcd-api/authority-shim.ts';
import { encodeLiterals, HpackDecoder, HpackError } from '../../adapters/etcd-api/hpack.ts';

const open: (() => void)[] = [];
afterEach(() => {
  for (const close of open.splice(0)) close();
});

/** How each connection reached the server: the socket itself (natively read) or the shim. */
let injected: ('native' | 'shim')[] = [];

/** An h2c server that answers each request with the headers it received, as JSON. */
async function echoServer(mode: 'shim' | 'route' | 'none'): Promise<number> {
  injected = [];
  const h2 = http2.createServer();
  h2.on('stream', (stream, headers) => {
    stream.respond({ ':status': 200 });
    stream.end(JSON.stringify(headers));
  });
  const inject = (c: Duplex) => {
    injected.push(c instanceof net.Socket ? 'native' : 'shim');
    h2.emit('connection', c);
  };
  const tcp = net.createServer((socket) => {
    if (mode === 'route') routeHttp2(socket, Buffer.alloc(0), inject);
    else inject(mode === 'shim' ? shimAuthority(socket) : socket);
  });
  await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', () => resolve()));
  open.push(() => {
    tcp.close();
    h2.close();
  });
  return (tcp.address() as net.AddressInfo).port;
}

function request(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders): Promise<Record<string, string>> {
  return new Promise((resolve, reject) => {
    const req = session.request(headers, { endStream: true });
    const body: Buffer[] = [];
    req.on('data', (d: Buffer) => body.push(d));
    req.on('end', () => resolve(JSON.parse(Buffer.concat(body).toString())));
    req.on('error', reject);
  });
}

describe('authority shim', () => {
  it('strips the scheme from :authority and keeps every other header, request after request', async () => {
    const port = await echoServer('shim');
    const session = http2.connect(`http://127.0.0.1:${port}`);
    open.push(() => session.destroy());
    // A well-formed authority first: the shim passes blocks verbatim until it must rewrite one.
    const plain = await request(session, { ':path': '/a', ':authority': `127.0.0.1:${port}`, 'x-token': 'one' });
    expect(plain).toMatchObject({ ':authority': `127.0.0.1:${port}`, ':path': '/a', 'x-token': 'one' });
    for (let i = 0; i < 40; i++) {
      const authority = i % 2 === 0 ? `http://127.0.0.1:${port}` : `https://localhost:${port}`;
      // Repeated values are indexed by the client's encoder; the changing one evicts entries.
      const got = await request(session, {
        ':method': 'POST',
        ':path': `/etcdserverpb.Maintenance/Status`,
        ':authority': authority,
        'content-type': 'application/grpc',
        'x-repeated': 'same every time',
        'x-changing': `value-${i}-`.repeat(40),
        'x-big': i === 7 ? 'b'.repeat(20_000) : 'small',
      });
      expect(got).toMatchObject({
        ':authority': authority.replace(/^https?:\/\//, ''),
        ':method': 'POST',
        ':path': '/etcdserverpb.Maintenance/Status',
        'content-type': 'application/grpc',
        'x-repeated': 'same every time',
        'x-changing': `value-${i}-`.repeat(40),
        'x-big': i === 7 ? 'b'.repeat(20_000) : 'small',
      });
    }
  });

  it('routeHttp2 reads well-formed connections natively and shims only those that need it', async () => {
    const port = await echoServer('route');
    const good = http2.connect(`http://127.0.0.1:${port}`);
    open.push(() => good.destroy());
    for (let i = 0; i < 3; i++) {
      expect(await request(good, { ':path': `/${i}`, ':authority': `127.0.0.1:${port}` })).toMatchObject({ ':path': `/${i}` });
    }
    const schemed = http2.connect(`http://127.0.0.1:${port}`);
    open.push(() => schemed.destroy());
    for (let i = 0; i < 3; i++) {
      const got = await request(schemed, { ':path': `/${i}`, ':authority': `http://127.0.0.1:${port}` });
      expect(got).toMatchObject({ ':path': `/${i}`, ':authority': `127.0.0.1:${port}` });
    }
    expect(injected).toEqual(['native', 'shim']);
  });

  it('without the shim, nghttp2 refuses the same request', async () => {
    const port = await echoServer('none');
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', () => {});
    open.push(() => session.destroy());
    await expect(request(session, { ':path': '/', ':authority': `http://127.0.0.1:${port}` })).rejects.toThrow(/NGHTTP2_PROTOCOL_ERROR|RST_STREAM|code 1/);
  });
});

/** A frame: 9-byte header and payload. */
function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(streamId, 5);
  return Buffer.concat([h, payload]);
}

/** Splits a frame stream back into frames (after the preface). */
function frames(bytes: Buffer): { type: number; flags: number; streamId: number; payload: Buffer }[] {
  const out = [];
  for (let pos = 24; pos < bytes.length; ) {
    const length = bytes.readUIntBE(pos, 3);
    out.push({ type: bytes[pos + 3]!, flags: bytes[pos + 4]!, streamId: bytes.readUInt32BE(pos + 5), payload: bytes.subarray(pos + 9, pos + 9 + length) });
    pos += 9 + length;
  }
  return out;
}

describe('AuthorityRewriter', () => {
  const preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
  // Stream 1: RFC 7541 C.4.1 (Huffman, indexes www.example.com); stream 3: a literal authority
  // with a scheme, indexed (0x41); stream 5 refers to that entry (0xbe, newest) and to C.4.1's
  // (0xbf); a DATA frame and padding in between.
  const withScheme = Buffer.from([0x41, 10, ...Buffer.from('http://a:1')]);
  const input = Buffer.concat([
    preface,
    frame(0x4, 0, 0, Buffer.alloc(0)),
    frame(0x1, 0x4, 1, Buffer.from('828684418cf1e3c2e5f23a6ba0ab90f4ff', 'hex')),
    frame(0x0, 0x1, 1, Buffer.from('body')),
    frame(0x1, 0x4 | 0x8 | 0x1, 3, Buffer.concat([Buffer.from([2]), Buffer.from([0x82, 0x86, 0x84]), withScheme, Buffer.alloc(2)])),
    frame(0x1, 0x4 | 0x1, 5, Buffer.from([0x82, 0x86, 0x84, 0xbe, 0xbf])),
  ]);

  it('forwards well-formed blocks verbatim and re-encodes every block from the first rewrite on, however the bytes are cut', () => {
    const whole = Buffer.concat(new AuthorityRewriter().push(input));
    const oneByOne = new AuthorityRewriter();
    const pieces: Buffer[] = [];
    for (let i = 0; i < input.length; i++) pieces.push(...oneByOne.push(input.subarray(i, i + 1)));
    expect(Buffer.concat(pieces)).toEqual(whole);
    expect(oneByOne.rewrites).toBe(2);

    const out = frames(whole);
    expect(out.map((f) => [f.type, f.streamId])).toEqual([[4, 0], [1, 1], [0, 1], [1, 3], [1, 5]]);
    expect(out[1]!.payload).toEqual(frames(input)[1]!.payload); // before any rewrite: untouched
    // What nghttp2 decodes: its own table saw only stream 1's block.
    const server = new HpackDecoder();
    const authority = (block: Buffer) => server.decode(block).find((f) => f.name === ':authority')?.value;
    expect(authority(out[1]!.payload)).toBe('www.example.com');
    expect(out[3]!.flags & 0x1).toBe(0x1); // END_STREAM kept, padding dropped
    expect(authority(out[3]!.payload)).toBe('a:1');
    expect(server.decode(out[4]!.payload).map((f) => [f.name, f.value])).toEqual([
      [':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'a:1'], [':authority', 'www.example.com'],
    ]);
  });

  it('passes a block it cannot decode through untouched before any rewrite, and refuses one after', () => {
    const bad = frame(0x1, 0x4, 7, Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0x7f])); // index far outside the tables
    const early = new AuthorityRewriter();
    expect(Buffer.concat(early.push(Buffer.concat([preface, bad])))).toEqual(Buffer.concat([preface, bad]));
    const late = new AuthorityRewriter();
    late.push(input);
    expect(() => late.push(bad)).toThrow(HpackError);
  });
});

describe('hpack', () => {
  it('decodes RFC 7541 C.4.1 (Huffman) and round-trips through the literal encoder', () => {
    const d = new HpackDecoder();
    const fields = d.decode(Buffer.from('828684418cf1e3c2e5f23a6ba0ab90f4ff', 'hex'));
    expect(fields.map((f) => [f.name, f.value])).toEqual([
      [':method', 'GET'],
      [':scheme', 'http'],
      [':path', '/'],
      [':authority', 'www.example.com'],
    ]);
    // The authority was indexed: C.4.2 refers to it as dynamic entry 62 (byte 0xbe).
    const second = d.decode(Buffer.from('828684be5886a8eb10649cbf', 'hex'));
    expect(second.map((f) => [f.name, f.value])).toContainEqual([':authority', 'www.example.com']);
    expect(second.map((f) => [f.name, f.value])).toContainEqual(['cache-control', 'no-cache']);
    const again = new HpackDecoder().decode(encodeLiterals([...fields, { name: 'x-secret', value: 'é', sensitive: true }]));
    expect(again).toEqual([...fields, { name: 'x-secret', value: 'é', sensitive: true }]);
  });

  it('literals repeated without indexing (as nghttp2 sends a long :path) decode to what each block says', () => {
    const d = new HpackDecoder();
    // Literal without indexing (0x0_) or never indexed (0x1_), name by static index, raw value.
    const literal = (first: number, value: string) => Buffer.concat([Buffer.from([first, value.length]), Buffer.from(value, 'latin1')]);
    const path = (value: string) => d.decode(Buffer.concat([Buffer.from([0x83]), literal(0x04, value)])).map((f) => [f.name, f.value]);
    expect(path('/etcdserverpb.KV/Put')).toEqual([[':method', 'POST'], [':path', '/etcdserverpb.KV/Put']]);
    expect(path('/etcdserverpb.KV/Put')).toEqual([[':method', 'POST'], [':path', '/etcdserverpb.KV/Put']]);
    // Same length, other bytes; then the first again.
    expect(path('/etcdserverpb.KV/Txn')).toEqual([[':method', 'POST'], [':path', '/etcdserverpb.KV/Txn']]);
    expect(path('/etcdserverpb.KV/Put')).toEqual([[':method', 'POST'], [':path', '/etcdserverpb.KV/Put']]);
    // The same value Huffman-coded (RFC 7541 C.4.1's authority), then raw, then another name's.
    const huffman = Buffer.from('018cf1e3c2e5f23a6ba0ab90f4ff', 'hex');
    expect(d.decode(huffman)).toEqual([{ name: ':authority', value: 'www.example.com', sensitive: false }]);
    expect(d.decode(huffman)).toEqual([{ name: ':authority', value: 'www.example.com', sensitive: false }]);
    expect(d.decode(literal(0x01, 'www.example.org'))).toEqual([{ name: ':authority', value: 'www.example.org', sensitive: false }]);
    expect(d.decode(literal(0x01, 'www.example.com'))).toEqual([{ name: ':authority', value: 'www.example.com', sensitive: false }]);
    // Never-indexed values keep their flag; a value cut short is refused even after a repeat.
    expect(d.decode(literal(0x14, '/etcdserverpb.KV/Put'))).toEqual([{ name: ':path', value: '/etcdserverpb.KV/Put', sensitive: true }]);
    expect(() => d.decode(literal(0x04, '/etcdserverpb.KV/Put').subarray(0, 10))).toThrow(HpackError);
  });

  it('refuses malformed blocks with an HpackError', () => {
    const d = new HpackDecoder();
    expect(() => d.decode(Buffer.from([0xbe]))).toThrow(HpackError); // index 62 with an empty dynamic table
    expect(() => d.decode(Buffer.from([0x41, 0x85, 0xff]))).toThrow(HpackError); // string runs past the block
    expect(() => d.decode(Buffer.from([0x41, 0x81, 0x00]))).toThrow(/padding|Huffman/);
  });
});
