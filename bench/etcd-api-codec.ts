// The gRPC server's message work per request, in process: protobufjs with server-wire.ts's
// snake_case mapping (the path before issue 16's codec) against proto-codec.ts, for the hot
// messages of bench/compare-etcd.sh's rows (256-byte values). CPU time (process.cpuUsage), so a
// loaded machine slows the wall clock more than the figures; each case runs interleaved
// old/new ROUNDS times and the lowest is kept.
//
//   npx tsx bench/etcd-api-codec.ts [ROUNDS]

import { packageDefinition } from '../adapters/etcd-api/proto.ts';
import * as codec from '../adapters/etcd-api/proto-codec.ts';
import * as wire from '../adapters/etcd-api/server-wire.ts';
import type { Event, KeyValue, WatchResponse } from '../src/mvcc/types.ts';
import { loadavg } from 'node:os';

type Wire = Record<string, any>;
interface MethodDef {
  requestSerialize: (w: Wire) => Buffer;
  requestDeserialize: (b: Buffer) => Wire;
  responseSerialize: (w: Wire) => Buffer;
}
const method = (service: string, name: string) => (packageDefinition[`etcdserverpb.${service}`] as unknown as Record<string, MethodDef>)[name]!;
const Put = method('KV', 'Put');
const Range = method('KV', 'Range');
const Txn = method('KV', 'Txn');
const Watch = method('Watch', 'Watch');

const ROUNDS = Number(process.argv[2] ?? 5);
const value = Buffer.alloc(256, 0x61);
const key = Buffer.from('bench/key/000000012345');
const header = { cluster_id: '14841639068965178418', member_id: '10276657743932975437', revision: 123456, raft_term: 7 };
const kv: KeyValue = { key, value, createRevision: 120000, modRevision: 123456, version: 3, lease: 0n };

/** CPU µs per call of `fn`, over enough calls to take about 200 ms. */
function cpuMicros(fn: () => unknown): number {
  let n = 1000;
  for (;;) {
    const start = process.cpuUsage();
    for (let i = 0; i < n; i++) fn();
    const used = process.cpuUsage(start);
    const us = used.user + used.system;
    if (us > 200_000) return us / n;
    n *= 4;
  }
}

const putBytes = Put.requestSerialize({ key, value });
const txnBytes = Txn.requestSerialize({
  compare: [{ key, target: 2, result: 0, mod_revision: '123456' }],
  success: [{ request_put: { key, value } }],
  failure: [{ request_range: { key } }],
});
const watchWatchers = 100;

function watchResponses(events: Event[]): WatchResponse[] {
  return Array.from({ length: watchWatchers }, (_, i) => ({ header: { revision: 123456 }, watchId: i, created: false, canceled: false, compactRevision: 0, cancelReason: '', events }));
}
const watchResponseWire = (r: WatchResponse): Wire => ({
  header,
  watch_id: r.watchId,
  created: r.created,
  canceled: r.canceled,
  compact_revision: r.compactRevision,
  cancel_reason: r.cancelReason,
  events: r.events.map((e) => ({ type: e.type, kv: wire.keyValue(e.kv), prev_kv: e.prevKv ? wire.keyValue(e.prevKv) : null })),
});

const cases: [string, () => unknown, () => unknown][] = [
  ['PutRequest decode', () => wire.putRequest(Put.requestDeserialize(putBytes)), () => codec.decodePutRequest(putBytes)],
  ['PutResponse encode', () => Put.responseSerialize({ header, ...wire.putBody({ header: { revision: 1 } }) }), () => codec.encodePutResponse(header, { header: { revision: 1 } })],
  ['RangeResponse encode (1 kv)', () => Range.responseSerialize({ header, ...wire.rangeBody({ header: { revision: 1 }, kvs: [kv], more: false, count: 1 }) }), () => codec.encodeRangeResponse(header, { header: { revision: 1 }, kvs: [kv], more: false, count: 1 })],
  ['TxnRequest decode (CAS)', () => wire.txnRequest(Txn.requestDeserialize(txnBytes)), () => codec.decodeTxnRequest(txnBytes)],
  [
    `one event to ${watchWatchers} watchers (WatchResponse encodes)`,
    // A fresh Event per round, as the hub makes one per revision: the codec's cache starts cold.
    () => {
      for (const r of watchResponses([{ type: 0, kv: { ...kv } }])) Watch.responseSerialize(watchResponseWire(r));
    },
    () => {
      for (const r of watchResponses([{ type: 0, kv: { ...kv } }])) codec.encodeWatchResponse(header, r);
    },
  ],
];

console.log(`# etcd-api codec, CPU µs per operation (lowest of ${ROUNDS}); load average ${loadavg().map((l) => l.toFixed(2)).join(', ')}`);
console.log('| message work | protobufjs + server-wire | proto-codec | ratio |');
console.log('|---|---:|---:|---:|');
for (const [name, before, after] of cases) {
  let old = Infinity;
  let now = Infinity;
  for (let r = 0; r < ROUNDS; r++) {
    old = Math.min(old, cpuMicros(before));
    now = Math.min(now, cpuMicros(after));
  }
  console.log(`| ${name} | ${old.toFixed(2)} | ${now.toFixed(2)} | ${(old / now).toFixed(1)}× |`);
}
console.log(`# load average after: ${loadavg().map((l) => l.toFixed(2)).join(', ')}`);
