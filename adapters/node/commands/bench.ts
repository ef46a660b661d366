// `meshkv bench <put|range|txn|watch>`: a load generator in the spirit of etcd's benchmark
// tool, on the project's own gRPC client, against any etcd v3 endpoint (meshkv or etcd).
// `--clients` closed-loop workers share `--conns` connections round-robin; each request is
// timed and the run ends with etcd-benchmark-like statistics (or one JSON object).

import { performance } from 'node:perf_hooks';
import { connectGrpc } from '../../etcd-api/grpc-connection.ts';
import type { Client } from '../../../src/client/client.ts';
import type { Command } from './index.ts';

const workloads = ['put', 'range', 'txn', 'watch'] as const;
type Workload = (typeof workloads)[number];

export interface BenchOptions {
  workload: Workload;
  endpoints: string[];
  clients: number;
  conns: number;
  /** Requests to send (puts for watch); null when the run is timed by `durationS`. */
  total: number | null;
  durationS: number | null;
  keySize: number;
  valSize: number;
  keySpace: number;
  prefix: string;
  consistency: 'l' | 's';
  watchers: number;
  /** Requests per second over all clients; 0: as fast as they go. */
  rate: number;
  json: boolean;
}

/** A bad flag or argument: reported with the usage, exit code 2. */
class UsageError extends Error {}

const usage = `Usage: meshkv bench <put|range|txn|watch> [flags]

  put     puts random keys of the key space
  range   reads random keys of the key space (one key per request)
  txn     compare-and-swap: if mod_revision(key) is the last one seen, put it, else read it
  watch   --watchers watchers on the prefix; --clients writers put --total keys; measures
          the lag from a put being sent to each watcher receiving its event

Flags:
  --endpoints=host:port,...  (default 127.0.0.1:2379)
  --clients=N       concurrent requests in flight (default 1)
  --conns=N         gRPC connections shared round-robin by the clients (default 1)
  --total=N         requests to send (default 10000)
  --duration=S      run for S seconds instead of --total requests
  --key-size=N      key length in bytes, prefix included (default 8 + prefix)
  --val-size=N      value length in bytes (default 8; at least 16 for watch)
  --key-space=N     number of distinct keys (default 1000)
  --prefix=P        key prefix (default "bench/")
  --consistency=l|s range: linearizable (default) or serializable
  --watchers=N      watch: number of watchers (default 10)
  --rate=N          cap on requests per second over all clients (default: none)
  --json            print one JSON object instead of the text summary
`;

const defaults = { clients: 1, conns: 1, total: 10_000, valSize: 8, keySpace: 1000, prefix: 'bench/', watchers: 10 };

function positiveInt(name: string, text: string, min = 1): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < min) throw new UsageError(`--${name} must be an integer >= ${min}, got ${JSON.stringify(text)}`);
  return n;
}

