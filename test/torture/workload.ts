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
//
// Replay: every client slot draws from its own seeded stream (the run's seed and the slot), so
// a seed fixes each client's sequence of operations, keys and values; what the members answer,
// and so the CAS expectations, still depends on timing.

import { GrpcConnection } from '../../adapters/etcd-api/grpc-connection.ts';
import { connectGrpc } from '../../adapters/etcd-api/grpc-connection.ts';
import { EtcdCompactedError, EtcdUnavailableError } from '../../src/client/errors.ts';
import { prefixEnd } from '../../src/client/bytes.ts';
import { CompareResult, CompareTarget, EventType } from '../../src/mvcc/types.ts';
import type { RangeResponse, ResponseOp } from '../../src/mvcc/types.ts';
import type { Client } from '../../src/client/client.ts';
import { etcdctl } from '../etcd-api/harness.ts';
import { sleep } from './cluster.ts';
import type { HistoryOp, OpInput, OpOutput, WatchRecord } from '../check/history.ts';
import type { TxnRead, TxnRecord } from '../check/atomicity.ts';
import { prng } from '../raft/prng.ts';

export const keyPrefix = 'k/';
export const leasePrefix = 'lease/';
/** Keys written only by multi-key txns (checked for atomicity, test/check/atomicity.ts). */
export const txnPrefix = 't/';
const txnKeys = 4;
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

/**
 * A lease left to expire: granted with `ttlSeconds` (the TTL the leader answered), a key put
 * with it, then read (linearizable) until it is gone. `grantCall` and the reads' times are on
 * the run's clock. The key must not be gone before grantCall + ttl (see checkLeaseExpiry).
 */
export interface ExpiryRecord {
  lease: string;
  key: string;
  grantCall: number;
  ttlSeconds: number;
  putRet: number;
  /** Each read of the key that answered: when it returned and whether the key was there. */
  reads: { call: number; ret: number; present: boolean }[];
}

export type Outcome = 'ok' | 'failed' | 'unknown' | 'skipped';

export interface WorkloadOptions {
  endpoints: string[];
  clients: number;
  keys: number;
  /** Per-call deadline: an op not answered by then has an unknown outcome. */
  callTimeoutMs: number;
  leaseTtlSeconds: number;
  /** Each client slot's stream is derived from it, so a seed replays every client's choices. */
  seed: number;
  /** Clients that only grant leases and watch them expire (checkLeaseExpiry). */
  expiryClients: number;
  /** Every this often, one member compacts the store (and, every fourth time, is defragmented). */
  compactEveryMs: number;
  /** The highest revision every watcher has received: compaction below it cancels no watcher. */
  watchedRevision: () => number;
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

/**
 * After a call through an endpoint fails, its client slot leaves that endpoint alone this long,
 * then tries it again. A member that is down, paused or cut off otherwise costs a third of every
 * slot's calls a full call deadline each (in a 10-minute run at seed 3001, successful
 * recorded calls and txns filled 42 % of the clients' time; the rest went to 1,607 lease cycles
 * and to 6,442 calls that failed or timed out); resting still sends
 * each impaired member a call from every slot about every rest + deadline, enough to catch it
 * answering what it must not.
 */
export const failedEndpointRestMs = 1000;

export class Workload {
  readonly history: HistoryOp[] = [];
  readonly leases: LeaseRecord[] = [];
  readonly expiries: ExpiryRecord[] = [];
  readonly txns: TxnRecord[] = [];
  readonly txnReads: TxnRead[] = [];
  /** Compactions and defragmentations: acknowledged, and failed or unknown (not recorded in the history). */
  readonly maintenance = { compact: 0, compactFailed: 0, defrag: 0, defragFailed: 0, compactedTo: 0 };
  /** Calls that failed certainly (left out of the history), by kind. */
  readonly failed = new Map<string, number>();
  private readonly connections: GrpcConnection[][] = [];
  /** When each connection's endpoint may be picked again after a failed call (run clock, ms). */
  private readonly restUntil = new Map<GrpcConnection, number>();
  private readonly start = performance.now();
  private nextOpId = 0;
  private nextClient = 0;
  private running = false;
  private loops: Promise<void>[] = [];

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
    this.loops = this.connections.map((_, slot) => this.loop(slot, prng(this.streamSeed(slot))));
    for (let e = 0; e < this.opts.expiryClients; e++) this.loops.push(this.expiryLoop(e, prng(this.streamSeed(1000 + e))));
    this.loops.push(this.maintenanceLoop(prng(this.streamSeed(2000))));
  }

