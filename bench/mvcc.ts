// MVCC state machine benchmark, in process: put, range over 100 keys, txn compare-and-swap and
// watch fan-out to 100 watchers, at 100k and 1M keys. Prints a markdown table.
//   npx tsx bench/mvcc.ts     (re-runs itself under node --expose-gc for memory figures)

import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { CompareResult, CompareTarget, MvccStateMachine, type WatchResponse } from '../src/mvcc/index.ts';

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) {
  const result = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', fileURLToPath(import.meta.url)], {
    stdio: 'inherit',
  });
  process.exit(result.status ?? 1);
}

const VALUE_BYTES = 32;
const ctx = { nowMs: 0 };
const encoder = new TextEncoder();
const keyOf = (i: number) => encoder.encode(`key/${i.toString().padStart(8, '0')}`);
const value = new Uint8Array(VALUE_BYTES).fill(7);

interface Row {
  scale: string;
  op: string;
  ops: number;
  seconds: number;
  cpuMicros: number;
  note: string;
  /** A one-off operation: report its time instead of a rate. */
  once?: boolean;
}
const rows: Row[] = [];

function measure(scale: string, op: string, ops: number, body: () => void, note = ''): void {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  body();
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  rows.push({ scale, op, ops, seconds, cpuMicros: cpu.user + cpu.system, note });
}

function heapUsed(): number {
  gc!();
  gc!();
  return process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
}

function run(keys: number): void {
  const scale = keys >= 1_000_000 ? '1M keys' : `${keys / 1000}k keys`;
  const heapBefore = heapUsed();
  const sm = new MvccStateMachine();
  const keyBytes = Array.from({ length: keys }, (_, i) => keyOf(i));
  const keyArrayBytes = heapUsed() - heapBefore;

  measure(scale, 'put (new keys)', keys, () => {
    for (let i = 0; i < keys; i++) sm.apply({ kind: 'put', request: { key: keyBytes[i], value } }, ctx);
  });
  const bytesPerKey = (heapUsed() - heapBefore - keyArrayBytes) / keys;
  rows[rows.length - 1].note = `heap+buffers ${bytesPerKey.toFixed(0)} B/key (${VALUE_BYTES} B values, 12 B keys)`;

  const updates = Math.min(keys, 200_000);
  measure(scale, 'put (overwrite)', updates, () => {
    for (let i = 0; i < updates; i++) sm.apply({ kind: 'put', request: { key: keyBytes[(i * 7919) % keys], value } }, ctx);
  });

  const ranges = 5_000;
  measure(scale, 'range 100 keys', ranges, () => {
    for (let i = 0; i < ranges; i++) {
      const start = (i * 104_729) % (keys - 100);
      const r = sm.apply({ kind: 'range', request: { key: keyBytes[start], rangeEnd: keyBytes[start + 100] } }, ctx);
      if (!r.ok || r.response.kvs.length !== 100) throw new Error('range returned the wrong count');
    }
  });

  const casOps = 100_000;
  measure(scale, 'txn CAS (mod rev)', casOps, () => {
    for (let i = 0; i < casOps; i++) {
      const key = keyBytes[(i * 31) % keys];
      const current = sm.range({ key }).kvs[0].modRevision;
      const r = sm.apply(
        {
          kind: 'txn',
          request: {
            compare: [{ key, target: CompareTarget.MOD, result: CompareResult.EQUAL, modRevision: current }],
            success: [{ requestPut: { key, value } }],
          },
        },
        ctx,
      );
      if (!r.ok || !r.response.succeeded) throw new Error('CAS failed');
    }
  }, 'read mod revision, then compare-and-put');

  let delivered = 0;
  const sink = {
    send(response: WatchResponse): boolean {
      delivered += response.events.length;
      return true;
    },
  };
  const watchers = 100;
  const streams = Array.from({ length: watchers }, () => sm.watchHub.openStream(sink));
  streams.forEach((s) => s.watch({ key: encoder.encode('key/'), rangeEnd: encoder.encode('key0') }));
  const fanOutPuts = 20_000;
  measure(scale, 'put + watch fan-out x100', fanOutPuts, () => {
    for (let i = 0; i < fanOutPuts; i++) sm.apply({ kind: 'put', request: { key: keyBytes[i % keys], value } }, ctx);
  });
  if (delivered !== fanOutPuts * watchers) throw new Error(`delivered ${delivered} events`);
  rows[rows.length - 1].note = `${(delivered / rows[rows.length - 1].seconds / 1e6).toFixed(2)} M events/s delivered`;
  streams.forEach((s) => s.close());

  let snapshot: Uint8Array = new Uint8Array(0);
  let records = 0;
  measure(scale, 'snapshot encode', 1, () => {
    const view = sm.snapshot();
    records = view.recordCount;
    snapshot = view.encode();
  });
  const restored = new MvccStateMachine();
  measure(scale, 'snapshot restore', 1, () => restored.restore(snapshot));
  rows[rows.length - 2].note = `${(snapshot.length / 1e6).toFixed(1)} MB; ${sm.keyCount.toLocaleString('en-US')} keys, ${records.toLocaleString('en-US')} records (no compaction)`;
  rows[rows.length - 2].once = rows[rows.length - 1].once = true;
  if (restored.hash() !== sm.hash()) throw new Error('restored hash differs');
}

run(100_000);
run(1_000_000);

const lines = [
  `MVCC benchmark — Node ${process.version}, ${new Date().toISOString()}`,
  '',
  '| keys | operation | ops | ops/s | CPU µs/op | notes |',
  '|---|---|---:|---:|---:|---|',
  ...rows.map((r) =>
    r.once
      ? `| ${r.scale} | ${r.op} | 1 | — | — | ${(r.seconds * 1000).toFixed(0)} ms wall, ${(r.cpuMicros / 1000).toFixed(0)} ms CPU${r.note ? `; ${r.note}` : ''} |`
      : `| ${r.scale} | ${r.op} | ${r.ops.toLocaleString('en-US')} | ${Math.round(r.ops / r.seconds).toLocaleString('en-US')} | ${(r.cpuMicros / r.ops).toFixed(2)} | ${r.note} |`,
  ),
];
console.log(lines.join('\n'));