export function parseBenchArgs(args: string[]): BenchOptions {
  const positional: string[] = [];
  const flags = new Map<string, string>();
  for (const arg of args) {
    if (!arg.startsWith('--')) {
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
    if (flags.has(name)) throw new UsageError(`--${name} given twice`);
    flags.set(name, eq < 0 ? '' : arg.slice(eq + 1));
  }
  if (positional.length !== 1) throw new UsageError(positional.length === 0 ? 'missing the workload (put, range, txn or watch)' : `one workload expected, got ${positional.join(' ')}`);
  const workload = positional[0] as Workload;
  if (!workloads.includes(workload)) throw new UsageError(`unknown workload ${JSON.stringify(positional[0])} (put, range, txn or watch)`);

  const take = (name: string): string | undefined => {
    const v = flags.get(name);
    flags.delete(name);
    if (v === '' && name !== 'json') throw new UsageError(`--${name} needs a value (--${name}=...)`);
    return v;
  };
  const int = (name: string, fallback: number, min = 1) => {
    const v = take(name);
    return v === undefined ? fallback : positiveInt(name, v, min);
  };

  const endpointsText = take('endpoints') ?? '127.0.0.1:2379';
  const endpoints = endpointsText.split(',').map((e) => e.trim());
  for (const e of endpoints) {
    if (!/^(http:\/\/)?[^/\s:]+:\d+\/?$/.test(e)) throw new UsageError(`--endpoints: ${JSON.stringify(e)} is not host:port`);
  }
  const clients = int('clients', defaults.clients);
  const conns = int('conns', defaults.conns);
  const totalText = take('total');
  const durationText = take('duration');
  if (totalText !== undefined && durationText !== undefined) throw new UsageError('give --total or --duration, not both');
  const durationS = durationText === undefined ? null : Number(durationText);
  if (durationS !== null && !(durationS > 0 && Number.isFinite(durationS))) throw new UsageError(`--duration must be a number of seconds > 0, got ${JSON.stringify(durationText)}`);
  const total = durationS !== null ? null : totalText === undefined ? defaults.total : positiveInt('total', totalText);
  const prefix = take('prefix') ?? defaults.prefix;
  const keySpace = int('key-space', defaults.keySpace);
  const minKeySize = prefix.length + String(keySpace - 1).length;
  const keySize = int('key-size', Math.max(prefix.length + 8, minKeySize));
  if (keySize < minKeySize) throw new UsageError(`--key-size=${keySize} is too short for the prefix and --key-space=${keySpace} (at least ${minKeySize})`);
  const valSize = int('val-size', workload === 'watch' ? watchValueMin : defaults.valSize, workload === 'watch' ? watchValueMin : 0);
  const consistencyText = take('consistency') ?? 'l';
  if (consistencyText !== 'l' && consistencyText !== 's') throw new UsageError(`--consistency must be l or s, got ${JSON.stringify(consistencyText)}`);
  const watchers = int('watchers', defaults.watchers);
  const rate = int('rate', 0, 0);
  const json = take('json') !== undefined;
  const unknown = [...flags.keys()];
  if (unknown.length > 0) throw new UsageError(`unknown flag${unknown.length > 1 ? 's' : ''} ${unknown.map((f) => `--${f}`).join(', ')}`);
  return { workload, endpoints, clients, conns, total, durationS, keySize, valSize, keySpace, prefix, consistency: consistencyText, watchers, rate, json };
}

// ---- keys, values, connections ----

/** Watch values carry the put's send time (ms since the process started, fixed width). */
const watchValueMin = 16;

function keyOf(o: BenchOptions, index: number): string {
  return o.prefix + String(index).padStart(o.keySize - o.prefix.length, '0');
}

function randomIndex(o: BenchOptions): number {
  return Math.floor(Math.random() * o.keySpace);
}

/**
 * One Client per connection. Connection i starts at endpoint i mod n (the others are its
 * fallbacks), so connections spread over the endpoints like etcd's benchmark.
 */
function openConnections(o: BenchOptions): Client[] {
  const n = o.endpoints.length;
  return Array.from({ length: o.conns }, (_, i) => {
    const rotated = o.endpoints.map((_, j) => o.endpoints[(i + j) % n]);
    return connectGrpc(rotated, { connectTimeoutMs: 2000 });
  });
}

/** Fails fast, naming the endpoint, when a connection cannot reach a member. */
async function checkReachable(clients: Client[]): Promise<void> {
  await Promise.all(clients.map((c) => c.get('\0').serializable().exec()));
}

// ---- measuring ----

/** What one run measured: latencies in ms of the requests that succeeded, errors by message. */
export class Recorder {
  readonly latencies: number[] = [];
  readonly errors = new Map<string, number>();
  /** Workload-specific counters (cas outcomes, watch delivery). */
  readonly counters: Record<string, number> = {};

  get done(): number {
    return this.latencies.length + this.errorCount;
  }

  get errorCount(): number {
    let n = 0;
    for (const c of this.errors.values()) n += c;
    return n;
  }

  ok(ms: number): void {
    this.latencies.push(ms);
  }

  failed(err: unknown): void {
    const message = (err instanceof Error ? err.message : String(err)).split('\n')[0];
    this.errors.set(message, (this.errors.get(message) ?? 0) + 1);
  }

  count(name: string, by = 1): void {
    this.counters[name] = (this.counters[name] ?? 0) + by;
  }
}

/** Hands out request slots: a fixed number, or until a deadline; paced by --rate. */
class Schedule {
  private issued = 0;
  /** Set by the first request: set-up (the watch workload's watchers) is not timed. */
  private startMs: number | null = null;

  constructor(private readonly o: BenchOptions) {}

  get elapsedMs(): number {
    return this.startMs === null ? 0 : performance.now() - this.startMs;
  }

  /** Resolves true when the caller may send one more request, false when the run is over. */
  async next(): Promise<boolean> {
    this.startMs ??= performance.now();
    if (this.o.total !== null ? this.issued >= this.o.total : this.elapsedMs >= this.o.durationS! * 1000) return false;
    const slot = this.issued++;
    if (this.o.rate > 0) {
      const waitMs = (slot * 1000) / this.o.rate - this.elapsedMs;
      if (waitMs > 0) await new Promise((r) => setTimeout(r, waitMs));
      if (this.o.total === null && this.elapsedMs >= this.o.durationS! * 1000) return false;
    }
    return true;
  }
}

/** requests done / total, or seconds elapsed, on stderr: redrawn on a TTY, one final line otherwise. */
class Progress {
  private readonly timer: ReturnType<typeof setInterval> | null;
  private readonly tty = process.stderr.isTTY === true;

  constructor(
    private readonly o: BenchOptions,
    private readonly label: string,
    private readonly done: () => number,
    private readonly elapsedMs: () => number,
  ) {
    this.timer = this.tty ? setInterval(() => this.draw(), 100) : null;
  }

  private line(): string {
    const width = 30;
    const fraction = this.o.total !== null ? this.done() / this.o.total : this.elapsedMs() / (this.o.durationS! * 1000);
    const clamped = Math.max(0, Math.min(1, fraction));
    const filled = Math.round(clamped * width);
    const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
    const count = this.o.total !== null ? `${this.done()}/${this.o.total} ${this.label}` : `${(this.elapsedMs() / 1000).toFixed(1)}/${this.o.durationS}s, ${this.done()} ${this.label}`;
    return `${bar} ${(clamped * 100).toFixed(0).padStart(3)}% ${count}`;
  }

  private draw(): void {
    process.stderr.write(`\r${this.line()}`);
  }

  finish(): void {
    if (this.timer !== null) clearInterval(this.timer);
    if (this.tty) process.stderr.write(`\r${this.line()}\n`);
    else process.stderr.write(`${this.line()}\n`);
  }
}

/** Runs `clients` closed-loop workers; worker w uses connection w mod conns. */
async function runWorkers(o: BenchOptions, conns: Client[], rec: Recorder, schedule: Schedule, request: (c: Client) => Promise<void>): Promise<void> {
  const worker = async (w: number) => {
    const client = conns[w % conns.length];
    while (await schedule.next()) {
      const t0 = performance.now();
      try {
        await request(client);
        rec.ok(performance.now() - t0);
      } catch (err) {
        rec.failed(err);
      }
    }
  };
  await Promise.all(Array.from({ length: o.clients }, (_, w) => worker(w)));
}

// ---- workloads ----

function valueOf(o: BenchOptions): string {
  return 'v'.repeat(o.valSize);
}

async function putWorkload(o: BenchOptions, conns: Client[], rec: Recorder, schedule: Schedule): Promise<void> {
  const value = valueOf(o);
  await runWorkers(o, conns, rec, schedule, async (c) => {
    await c.put(keyOf(o, randomIndex(o))).value(value).exec();
  });
}

async function rangeWorkload(o: BenchOptions, conns: Client[], rec: Recorder, schedule: Schedule): Promise<void> {
  await runWorkers(o, conns, rec, schedule, async (c) => {
    const res = await c.get(keyOf(o, randomIndex(o))).serializable(o.consistency === 's').exec();
    rec.count('keysFound', res.kvs.length);
  });
}

/**
 * Compare-and-swap: succeeds when the key's mod revision is still the one this process last
 * saw (0: absent), else reads the key to learn its revision for the next try.
 */
async function txnWorkload(o: BenchOptions, conns: Client[], rec: Recorder, schedule: Schedule): Promise<void> {
  const seen = new Map<number, number>();
  const value = valueOf(o);
  await runWorkers(o, conns, rec, schedule, async (c) => {
    const index = randomIndex(o);
    const key = keyOf(o, index);
    const expected = seen.get(index) ?? 0;
    const res = await c.if(key, 'Mod', '==', expected).then(c.put(key).value(value)).else(c.get(key)).commit();
    if (res.succeeded) {
      rec.count('casSucceeded');
      seen.set(index, res.header.revision);
    } else {
      rec.count('casFailed');
      const read = res.responses[0];
      seen.set(index, read !== undefined && 'responseRange' in read ? (read.responseRange.kvs[0]?.modRevision ?? 0) : 0);
    }
  });
}

/** How long to wait, after the last put, for every watcher to receive every event. */
const watchDrainMs = 10_000;

/**
 * Watchers on the prefix (spread over the connections); writers put random keys whose value
 * holds the send time. The recorded latencies are the per-event delivery lags; the writers'
 * puts are counted separately.
 */
async function watchWorkload(o: BenchOptions, conns: Client[], rec: Recorder, schedule: Schedule): Promise<void> {
  let putsDone = 0;
  let delivered = 0;
  let onDelivered = () => {};
  const watchers = await Promise.all(
    Array.from({ length: o.watchers }, async (_, i) => {
      const w = await conns[i % conns.length].watch().prefix(o.prefix).create();
      w.on('put', (kv) => {
        const sentMs = Number(new TextDecoder().decode(kv.value.subarray(0, watchValueMin)));
        // Another writer's put under the prefix carries no send time: counted, not timed.
        if (kv.value.length < watchValueMin || !Number.isFinite(sentMs)) return rec.count('foreignEvents');
        rec.ok(performance.now() - sentMs);
        delivered++;
        onDelivered();
      });
      w.on('error', (err) => rec.failed(err));
      return w;
    }),
  );
  const puts = new Recorder();
  await runWorkers(o, conns, puts, schedule, async (c) => {
    const sent = performance.now().toFixed(3).padStart(watchValueMin, '0');
    await c.put(keyOf(o, randomIndex(o))).value(sent + 'v'.repeat(o.valSize - watchValueMin)).exec();
    putsDone++;
  });
  const expected = putsDone * o.watchers;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, watchDrainMs);
    onDelivered = () => delivered >= expected && (clearTimeout(timer), resolve());
    onDelivered();
  });
  await Promise.all(watchers.map((w) => w.cancel()));
  rec.count('puts', putsDone);
  rec.count('putErrors', puts.errorCount);
  for (const [message, n] of puts.errors) rec.errors.set(`put: ${message}`, n);
  rec.count('eventsExpected', expected);
  rec.count('eventsMissing', Math.max(0, expected - delivered));
}

