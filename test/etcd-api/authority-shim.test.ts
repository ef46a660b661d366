// The authority shim between a real HTTP/2 client (Node's, nghttp2's HPACK encoder: Huffman
// strings, dynamic table indexing) and a real Node http2 server: authorities with a scheme
// arrive without it, every other header arrives unchanged across many requests on one
// connection, and without the shim the same requests are refused (so the test can fail).

import * as http2 from 'node:http2';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { routeHttp2, shimAuthority } from '../../adapters/etcd-api/authority-shim.ts';
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

  it('refuses malformed blocks with an HpackError', () => {
    const d = new HpackDecoder();
    expect(() => d.decode(Buffer.from([0xbe]))).toThrow(HpackError); // index 62 with an empty dynamic table
    expect(() => d.decode(Buffer.from([0x41, 0x85, 0xff]))).toThrow(HpackError); // string runs past the block
    expect(() => d.decode(Buffer.from([0x41, 0x81, 0x00]))).toThrow(/padding|Huffman/);
  });
});
