// The workloads bench/tcp.ts and bench/webrtc.ts run on a pair of transports in one process:
// appends carrying 1 KiB entries with at most `windowMessages` undelivered (as Raft's inflight
// window; MB/s counts entry bytes), and a ping-pong of heartbeats, one at a time.

import { EntryType, MessageType, newMessage, type Message } from '../src/raft/types.ts';
import type { Transport } from '../src/seams.ts';

export const entryBytes = 1024;
export const windowMessages = 2048;

const argSeconds = process.argv.indexOf('--seconds');
/** Seconds per throughput run (`--seconds N`, default 3). */
export const seconds = argSeconds >= 0 ? Number(process.argv[argSeconds + 1]) : 3;

/** Member 1 (`a`) sends to member 2 (`b`); each phase sets what arriving messages do. */
export interface TransportPair<T extends Transport = Transport> {
  a: T;
  b: T;
  onA: (m: Message) => void;
  onB: (m: Message) => void;
}

/** Starts both transports, delivering to the pair's replaceable handlers. */
export function wirePair<T extends Transport>(a: T, b: T): TransportPair<T> {
  const p: TransportPair<T> = { a, b, onA: () => {}, onB: () => {} };
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

export async function throughput(p: TransportPair, entriesPerMessage: number): Promise<{ messagesPerS: number; mbPerS: number }> {
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

export async function rtt(p: TransportPair, pings: number): Promise<{ p50Us: number; p99Us: number }> {
  p.onB = (m) => p.b.send([newMessage(MessageType.HeartbeatResp, 1, 2, m.term)]);
  const samples: number[] = [];
  for (let i = 0; i < pings; i++) {
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