const runners: Record<Workload, (o: BenchOptions, conns: Client[], rec: Recorder, schedule: Schedule) => Promise<void>> = {
  put: putWorkload,
  range: rangeWorkload,
  txn: txnWorkload,
  watch: watchWorkload,
};

// ---- the summary ----

const percentiles = [10, 25, 50, 75, 90, 95, 99, 99.9];

export interface Summary {
  workload: Workload;
  endpoints: string[];
  clients: number;
  conns: number;
  /** Requests that succeeded (watch: events delivered). */
  requests: number;
  errors: number;
  errorKinds: Record<string, number>;
  totalSecs: number;
  requestsPerSec: number;
  /** Latencies in ms (watch: delivery lag); null when no request succeeded. */
  latencyMs: { slowest: number; fastest: number; average: number; stddev: number; percentiles: Record<string, number> } | null;
  /** Ten equal-width buckets from fastest to slowest: the count at or below each bound (ms). */
  histogram: { upToMs: number; count: number }[];
  counters: Record<string, number>;
}

export function summarize(o: BenchOptions, rec: Recorder, totalMs: number): Summary {
  const sorted = [...rec.latencies].sort((a, b) => a - b);
  const n = sorted.length;
  let latencyMs: Summary['latencyMs'] = null;
  const histogram: Summary['histogram'] = [];
  if (n > 0) {
    const average = sorted.reduce((s, x) => s + x, 0) / n;
    const stddev = Math.sqrt(sorted.reduce((s, x) => s + (x - average) ** 2, 0) / n);
    const at = (p: number) => sorted[Math.min(n - 1, Math.max(0, Math.ceil((p / 100) * n) - 1))];
    latencyMs = { slowest: sorted[n - 1], fastest: sorted[0], average, stddev, percentiles: Object.fromEntries(percentiles.map((p) => [`p${p}`, at(p)])) };
    const buckets = 10;
    const width = (sorted[n - 1] - sorted[0]) / buckets;
    let i = 0;
    for (let b = 1; b <= buckets; b++) {
      const bound = b === buckets ? sorted[n - 1] : sorted[0] + width * b;
      let count = 0;
      while (i < n && sorted[i] <= bound) (i++, count++);
      histogram.push({ upToMs: bound, count });
    }
  }
  return {
    workload: o.workload,
    endpoints: o.endpoints,
    clients: o.clients,
    conns: o.conns,
    requests: n,
    errors: rec.errorCount,
    errorKinds: Object.fromEntries(rec.errors),
    totalSecs: totalMs / 1000,
    requestsPerSec: n / (totalMs / 1000),
    latencyMs,
    histogram,
    counters: { ...rec.counters },
  };
}