  private streamSeed(stream: number): number {
    return (Math.imul(this.opts.seed ^ 0x3c6ef372, 0x9e3779b1) + Math.imul(stream + 1, 0x85ebca6b)) | 0;
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

  /**
   * One of the slot's connections, skipping endpoints resting after a failure (all of them, if
   * every one rests). Draws one number either way, so the slot's stream stays the same.
   */
  private choose(slot: number, random: () => number): GrpcConnection {
    const row = this.connections[slot];
    const now = this.now();
    const usable = row.filter((c) => (this.restUntil.get(c) ?? 0) <= now);
    const from = usable.length > 0 ? usable : row;
    return from[Math.floor(random() * from.length)];
  }

  private rest(conn: GrpcConnection): void {
    this.restUntil.set(conn, this.now() + failedEndpointRestMs);
  }

  private async loop(slot: number, random: () => number): Promise<void> {
    let client = this.nextClient++;
    let seq = 0;
    const lastSeen = new Map<string, string | null>();
    while (this.running) {
      const conn = this.choose(slot, random);
      const r = random();
      // Values are unique: the slot and its own counter (a client number depends on timing).
      const value = `s${slot}-${++seq}`;
      if (r < 0.05) {
        const unknown = await this.leaseCycle(conn, client, `${leasePrefix}${value}`);
        if (unknown) client = this.nextClient++;
        continue;
      }
      if (r < 0.1) {
        const keys = [...Array(txnKeys).keys()].filter(() => random() < 0.6).map((k) => `${txnPrefix}${k}`);
        if (keys.length < 2) await this.txnRead(conn);
        else if (!(await this.multiPut(conn, keys, value))) client = this.nextClient++;
        continue;
      }
      const key = `${keyPrefix}${Math.floor(random() * this.opts.keys)}`;
      let input: OpInput;
      if (r < 0.42) input = { f: 'get', key };
      else if (r < 0.64) input = { f: 'put', key, value };
      else if (r < 0.7) input = { f: 'delete', key };
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
      this.rest(conn);
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
  private async leaseCycle(conn: GrpcConnection, client: number, key: string): Promise<boolean> {
    const rec: LeaseRecord = { client, key, lease: '', grant: 'skipped', put: 'skipped', revoke: 'skipped' };
    this.leases.push(rec);
    const step = async <T>(fn: () => Promise<T>): Promise<[Outcome, T | undefined]> => {
      try {
        return ['ok', await fn()];
      } catch (err) {
        this.rest(conn);
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

  /**
   * One txn putting `value` on every key of `keys` at once (no compare). Recorded unless it
   * certainly failed; returns false when its outcome is unknown.
   */
  private async multiPut(conn: GrpcConnection, keys: string[], value: string): Promise<boolean> {
    const call = this.now();
    try {
      const r = await conn.txn({ compare: [], success: keys.map((k) => ({ requestPut: { key: enc.encode(k), value: enc.encode(value) } })), failure: [] });
      this.txns.push({ keys, value, call, ret: this.now(), revision: r.header.revision });
      return true;
    } catch (err) {
      this.rest(conn);
      if (certainlyNotApplied(err)) {
        this.failed.set('txn', (this.failed.get('txn') ?? 0) + 1);
        return true;
      }
      this.txns.push({ keys, value, call, ret: Infinity, revision: null });
      return false;
    }
  }

  /** A linearizable range over the t/ keys, with each key's modRevision. */
  private async txnRead(conn: GrpcConnection): Promise<void> {
    const call = this.now();
    const key = enc.encode(txnPrefix);
    try {
      const r = await conn.range({ key, rangeEnd: prefixEnd(key) });
      const kvs: TxnRead['kvs'] = {};
      for (const kv of r.kvs) kvs[dec.decode(kv.key)] = { value: dec.decode(kv.value), modRevision: kv.modRevision };
      this.txnReads.push({ call, ret: this.now(), revision: r.header.revision, kvs });
    } catch {
      this.rest(conn);
      this.failed.set('txn-read', (this.failed.get('txn-read') ?? 0) + 1);
    }
  }

  /**
   * Grants a lease, puts a key with it, and reads the key (linearizable) every 200–400 ms until
   * it is gone, to see when the lease expired. Never kept alive, never revoked.
   */
  private async expiryLoop(index: number, random: () => number): Promise<void> {
    let seq = 0;
    while (this.running) {
      const conn = this.connections[index % this.connections.length][Math.floor(random() * this.opts.endpoints.length)];
      const key = `${leasePrefix}x${index}-${++seq}`;
      const grantCall = this.now();
      let granted: { ID: bigint; TTL: number };
      try {
        granted = await conn.leaseGrant({ TTL: this.opts.leaseTtlSeconds });
        await conn.put({ key: enc.encode(key), value: enc.encode('expiring'), lease: granted.ID });
      } catch {
        // A lease whose grant or put did not surely land tells nothing about expiry; any key it
        // left is caught by the end-of-run check that every lease key disappears.
        await sleep(200);
        continue;
      }
      const rec: ExpiryRecord = { lease: granted.ID.toString(16), key, grantCall, ttlSeconds: granted.TTL, putRet: this.now(), reads: [] };
      this.expiries.push(rec);
      const giveUp = this.now() + granted.TTL * 1000 + 20_000;
      while (this.now() < giveUp) {
        await sleep(200 + random() * 200);
        const call = this.now();
        try {
          const r = await conn.range({ key: enc.encode(key) });
          rec.reads.push({ call, ret: this.now(), present: r.kvs.length > 0 });
          if (r.kvs.length === 0) break;
        } catch {
          // A read that failed had no effect; try again.
        }
        if (!this.running && rec.reads.length > 0 && rec.reads[rec.reads.length - 1].present) break;
      }
    }
  }

  /**
   * Compacts the store now and then at a revision some watchers may not have reached yet (so a
   * watcher that reconnects behind it is cancelled, as etcd does), and defragments a member.
   */
  private async maintenanceLoop(random: () => number): Promise<void> {
    let round = 0;
    while (this.running) {
      await sleep(this.opts.compactEveryMs * (0.5 + random()));
      if (!this.running) return;
      const conn = this.connections[0][Math.floor(random() * this.opts.endpoints.length)];
      const endpoint = this.opts.endpoints[Math.floor(random() * this.opts.endpoints.length)];
      const behind = Math.floor(random() * 60) - 20;
      const revision = this.opts.watchedRevision() - behind;
      if (revision > this.maintenance.compactedTo) {
        try {
          await conn.compact({ revision });
          this.maintenance.compact++;
          this.maintenance.compactedTo = revision;
        } catch {
          this.maintenance.compactFailed++;
        }
      }
      if (++round % 4 === 0) {
        const r = await etcdctl(endpoint, ['defrag', '--command-timeout=5s']);
        if (r.code === 0) this.maintenance.defrag++;
        else this.maintenance.defragFailed++;
      }
    }
  }
}

/**
 * Anomalies in the expiry records: a lease key gone before the TTL the leader granted had
 * passed since the grant was called (the lease cannot start before that), less `earlyMsMax`.
 * Leases whose life overlapped a clock fault (`skewed`: [from, to] on the run's clock) are
 * excused: a member whose clock jumps forward may expire them early, which is allowed.
 */
export function checkLeaseExpiry(records: readonly ExpiryRecord[], skewed: readonly [number, number][], earlyMsMax: number): { anomalies: string[]; checked: number; excused: number; earliestMs: number | null } {
  const anomalies: string[] = [];
  let checked = 0;
  let excused = 0;
  let earliestMs: number | null = null;
  for (const r of records) {
    const gone = r.reads.find((x) => !x.present);
    if (gone === undefined) continue;
    if (skewed.some(([from, to]) => from < gone.ret && to > r.grantCall)) {
      excused++;
      continue;
    }
    checked++;
    // The read saw the key gone at or before it returned; the lease began at or after grantCall.
    const livedMs = gone.ret - r.grantCall;
    earliestMs = earliestMs === null ? livedMs - r.ttlSeconds * 1000 : Math.min(earliestMs, livedMs - r.ttlSeconds * 1000);
    if (livedMs < r.ttlSeconds * 1000 - earlyMsMax) {
      anomalies.push(`lease ${r.lease}: key ${r.key} was gone ${Math.round(livedMs)} ms after its grant was called (read at ${Math.round(gone.call)}–${Math.round(gone.ret)} ms), before its TTL of ${r.ttlSeconds} s`);
    }
  }
  return { anomalies, checked, excused, earliestMs };
}

/** Anomalies in the lease records: a key still readable after its lease's revoke was acknowledged. */
export function checkLeaseRecords(records: readonly LeaseRecord[]): string[] {
  return records
    .filter((r) => r.revoke === 'ok' && r.afterRevoke !== undefined && r.afterRevoke !== null)
    .map((r) => `lease ${r.lease}: key ${r.key} still read ${JSON.stringify(r.afterRevoke)} after its revoke was acknowledged`);
}

/**
 * A watcher on the history's keys from revision 1, recording every response across reconnects.
 * When compaction cancels it (it reconnected behind the compacted revision), its record is
 * closed with `compactedAt` and a new watch starts at the compacted revision, in a new record.
 */
export class RecordingWatcher {
  readonly records: WatchRecord[] = [];
  /** The highest modRevision received. */
  lastRevision = 0;
  errors: string[] = [];
  /** Watches cancelled by compaction and restarted. */
  compactions = 0;
  private readonly client: Client;
  private closed = false;

  constructor(
    private readonly clientNumber: number,
    endpoints: string[],
  ) {
    this.client = connectGrpc(endpoints, { callTimeoutMs: 5000, connectTimeoutMs: 1000, watchRetryMs: 200 });
  }

  start(): Promise<void> {
    return this.watchFrom(1);
  }

  private async watchFrom(startRevision: number): Promise<void> {
    const record: WatchRecord = { client: this.clientNumber * 100 + this.records.length, prefix: keyPrefix, startRevision, responses: [] };
    this.records.push(record);
    const watcher = await this.client.watch().prefix(keyPrefix).startRevision(startRevision).create();
    watcher.on('data', (response) => {
      const events = response.events.map((e) => ({
        type: e.type === EventType.DELETE ? ('delete' as const) : ('put' as const),
        key: dec.decode(e.kv.key),
        value: e.type === EventType.DELETE ? null : dec.decode(e.kv.value),
        modRevision: e.kv.modRevision,
      }));
      record.responses.push({ events });
      for (const e of events) this.lastRevision = Math.max(this.lastRevision, e.modRevision);
    });
    watcher.on('error', (err) => {
      if (this.closed) return;
      if (err instanceof EtcdCompactedError && err.compactRevision > 0) {
        record.compactedAt = err.compactRevision;
        this.compactions++;
        this.watchFrom(err.compactRevision).catch((e: Error) => this.errors.push(`restarting after compaction at ${err.compactRevision}: ${e.message}`));
        return;
      }
      this.errors.push(err.message);
    });
  }

  close(): void {
    this.closed = true;
    this.client.close();
  }
}
