// CPU per watch event in meshkv's HTTP/2 connection alone: queueing one DATA frame per watch
// stream for a shared message (H2Connection.sendData in the deferred lane, as the watch fan-out
// does) and the deferred write that gathers them, for two builds in one process, rounds
// alternated. MODE=unary instead times unary answers (HEADERS, one DATA, trailers; STREAMS of
// them per turn-end write), as the put and get rows send them. The socket is a Duplex that drops what it is given, so the figure is the framing
// and gathering, not the kernel's copy (bench/watch-fanout-cpu.ts measures that with a real
// socket). Timed with the process's CPU clock; `uptime`'s load average is printed with it.
//
//   npx tsx bench/h2-frames-ab.ts A_ROOT B_ROOT   # env: STREAMS (100), BATCHES (2000), ROUNDS (8), MESSAGE_BYTES (302), MODE (watch)
//   MODE=unary STREAMS=8 MESSAGE_BYTES=40 npx tsx bench/h2-frames-ab.ts A_ROOT B_ROOT
//
// A root is a checkout, e.g. `git archive REV | tar -x -C /tmp/rev && ln -s "$PWD/node_modules" /tmp/rev/`.

import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { Duplex } from 'node:stream';

const streams = Number(process.env.STREAMS ?? 100);
const batches = Number(process.env.BATCHES ?? 2000);
const rounds = Number(process.env.ROUNDS ?? 8);
/** A watch event response of the benchmark's row: 256-byte value, gRPC prefix included. */
const messageBytes = Number(process.env.MESSAGE_BYTES ?? 302);
const unary = process.env.MODE === 'unary';
const roots = process.argv.slice(2, 4).map((r) => resolve(r));
if (roots.length !== 2) throw new Error('usage: h2-frames-ab.ts A_ROOT B_ROOT');

type Conn = {
  sendData(id: number, data: Buffer, end: boolean, deferred: boolean): void;
  sendHeaders(id: number, block: Buffer, end: boolean, deferred: boolean): void;
};
/** Header blocks of a gRPC answer's size (the server's are a few bytes of HPACK literals). */
const responseBlock = Buffer.alloc(30, 1);
const trailersBlock = Buffer.alloc(14, 2);
const builds = await Promise.all(
  roots.map(async (root) => {
    const { H2Connection, defaultH2Limits } = await import(join(root, 'adapters/etcd-api/h2/connection.ts'));
    let written = 0;
    const socket = new Duplex({
      read() {},
      write(chunk: Buffer, _enc, done) {
        written += chunk.length;
        done();
      },
    });
    const conn = new H2Connection(socket, defaultH2Limits, () => {}, () => {}) as Conn;
    return { root, conn, flushLater: () => (conn as any).flushLater() as void, flush: () => (conn as any).flush() as void, written: () => written };
  }),
);

const message = Buffer.alloc(messageBytes, 7);
/** CPU µs per event for `batches` batches of `streams` frames, each batch written once. */
function round(b: (typeof builds)[number]): number {
  const t0 = process.cpuUsage();
  for (let i = 0; i < batches; i++) {
    if (unary) {
      for (let s = 0; s < streams; s++) {
        b.conn.sendHeaders(2 * s + 1, responseBlock, false, false);
        b.conn.sendData(2 * s + 1, message, false, false);
        b.conn.sendHeaders(2 * s + 1, trailersBlock, true, false);
      }
      b.flush();
      continue;
    }
    for (let s = 0; s < streams; s++) b.conn.sendData(2 * s + 1, message, false, true);
    b.flushLater();
  }
  const t = process.cpuUsage(t0);
  return (t.user + t.system) / (batches * streams);
}

for (let w = 0; w < 3; w++) for (const b of builds) round(b); // warm-up: both builds optimized
await new Promise((r) => setImmediate(r));
const figures: number[][] = [[], []];
for (let r = 0; r < rounds; r++) {
  for (const [i, b] of builds.entries()) {
    figures[i]!.push(round(b));
    await new Promise((r) => setImmediate(r)); // the scheduled setImmediate of each build runs and finds nothing
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
for (const [i, b] of builds.entries()) {
  const perBatch = b.written() / ((rounds + 3) * batches);
  console.log(
    `${'ab'[i]} ${b.root}: µs per ${unary ? 'answer' : 'event'} ${figures[i]!.map((x) => x.toFixed(3)).join(' ')} (median ${median(figures[i]!).toFixed(3)}); ` +
      `${perBatch.toFixed(0)} bytes written per batch`,
  );
}
console.log(`load ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