const secs = (ms: number) => `${(ms / 1000).toFixed(4)} secs.`;

export function formatSummary(s: Summary): string {
  const lines = [
    `Summary (${s.workload}, ${s.clients} clients, ${s.conns} conns, ${s.endpoints.join(',')}):`,
    `  Total:\t${s.totalSecs.toFixed(4)} secs.`,
  ];
  if (s.latencyMs !== null) {
    const l = s.latencyMs;
    lines.push(`  Slowest:\t${secs(l.slowest)}`, `  Fastest:\t${secs(l.fastest)}`, `  Average:\t${secs(l.average)}`, `  Stddev:\t${secs(l.stddev)}`);
  }
  lines.push(`  Requests/sec:\t${s.requestsPerSec.toFixed(4)}`);
  if (s.workload === 'watch') lines.push(`  (requests are watch events delivered; latencies are the lag from put sent to event received)`);
  if (s.latencyMs !== null) {
    const most = Math.max(...s.histogram.map((b) => b.count));
    lines.push('', 'Response time histogram:');
    for (const b of s.histogram) lines.push(`  ${(b.upToMs / 1000).toFixed(4)} [${b.count}]\t|${'∎'.repeat(most === 0 ? 0 : Math.round((b.count / most) * 40))}`);
    lines.push('', 'Latency distribution:');
    for (const [name, v] of Object.entries(s.latencyMs.percentiles)) lines.push(`  ${name.slice(1)}% in ${secs(v)}`);
  }
  if (Object.keys(s.counters).length > 0) {
    lines.push('', 'Counters:');
    for (const [name, v] of Object.entries(s.counters)) lines.push(`  ${name}:\t${v}`);
  }
  if (s.errors > 0) {
    lines.push('', `Errors (${s.errors}):`);
    for (const [message, n] of Object.entries(s.errorKinds)) lines.push(`  [${n}]\t${message}`);
  }
  return lines.join('\n') + '\n';
}

