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
import { rtt, seconds, throughput, windowMessages, wirePair, type TransportPair } from './transport-pair.ts';

const pingsCount = 10_000;

async function pair(tls: TcpTlsOptions | undefined): Promise<TransportPair<TcpTransport>> {
  const a = await TcpTransport.listen({ id: 1, clusterToken: 'bench', admissionSecret: 'bench-admission-secret', port: 0, tls });
  const b = await TcpTransport.listen({ id: 2, clusterToken: 'bench', admissionSecret: 'bench-admission-secret', port: 0, tls });
  a.addPeer(2, b.addressString);
  b.addPeer(1, a.addressString);
  return wirePair(a, b);
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
    const r = await rtt(p, pingsCount);
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
