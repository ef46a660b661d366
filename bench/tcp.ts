// TCP transport throughput and latency between two transports in one process, over loopback.
// Throughput: appends carrying 1 KiB entries, with at most `windowMessages` undelivered (as
// Raft's inflight window); MB/s counts entry bytes. Latency: a ping-pong of heartbeats, one
// at a time. Plain TCP and mutual TLS (when the openssl CLI can make a test certificate).
//
//   npx tsx bench/tcp.ts
//   npx tsx bench/tcp.ts --seconds 5

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TcpTransport, type TcpTlsOptions } from '../adapters/transport/tcp/index.ts';
import { EntryType, MessageType, newMessage, type Message } from '../src/raft/types.ts';

const entryBytes = 1024;
const windowMessages = 2048;
const pingsCount = 10_000;
const argSeconds = process.argv.indexOf('--seconds');
const seconds = argSeconds >= 0 ? Number(process.argv[argSeconds + 1]) : 3;

interface Pair {
  a: TcpTransport;
  b: TcpTransport;
  /** Replaced per phase. */
  onA: (m: Message) => void;
  onB: (m: Message) => void;
}

async function pair(tls: TcpTlsOptions | undefined): Promise<Pair> {
  const a = await TcpTransport.listen({ id: 1, clusterToken: 'bench', port: 0, tls });
  const b = await TcpTransport.listen({ id: 2, clusterToken: 'bench', port: 0, tls });
  a.addPeer(2, b.addressString);
  b.addPeer(1, a.addressString);
  const p: Pair = { a, b, onA: () => {}, onB: () => {} };
  a.start((m) => p.onA(m));
  b.start((m) => p.onB(m));
  return p;
}

function append(entriesPerMessage: number, seq: number, data: Uint8Array): Message {
  const m = newMessage(MessageType.App, 2, 1, 1);
  m.index = seq * entriesPerMessage;
  m.entries = Array.from({ length: entriesPerMessage }, (_, i) => ({ term: 1, index: m.index + i + 1, type: EntryType.Normal, data }));
  return m;
}

async function throughput(p: Pair, entriesPerMessage: number): Promise<{ messagesPerS: number; mbPerS: number }> {
  const data = new Uint8Array(entryBytes).fill(7);
  let sent = 0;
  let arrived = 0;
  let wake: (() => void) | null = null;
  p.onB = () => {
    arrived++;
    if (wake && sent - arrived < windowMessages / 2) {
      const w = wake;
      wake = null;
      w();
    }
  };
  const deadline = performance.now() + seconds * 1000;
  const start = performance.now();
  while (performance.now() < deadline) {
    const batch: Message[] = [];
    while (sent - arrived < windowMessages && batch.length < 64) batch.push(append(entriesPerMessage, sent++, data));
    p.a.send(batch);
    if (sent - arrived >= windowMessages) await new Promise<void>((r) => (wake = r));
    else await new Promise<void>((r) => setImmediate(r));
  }
  while (arrived < sent) await new Promise<void>((r) => setTimeout(r, 1));
  const elapsedS = (performance.now() - start) / 1000;
  return { messagesPerS: arrived / elapsedS, mbPerS: (arrived * entriesPerMessage * entryBytes) / elapsedS / 1e6 };
}

async function rtt(p: Pair): Promise<{ p50Us: number; p99Us: number }> {
  p.onB = (m) => p.b.send([newMessage(MessageType.HeartbeatResp, 1, 2, m.term)]);
  const samples: number[] = [];
  for (let i = 0; i < pingsCount; i++) {
    const t0 = performance.now();
    await new Promise<void>((resolve) => {
      p.onA = () => resolve();
      p.a.send([newMessage(MessageType.Heartbeat, 2, 1, 1)]);
    });
    samples.push((performance.now() - t0) * 1000);
  }
  samples.sort((x, y) => x - y);
  return { p50Us: samples[Math.floor(samples.length * 0.5)], p99Us: samples[Math.floor(samples.length * 0.99)] };
}

function testCert(): TcpTlsOptions | null {
  const dir = mkdtempSync(join(tmpdir(), 'meshkv-bench-tls-'));
  try {
    const r = spawnSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', '/CN=meshkv-bench', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
    ]);
    if (r.error || r.status !== 0) return null;
    const cert = readFileSync(join(dir, 'cert.pem'), 'utf8');
    return { cert, key: readFileSync(join(dir, 'key.pem'), 'utf8'), ca: cert };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const rows: string[] = [];
  const cert = testCert();
  const modes: [string, TcpTlsOptions | undefined][] = [['tcp', undefined]];
  if (cert) modes.push(['tls', cert]);
  else console.error('openssl CLI unavailable: TLS rows skipped');
  for (const [mode, tls] of modes) {
    const p = await pair(tls);
    // Warm up the connections and the JIT.
    await throughput(p, 1);
    for (const perMessage of [1, 16]) {
      const r = await throughput(p, perMessage);
      rows.push(`| ${mode} | appends, ${perMessage} × 1 KiB entries | ${Math.round(r.messagesPerS).toLocaleString('en-US')} msg/s | ${r.mbPerS.toFixed(1)} MB/s |`);
    }
    const r = await rtt(p);
    rows.push(`| ${mode} | ping-pong RTT (${pingsCount.toLocaleString('en-US')} heartbeats) | p50 ${r.p50Us.toFixed(0)} µs | p99 ${r.p99Us.toFixed(0)} µs |`);
    await p.a.close();
    await p.b.close();
  }
  console.log(`TCP transport over loopback, ${seconds} s per throughput run, window ${windowMessages} messages, Node ${process.version}\n`);
  console.log('| transport | workload | rate / p50 | MB/s / p99 |');
  console.log('|---|---|---|---|');
  for (const row of rows) console.log(row);
}

await main();