// ---- the command ----

async function runBench(o: BenchOptions): Promise<number> {
  const conns = openConnections(o);
  try {
    try {
      await checkReachable(conns);
    } catch (err) {
      process.stderr.write(`meshkv bench: cannot reach ${o.endpoints.join(',')}: ${err instanceof Error ? err.message : String(err)}\n`);
      return 1;
    }
    const rec = new Recorder();
    const schedule = new Schedule(o);
    const label = o.workload === 'watch' ? 'puts' : 'requests';
    const progress = new Progress(o, label, () => (o.workload === 'watch' ? eventsPerWatcher(rec, o) : rec.done), () => schedule.elapsedMs);
    try {
      await runners[o.workload](o, conns, rec, schedule);
    } finally {
      progress.finish();
    }
    const summary = summarize(o, rec, schedule.elapsedMs);
    process.stdout.write(o.json ? JSON.stringify(summary) + '\n' : formatSummary(summary));
    return summary.requests === 0 && summary.errors > 0 ? 1 : 0;
  } finally {
    for (const c of conns) c.close();
  }
}

/** Watch progress: delivered events divided over the watchers (about the puts seen by all). */
function eventsPerWatcher(rec: Recorder, o: BenchOptions): number {
  return Math.floor(rec.latencies.length / o.watchers);
}

export const bench: Command = {
  async run(args) {
    if (args.includes('--help') || args.includes('-h')) {
      process.stdout.write(usage);
      return 0;
    }
    let options: BenchOptions;
    try {
      options = parseBenchArgs(args);
    } catch (err) {
      if (!(err instanceof UsageError)) throw err;
      process.stderr.write(`meshkv bench: ${err.message}\n\n${usage}`);
      return 2;
    }
    return runBench(options);
  },
};
