// The server's CPU per watch event delivered, in the two places the fan-out spends it: the
// watch hub's notify (matching, building the responses, encoding them, gRPC and HTTP/2 framing
// into the connection's queue — all synchronous in the apply) and the HTTP/2 connection's flush
// (the one socket write per turn). One in-memory member (test/etcd-api/harness.ts's serve(): no
// fsync, no peers) on meshkv's HTTP/2 server; WATCHERS watch streams on one connection from a
// child process that only counts bytes; a writer inside the server process, paced as
// compare-etcd.sh's watch100-w1 writer goes. Both sections are timed with the process's CPU
// time around them, so the figure holds up better than throughput on a loaded machine;
// `uptime`'s load average is printed with it.
//
//   npx tsx bench/watch-fanout-cpu.ts [ROOT]   # env: WATCHERS (100), PUTS (1000), PUT_INTERVAL_MS (4), ROUNDS (3)
//
// ROOT: a checkout to measure (default this one), e.g. one made by
// `git archive REV | tar -x -C /tmp/rev && ln -s "$PWD/node_modules" /tmp/rev/`.
// The child is stopped by PID.

import { spawn } from 'node:child_process';
import * as http2 from 'node:http2';
import { Socket } from 'node:net';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(import.meta.url);
const watchers = Number(process.env.WATCHERS ?? 100);
const puts = Number(process.env.PUTS ?? 1000);
/** About the pace of compare-etcd.sh's watch100-w1 writer (250 puts/s). */
const putIntervalMs = Number(process.env.PUT_INTERVAL_MS ?? 4);
const rounds = Number(process.env.ROUNDS ?? 3);
const prefix = 'fanout/';

if (process.argv[2] === '--watch') {
  // Child: WATCHERS watch streams on one connection; prints the messages received on request.
  const { packageDefinition } = await import(join(process.argv[4]!, 'adapters/etcd-api/proto.ts'));
  const Watch = (packageDefinition['etcdserverpb.Watch'] as any).Watch as { requestSerialize(w: object): Buffer };
  // The windows ../shared/bench-etcd's client opens (16 MiB per stream, 256 MiB for the
  // connection): with HTTP/2's default 64 KiB the member's frames wait for WINDOW_UPDATEs every
  // turn or two, a path the benchmark never takes.
  const session = http2.connect(`http://${process.argv[3]}`, { settings: { initialWindowSize: 1 << 24 } });
  session.on('connect', () => session.setLocalWindowSize(1 << 28));
  let bytes = 0;
  const create = Watch.requestSerialize({ create_request: { key: Buffer.from(prefix), range_end: Buffer.from('fanout0') } });
  const framed = Buffer.alloc(5 + create.length);
  framed.writeUInt32BE(create.length, 1);
  create.copy(framed, 5);
  for (let i = 0; i < watchers; i++) {
    const stream = session.request({ ':method': 'POST', ':path': '/etcdserverpb.Watch/Watch', 'content-type': 'application/grpc', te: 'trailers' });
    stream.on('data', (c: Buffer) => (bytes += c.length));
    stream.on('error', () => {});
    stream.write(framed);
  }
  process.stdin.on('data', () => process.stdout.write(`${bytes}\n`));
} else {
  const root = resolve(process.argv[2] ?? resolve(here, '../..'));
  const { serve } = (await import(join(root, 'test/etcd-api/harness.ts'))) as typeof import('../test/etcd-api/harness.ts');
  const s = await serve({ http2Server: 'meshkv' });
  const value = new Uint8Array(256).fill(7);
  let seq = 0;
  /** CPU µs of this process for `puts` sequential puts under the prefix. */
  const measure = async (): Promise<number> => {
    const t0 = process.cpuUsage();
    for (let i = 0; i < puts; i++) {
      const next = performance.now() + putIntervalMs;
      await s.kv.put({ key: new TextEncoder().encode(`${prefix}${seq++ % 1000}`), value });
      // Paced as the benchmark's writer goes: unpaced, the watchers fall behind and are caught
      // up from history in large batches, which is another path.
      const wait = next - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    const t = process.cpuUsage(t0);
    return t.user + t.system;
  };
  const { H2Connection } = (await import(join(root, 'adapters/etcd-api/h2/connection.ts'))) as typeof import('../adapters/etcd-api/h2/connection.ts');
  const sections = { notifyUs: 0, flushUs: 0, writes: 0 };
  /** Sections being timed: one nested in another (flushLater calling flush) counts once. */
  let depth = 0;
  const timed = <T extends object>(target: T, name: string, key: 'notifyUs' | 'flushUs') => {
    const original = (target as any)[name] as (...args: unknown[]) => unknown;
    (target as any)[name] = function (this: unknown, ...args: unknown[]) {
      if (depth > 0) return original.apply(this, args);
      depth++;
      const t0 = process.cpuUsage();
      try {
        return original.apply(this, args);
      } finally {
        const t = process.cpuUsage(t0);
        sections[key] += t.user + t.system;
        depth--;
      }
    };
  };
  timed(s.kv.mvcc.watchHub, 'notify', 'notifyUs');
  // The turn-end write and the deferred streams' write (which may go through flush).
  timed(H2Connection.prototype, 'flush', 'flushUs');
  timed(H2Connection.prototype, 'flushLater', 'flushUs');
  // The only sockets in this process are the watch connection's (the writer calls the member).
  const socketWrite = Socket.prototype.write;
  Socket.prototype.write = function (this: Socket, ...args: unknown[]) {
    sections.writes++;
    return (socketWrite as (...a: unknown[]) => boolean).apply(this, args);
  } as typeof socketWrite;
  const child = spawn(process.execPath, ['--import', 'tsx', here, '--watch', s.endpoint, root], { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, WATCHERS: String(watchers) } });
  const received = (): Promise<number> =>
    new Promise((ok) => {
      child.stdout!.once('data', (c: Buffer) => ok(Number(String(c).trim())));
      child.stdin!.write('?\n');
    });
  try {
    for (let i = 0; i < 400 && s.listener.api.watcherCount < watchers; i++) await new Promise((r) => setTimeout(r, 50));
    if (s.listener.api.watcherCount < watchers) throw new Error(`only ${s.listener.api.watcherCount}/${watchers} watchers created`);
    await measure(); // warm-up
    let got = await received();
    for (let r = 0; r < rounds; r++) {
      sections.notifyUs = sections.flushUs = sections.writes = 0;
      const totalUs = await measure();
      let last = -1;
      for (let n = await received(); n !== last; n = await received()) {
        last = n;
        await new Promise((r) => setTimeout(r, 50));
      }
      const events = puts * watchers;
      const load = loadavg().map((x) => x.toFixed(1)).join(' ');
      console.log(
        `round ${r + 1}: ${watchers} watchers, ${puts} puts, ${((last - got) / events).toFixed(0)} bytes per event received; ` +
          `µs of server CPU per event: notify ${(sections.notifyUs / events).toFixed(2)}, flush ${(sections.flushUs / events).toFixed(2)}, ` +
          `sum ${((sections.notifyUs + sections.flushUs) / events).toFixed(2)}; ${(sections.writes / puts).toFixed(2)} socket writes per put; whole process ${(totalUs / puts).toFixed(0)} µs per put (load ${load})`,
      );
      got = last;
    }
  } finally {
    child.kill();
    await s.stop();
  }
}
