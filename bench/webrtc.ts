// WebRTC transport throughput and latency between two Node members in one process, over
// loopback data channels (node-datachannel), signaling through a local WebSocket server.
// Same workloads as bench/tcp.ts: appends carrying 1 KiB entries with at most `windowMessages`
// undelivered (Raft's inflight window; MB/s counts entry bytes), then a heartbeat ping-pong.
//
//   npx tsx bench/webrtc.ts
//   npx tsx bench/webrtc.ts --seconds 5

import { WebSocket } from 'ws';
import { WebSocketSignaling } from '../adapters/signaling/ws-client.ts';
import { SignalingServer } from '../adapters/signaling/ws-server.ts';
import { WebRtcTransport } from '../adapters/transport/webrtc/index.ts';
import { nodeWrtc } from '../adapters/transport/webrtc/node-wrtc.ts';
import { EntryType, MessageType, newMessage, type MemberId, type Message } from '../src/raft/types.ts';

const entryBytes = 1024;
const windowMessages = 2048;
const pingsCount = 5_000;
const argSeconds = process.argv.indexOf('--seconds');
const seconds = argSeconds >= 0 ? Number(process.argv[argSeconds + 1]) : 3;

interface Pair {
  a: WebRtcTransport;
  b: WebRtcTransport;
  server: SignalingServer;
  connectMs: number;
  onA: (m: Message) => void;
  onB: (m: Message) => void;
}

async function pair(): Promise<Pair> {
  const server = new SignalingServer({ cluster: 'bench', token: 'bench' });
  const url = await server.listen(0);
  const open = (id: MemberId) =>
    WebRtcTransport.open({
      id,
      signaling: new WebSocketSignaling({ url, cluster: 'bench', token: 'bench', id, WebSocket }),
      wrtc: nodeWrtc,
      rtcConfig: { iceServers: [], bindAddress: '127.0.0.1' },
    });
  const a = await open(1);
  const b = await open(2);
  const start = performance.now();
  a.addPeer(2, '');
  b.addPeer(1, '');
  while (!a.isConnected(2) || !b.isConnected(1)) await new Promise((r) => setTimeout(r, 1));
  const p: Pair = { a, b, server, connectMs: performance.now() - start, onA: () => {}, onB: () => {} };
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

async function main(): Promise<void> {
  const p = await pair();
  const rows: string[] = [];
  // Warm up the channel and the JIT.
  await throughput(p, 1);
  for (const perMessage of [1, 16]) {
    const r = await throughput(p, perMessage);
    rows.push(`| webrtc | appends, ${perMessage} × 1 KiB entries | ${Math.round(r.messagesPerS).toLocaleString('en-US')} msg/s | ${r.mbPerS.toFixed(1)} MB/s |`);
  }
  const r = await rtt(p);
  rows.push(`| webrtc | ping-pong RTT (${pingsCount.toLocaleString('en-US')} heartbeats) | p50 ${r.p50Us.toFixed(0)} µs | p99 ${r.p99Us.toFixed(0)} µs |`);
  await p.a.close();
  await p.b.close();
  await p.server.close();
  console.log(`WebRTC transport (node-datachannel) over loopback, ${seconds} s per throughput run, window ${windowMessages} messages, Node ${process.version}`);
  console.log(`data channel up ${p.connectMs.toFixed(0)} ms after addPeer\n`);
  console.log('| transport | workload | rate / p50 | MB/s / p99 |');
  console.log('|---|---|---|---|');
  for (const row of rows) console.log(row);
}

await main();
