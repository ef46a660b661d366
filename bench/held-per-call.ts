// What a waiting put holds in meshkv's own HTTP/2 server and gRPC layer (issues 16 and 18: a
// request's objects live for its whole latency, long enough at 64 clients to be promoted to V8's
// old generation). In process, no load dependence: ROOT's GrpcH2Server (own HTTP/2 server) with
// a Put method shaped as grpc-server.ts's (the request decoded by proto-codec, an async handler
// that awaits the answer) whose answers wait on one gate; a child process sends N puts (256-byte
// values, new keys) over CONNS node:http2 connections with the load harness's headers
// (../shared/bench-etcd, mode h2). The heap (and array buffer bytes, off the heap) is measured
// after full collections with all N waiting, and again once every answer has reached the client.
// The difference per call is what a waiting call holds (the member's own part, its write, is not
// in it). Each round prints one JSON line.
//   [MODE=server] npx tsx bench/held-per-call.ts [ROOT=.] [N=2000] [CONNS=4] [ROUNDS=3]   (re-runs itself under --expose-gc)
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) {
  const result = spawnSync(process.execPath, [...(process.env.V8_FLAGS ?? '').split(' ').filter(Boolean), '--expose-gc', '--import', 'tsx', fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(result.status ?? 1);
}

const root = resolve(process.argv[2] ?? '.');
const n = Number(process.argv[3] ?? 2000);
const conns = Number(process.argv[4] ?? 4);
const rounds = Number(process.argv[5] ?? 3);

// The build's JavaScript (what a member runs) when there is one, else the sources.
const from = existsSync(`${root}/dist/adapters/etcd-api/grpc-h2.js`) ? (name: string) => `${root}/dist/adapters/etcd-api/${name}.js` : (name: string) => `${root}/adapters/etcd-api/${name}.ts`;
const { GrpcH2Server } = (await import(from('grpc-h2'))) as typeof import('../adapters/etcd-api/grpc-h2.ts');
const codec = (await import(from('proto-codec'))) as typeof import('../adapters/etcd-api/proto-codec.ts');

let gate: { promise: Promise<void>; open: () => void } = newGate();
function newGate() {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}
let arrived = 0;
let onArrived: (() => void) | null = null;
const answer = Buffer.from([0x0a, 0x02, 0x18, 0x01]); // PutResponse{header{revision 1}}

const server = new GrpcH2Server({ receiveBytesMax: 2 << 20, ownHttp2: true });
server.add('/etcdserverpb.KV/Put', {
  kind: 'unary',
  decode: (bytes) => codec.decodePutRequest(bytes),
  encode: (res: Buffer) => res,
  // As grpc-server.ts's decodedUnary: the token looked up (awaited), then the put awaited and
  // answered. The answer is also returned, for a build whose transport replies with the
  // handler's result (before 0e04fac's successor); a second reply is a no-op.
  handle: (async (req: { key: Uint8Array }, call: { header(name: string): unknown; reply(res: unknown): void; fail(err: unknown): void }) => {
    try {
      await Promise.resolve(call.header('authorization'));
      if (req.key.length === 0) throw new Error('no key');
      if (++arrived === n) onArrived?.();
      await gate.promise;
      call.reply(answer);
      return answer;
    } catch (err) {
      call.fail(err);
    }
  }) as never,
});
// MODE=server: etcd's services as the member registers them (grpc-server.ts), the Put path whole
// but for the member: a stub api whose kv.put waits on the gate (one reaction per put standing
// in for the member's own promise) and answers an empty PutResponse.
const grpc = process.env.MODE === 'server' ? await etcdServices() : server;
async function etcdServices() {
  const { createGrpcServer } = (await import(from('grpc-server'))) as typeof import('../adapters/etcd-api/grpc-server.ts');
  const result = { header: { revision: 1 } };
  const kv = {
    auth: { enabled: false },
    put: () => {
      if (++arrived === n) onArrived?.();
      return gate.promise.then(() => result);
    },
  };
  const api = { kv, userOf: () => Promise.resolve(''), header: (revision: number) => ({ cluster_id: '1', member_id: '1', revision, raft_term: 1 }) };
  return createGrpcServer(api as never, 1.5 * 2 ** 20, true);
}
const net = createServer((socket) => grpc.inject(socket));
await new Promise<void>((r) => net.listen(0, '127.0.0.1', r));
const port = (net.address() as AddressInfo).port;

// The client, in a process of its own so that its heap is not measured: on each line "N" it
// sends N puts and prints "done" when all are answered.
const clientSource = `
import http2 from 'node:http2';
import readline from 'node:readline';
const sessions = Array.from({ length: ${conns} }, () => http2.connect('http://127.0.0.1:${port}'));
const value = Buffer.alloc(256, 7);
let seq = 0;
function put(s, done) {
  const key = Buffer.from('key/' + String(seq++).padStart(10, '0'));
  const msg = Buffer.concat([Buffer.from([0x0a, key.length]), key, Buffer.from([0x12, 0x80, 0x02]), value]);
  const framed = Buffer.alloc(5 + msg.length);
  framed.writeUInt32BE(msg.length, 1);
  msg.copy(framed, 5);
  const req = s.request({ ':method': 'POST', ':path': '/etcdserverpb.KV/Put', 'content-type': 'application/grpc', te: 'trailers' }, { endStream: false });
  let status = null;
  req.on('trailers', (t) => (status = t['grpc-status']));
  req.on('data', () => {});
  req.on('end', () => done(status));
  req.end(framed);
}
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  let left = Number(line);
  for (let i = 0, total = left; i < total; i++) put(sessions[i % sessions.length], (status) => {
    if (status !== '0') { console.error('status', status); process.exit(1); }
    if (--left === 0) console.log('done');
  });
});
`;
const child = spawn(process.execPath, ['--input-type=module', '-e', clientSource], { stdio: ['pipe', 'pipe', 'inherit'] });
const lines = (() => {
  let buf = '';
  const waiting: ((line: string) => void)[] = [];
  child.stdout!.on('data', (c: Buffer) => {
    buf += String(c);
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      waiting.shift()?.(line);
    }
  });
  return () => new Promise<string>((r) => waiting.push(r));
})();

const measure = () => {
  gc!();
  gc!();
  const m = process.memoryUsage();
  return { heap: m.heapUsed, buffers: m.arrayBuffers };
};

async function batch(count: number, whileWaiting?: () => void): Promise<void> {
  arrived = 0;
  gate = newGate();
  const all = new Promise<void>((r) => (onArrived = r));
  child.stdin!.write(`${count}\n`);
  const answered = lines();
  if (count === n) await all;
  // Whatever the arrival's turn left to do (DATA after HEADERS, the handler's first await) is done.
  await new Promise((r) => setTimeout(r, 50));
  whileWaiting?.();
  gate.open();
  if ((await answered) !== 'done') throw new Error('client failed');
}

try {
  // Warm-up: code, the connections, HPACK's dynamic tables.
  for (let i = 0; i < 3; i++) await batch(n);
  if (process.env.PROFILE) {
    // Where the waiting calls' objects were allocated: V8's sampling heap profiler, started before
    // a batch and read while it waits (samples of objects already collected are dropped).
    const { Session } = await import('node:inspector/promises');
    const { writeFileSync } = await import('node:fs');
    const session = new Session();
    session.connect();
    await session.post('HeapProfiler.startSampling', { samplingInterval: 32 });
    let profile: unknown;
    await batch(n, () => {
      gc!();
      profile = session.post('HeapProfiler.getSamplingProfile');
    });
    writeFileSync(process.env.PROFILE, JSON.stringify(((await profile) as { profile: unknown }).profile));
    await session.post('HeapProfiler.stopSampling');
  }
  for (let r = 0; r < rounds; r++) {
    let waiting = { heap: 0, buffers: 0 };
    await batch(n, () => (waiting = measure()));
    await new Promise((r) => setTimeout(r, 50));
    const after = measure();
    console.log(
      JSON.stringify({
        root,
        calls: n,
        conns,
        heap_b_per_call: Math.round((waiting.heap - after.heap) / n),
        buffers_b_per_call: Math.round((waiting.buffers - after.buffers) / n),
      }),
    );
  }
  // The server's CPU per call (this process: HTTP/2, HPACK, gRPC, the decode and the handler),
  // over whole batches, without the measurements' full collections.
  for (let r = 0; r < rounds; r++) {
    const t0 = process.cpuUsage();
    for (let b = 0; b < 5; b++) await batch(n);
    const t = process.cpuUsage(t0);
    console.log(JSON.stringify({ root, calls: 5 * n, cpu_us_per_call: Number(((t.user + t.system) / (5 * n)).toFixed(1)) }));
  }
} finally {
  child.kill();
  grpc.close();
  net.close();
}
