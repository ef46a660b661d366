// The clients of a torture run. Each client slot runs one operation at a time against a
// random member and records it in the shared history (test/check/history.ts). An operation
// whose outcome is unknown (timeout, connection lost, any error a write may have survived) is
// recorded with ret Infinity, and the slot continues as a new client (a new history `client`
// number), as Jepsen does with a crashed process: the unknown op stays open forever.
//
// Lease operations do not go into the history: their keys (under `lease/`, outside the `k/`
// keys the history covers) vanish when the lease is revoked or expires, which the
// linearizability model does not describe. They are checked by their own rules instead (see
// LeaseRecord and docs/reliability.md).

import { GrpcConnection } from '../../adapters/etcd-api/grpc-connection.ts';
import { connectGrpc } from '../../adapters/etcd-api/grpc-connection.ts';
import { EtcdUnavailableError } from '../../src/client/errors.ts';
import { prefixEnd } from '../../src/client/bytes.ts';
import { CompareResult, CompareTarget, EventType } from '../../src/mvcc/types.ts';
import type { RangeResponse, ResponseOp } from '../../src/mvcc/types.ts';
import type { Client } from '../../src/client/client.ts';
import type { HistoryOp, OpInput, OpOutput, WatchRecord } from '../check/history.ts';

export const keyPrefix = 'k/';
export const leasePrefix = 'lease/';
const enc = new TextEncoder();
const dec = new TextDecoder();

export interface LeaseRecord {
  client: number;
  key: string;
  lease: string;
  /** How each step ended: ok, failed (certainly not applied) or unknown. */
  grant: Outcome;
  put: Outcome;
  revoke: Outcome;
  /** What a linearizable get of the key returned after the revoke, if it answered. */
  afterRevoke?: string | null;
}

export type Outcome = 'ok' | 'failed' | 'unknown' | 'skipped';

export interface WorkloadOptions {
  endpoints: string[];
  clients: number;
  keys: number;
  random: () => number;
  /** Per-call deadline: an op not answered by then has an unknown outcome. */
  callTimeoutMs: number;
  leaseTtlSeconds: number;
}

/** Whether a failed call certainly never took effect: it never left this process. */
function certainlyNotApplied(err: unknown): boolean {
  return err instanceof EtcdUnavailableError && err.message.startsWith('client: no endpoint is reachable');
}

function kvsOf(r: RangeResponse): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of r.kvs) out[dec.decode(kv.key)] = dec.decode(kv.value);
  return out;
}

export class Workload {
  readonly history: HistoryOp[] = [];
  readonly leases: LeaseRecord[] = [];
  /** Calls that failed certainly (left out of the history), by kind. */
  readonly failed = new Map<string, number>();
  private readonly connections: GrpcConnection[][] = [];
  private readonly start = performance.now();
  private nextOpId = 0;
  private nextClient = 0;
  private running = false;
  private loops: Promise<void>[] = [];
  private seq = 0;

  constructor(private readonly opts: WorkloadOptions) {
    for (let c = 0; c < opts.clients; c++) {
      this.connections.push(opts.endpoints.map((e) => new GrpcConnection([e], { callTimeoutMs: opts.callTimeoutMs, connectTimeoutMs: 1000 })));
    }
  }

  /** Milliseconds on the run's one monotonic clock. */
  now(): number {
    return performance.now() - this.start;
  }

  begin(): void {
    this.running = true;
    this.loops = this.connections.map((_, slot) => this.loop(slot));
  }

  async end(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    for (const row of this.connections) for (const c of row) c.close();
  }

  /**
   * After the run: one put, recorded like any other, whose revision the watchers must reach.
   * Tried on each endpoint until one acknowledges it; null if none does.
   */
  async finalPut(endpoints: string[]): Promise<number | null> {
    for (const endpoint of endpoints) {
      const conn = new GrpcConnection([endpoint], { callTimeoutMs: this.opts.callTimeoutMs });
      try {
        const op = await this.invoke(conn, this.nextClient++, { f: 'put', key: `${keyPrefix}0`, value: 'final' });
        if (op?.output) return op.output.revision;
      } finally {
        conn.close();
      }
    }
    return null;
  }

