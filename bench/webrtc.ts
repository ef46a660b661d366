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
import type { MemberId } from '../src/raft/types.ts';
import { rtt, seconds, throughput, windowMessages, wirePair, type TransportPair } from './transport-pair.ts';

const pingsCount = 5_000;

async function pair(): Promise<{ p: TransportPair<WebRtcTransport>; server: SignalingServer; connectMs: number }> {
  const server = new SignalingServer({ cluster: 'bench', secret: 'bench' });
  const url = await server.listen(0);
  const open = (id: MemberId) =>
    WebRtcTransport.open({
      id,
      signaling: new WebSocketSignaling({ url, cluster: 'bench', secret: 'bench', id, WebSocket }),
      wrtc: nodeWrtc,
      rtcConfig: { iceServers: [], bindAddress: '127.0.0.1' },
    });
  const a = await open(1);
  const b = await open(2);
  const start = performance.now();
  a.addPeer(2, '');
  b.addPeer(1, '');
  while (!a.isConnected(2) || !b.isConnected(1)) await new Promise((r) => setTimeout(r, 1));
  return { p: wirePair(a, b), server, connectMs: performance.now() - start };
}




async function main(): Promise<void> {
  const { p, server, connectMs } = await pair();
  const rows: string[] = [];
  // Warm up the channel and the JIT.
  await throughput(p, 1);
  for (const perMessage of [1, 16]) {
    const r = await throughput(p, perMessage);
    rows.push(`| webrtc | appends, ${perMessage} × 1 KiB entries | ${Math.round(r.messagesPerS).toLocaleString('en-US')} msg/s | ${r.mbPerS.toFixed(1)} MB/s |`);
  }
  const r = await rtt(p, pingsCount);
  rows.push(`| webrtc | ping-pong RTT (${pingsCount.toLocaleString('en-US')} heartbeats) | p50 ${r.p50Us.toFixed(0)} µs | p99 ${r.p99Us.toFixed(0)} µs |`);
  await p.a.close();
  await p.b.close();
  await server.close();
  console.log(`WebRTC transport (node-datachannel) over loopback, ${seconds} s per throughput run, window ${windowMessages} messages, Node ${process.version}`);
  console.log(`data channel up ${connectMs.toFixed(0)} ms after addPeer\n`);
  console.log('| transport | workload | rate / p50 | MB/s / p99 |');
  console.log('|---|---|---|---|');
  for (const row of rows) console.log(row);
}

await main();