  private pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.opts.random() * xs.length)];
  }

  private async loop(slot: number): Promise<void> {
    let client = this.nextClient++;
    const lastSeen = new Map<string, string | null>();
    while (this.running) {
      const conn = this.pick(this.connections[slot]);
      const r = this.opts.random();
      if (r < 0.06) {
        const unknown = await this.leaseCycle(conn, client);
        if (unknown) client = this.nextClient++;
        continue;
      }
      const key = `${keyPrefix}${Math.floor(this.opts.random() * this.opts.keys)}`;
      const value = `c${client}-${++this.seq}`;
      let input: OpInput;
      if (r < 0.4) input = { f: 'get', key };
      else if (r < 0.65) input = { f: 'put', key, value };
      else if (r < 0.72) input = { f: 'delete', key };
      else if (r < 0.95) input = { f: 'cas', key, expected: lastSeen.has(key) ? lastSeen.get(key)! : null, value };
      else input = { f: 'range', prefix: keyPrefix };
      const op = await this.invoke(conn, client, input);
      if (op === null) continue;
      if (op.output === null) {
        client = this.nextClient++;
        continue;
      }
      const out = op.output;
      if (out.f === 'get') lastSeen.set(key, out.value);
      else if (out.f === 'cas') lastSeen.set(key, out.succeeded ? (input as { value: string }).value : out.value);
      else if (out.f === 'put') lastSeen.set(key, value);
    }
  }

  /** Runs one op and records it; null when it certainly failed (then it is not recorded). */
  private async invoke(conn: GrpcConnection, client: number, input: OpInput): Promise<HistoryOp | null> {
    const call = this.now();
    let output: OpOutput | null;
    try {
      output = await this.execute(conn, input);
    } catch (err) {
      const isRead = input.f === 'get' || input.f === 'range';
      if (isRead || certainlyNotApplied(err)) {
        this.failed.set(input.f, (this.failed.get(input.f) ?? 0) + 1);
        return null;
      }
      output = null;
    }
    const op: HistoryOp = { id: this.nextOpId++, client, call, ret: output === null ? Infinity : this.now(), input, output };
    this.history.push(op);
    return op;
  }

  private async execute(conn: GrpcConnection, input: OpInput): Promise<OpOutput> {
    switch (input.f) {
      case 'get': {
        const r = await conn.range({ key: enc.encode(input.key) });
        return { f: 'get', value: r.kvs.length === 0 ? null : dec.decode(r.kvs[0].value), revision: r.header.revision };
      }
      case 'put': {
        const r = await conn.put({ key: enc.encode(input.key), value: enc.encode(input.value) });
        return { f: 'put', revision: r.header.revision };
      }
      case 'delete': {
        const r = await conn.deleteRange({ key: enc.encode(input.key) });
        return { f: 'delete', deleted: r.deleted, revision: r.header.revision };
      }
      case 'cas': {
        const key = enc.encode(input.key);
        const compare =
          input.expected === null
            ? { result: CompareResult.EQUAL, target: CompareTarget.CREATE, key, createRevision: 0 }
            : { result: CompareResult.EQUAL, target: CompareTarget.VALUE, key, value: enc.encode(input.expected) };
        const r = await conn.txn({ compare: [compare], success: [{ requestPut: { key, value: enc.encode(input.value) } }], failure: [{ requestRange: { key } }] });
        let value: string | null = null;
        if (!r.succeeded) {
          const got = (r.responses[0] as Extract<ResponseOp, { responseRange: RangeResponse }>).responseRange;
          value = got.kvs.length === 0 ? null : dec.decode(got.kvs[0].value);
        }
        return { f: 'cas', succeeded: r.succeeded, value, revision: r.header.revision };
      }
      case 'range': {
        const key = enc.encode(input.prefix);
        const r = await conn.range({ key, rangeEnd: prefixEnd(key) });
        return { f: 'range', kvs: kvsOf(r), revision: r.header.revision };
      }
    }
  }

  /**
   * Grant a lease, put a key with it, revoke it, read the key back. Returns true when a step's
   * outcome was unknown (the slot then continues as a new client, as after any unknown op).
   */
  private async leaseCycle(conn: GrpcConnection, client: number): Promise<boolean> {
    const key = `${leasePrefix}${client}-${++this.seq}`;
    const rec: LeaseRecord = { client, key, lease: '', grant: 'skipped', put: 'skipped', revoke: 'skipped' };
    this.leases.push(rec);
    const step = async <T>(fn: () => Promise<T>): Promise<[Outcome, T | undefined]> => {
      try {
        return ['ok', await fn()];
      } catch (err) {
        return [certainlyNotApplied(err) ? 'failed' : 'unknown', undefined];
      }
    };
    const [grant, granted] = await step(() => conn.leaseGrant({ TTL: this.opts.leaseTtlSeconds }));
    rec.grant = grant;
    if (granted === undefined) return grant === 'unknown';
    rec.lease = granted.ID.toString(16);
    [rec.put] = await step(() => conn.put({ key: enc.encode(key), value: enc.encode('leased'), lease: granted.ID }));
    [rec.revoke] = await step(() => conn.leaseRevoke({ ID: granted.ID }));
    if (rec.revoke === 'ok') {
      const [, got] = await step(() => conn.range({ key: enc.encode(key) }));
      if (got !== undefined) rec.afterRevoke = got.kvs.length === 0 ? null : dec.decode(got.kvs[0].value);
    }
    return rec.put === 'unknown' || rec.revoke === 'unknown';
  }
}

/** Anomalies in the lease records: a key still readable after its lease's revoke was acknowledged. */
export function checkLeaseRecords(records: readonly LeaseRecord[]): string[] {
  return records
    .filter((r) => r.revoke === 'ok' && r.afterRevoke !== undefined && r.afterRevoke !== null)
    .map((r) => `lease ${r.lease}: key ${r.key} still read ${JSON.stringify(r.afterRevoke)} after its revoke was acknowledged`);
}

/** A watcher on the history's keys from revision 1, recording every response across reconnects. */
export class RecordingWatcher {
  readonly record: WatchRecord;
  /** The highest modRevision received. */
  lastRevision = 0;
  errors: string[] = [];
  private readonly client: Client;

  constructor(client: number, endpoints: string[]) {
    this.record = { client, prefix: keyPrefix, startRevision: 1, responses: [] };
    this.client = connectGrpc(endpoints, { callTimeoutMs: 5000, connectTimeoutMs: 1000, watchRetryMs: 200 });
  }

  async start(): Promise<void> {
    const watcher = await this.client.watch().prefix(keyPrefix).startRevision(1).create();
    watcher.on('data', (response) => {
      const events = response.events.map((e) => ({
        type: e.type === EventType.DELETE ? ('delete' as const) : ('put' as const),
        key: dec.decode(e.kv.key),
        value: e.type === EventType.DELETE ? null : dec.decode(e.kv.value),
        modRevision: e.kv.modRevision,
      }));
      this.record.responses.push({ events });
      for (const e of events) this.lastRevision = Math.max(this.lastRevision, e.modRevision);
    });
    watcher.on('error', (err) => this.errors.push(err.message));
  }

  close(): void {
    this.client.close();
  }
}
