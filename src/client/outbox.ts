// The durable outbox (docs/offline.md): writes an app makes while its member may be offline,
// kept in durable storage with a guard, and proposed in order once the member is online. Each
// entry ends committed (at a revision) or conflict (its guard failed; the current values come
// back), reported through a promise and an event every sharer of the outbox hears, after a
// reload too.
//
// The runtime-agnostic part: where entries are kept (OutboxStore) and how the outboxes sharing
// one store coordinate (OutboxPeers) are seams. In a tab they are IndexedDB, a BroadcastChannel
// and a Web Lock (adapters/browser/outbox.ts): one outbox per origin and cluster, every tab
// writes into the same database under one client id with one sequence, and one tab at a time
// drains it, so whichever tab is open drains what a closed one left. The simulator runs this
// same code over a store in memory (test/sim/outbox-clients.ts). The state machine applies each
// (client id, sequence) once (src/server/outbox-sessions.ts): a member that dies between
// proposing an entry and hearing the answer leaves the entry pending, the next drain proposes it
// again, and the retry is answered with the first outcome instead of being applied twice.
//
// Guards. The default is "nothing I read has changed since": a read through an OutboxTxn records
// the key's mod_revision (0: absent) and the entry commits only if every such key still has it.
// A key whose value the read took from a pending entry of this outbox is guarded by that entry
// instead: its mod_revision must be the revision that entry commits at, and if that entry ends in
// conflict, so does this one (it was based on a value the cluster never held). An app may
// instead give an explicit etcd txn (Outbox.txn).

import { equalBytes, prefixEnd, startsWith, toBytes, toText, type Bytes } from './bytes.ts';
import { EtcdError, StatusCode } from './errors.ts';
import { toEtcdError } from './local-connection.ts';
import { CompareResult, CompareTarget, type Compare, type KeyValue, type RequestOp, type TxnRequest, type TxnResponse } from '../mvcc/types.ts';
import type { Clock } from '../seams.ts';
import type { Connectivity } from '../server/connectivity.ts';
import type { KvMember } from '../server/kv-member.ts';
import { outboxBatchEntriesMax } from '../server/outbox-sessions.ts';

/** Pending entries read per drain pass: the pass then starts over (so entries queued meanwhile join in order). */
export const drainBatchEntriesMax = 256;
export { outboxBatchEntriesMax };
/** Entries the outbox holds, pending or settled; a write beyond it is refused (settle or forget() some first). */
export const outboxEntriesMax = 100_000;

/**
 * 'applied': the state machine applied the entry once but no longer knows whether its guard
 * held (a retry older than the client's last batch, or answered by a member replaying its
 * persistent backend); a tab's drain never produces it in normal operation: read the keys.
 */
export type OutboxStatus = 'pending' | 'committed' | 'conflict' | 'refused' | 'applied';

/** What a read of an OutboxTxn guards: the key's mod_revision then, or the pending entry it read from. */
export type GuardRead = { key: Uint8Array; modRevision: number } | { key: Uint8Array; afterSeq: number };

/** A single-key write, as the overlay applies it (value null: a delete). */
export interface OutboxWrite {
  key: Uint8Array;
  value: Uint8Array | null;
}

export interface OutboxRecord {
  seq: number;
  status: OutboxStatus;
  /** Wall-clock time (OutboxOptions.wallClockMs) the app queued it. */
  queuedAtMs: number;
  /** Default guard: the keys read. Empty with an explicit txn. */
  reads: GuardRead[];
  /** The writes, for read-your-own-writes. */
  writes: OutboxWrite[];
  /** An explicit txn (Outbox.txn), or null: the guard is `reads` and the writes are `writes`. */
  txn: TxnRequest | null;
  /** Committed: the revision of its writes. Conflict: the revision its guard failed at. */
  revision?: number;
  /** Conflict: the current values of the keys it read and wrote (absent keys are left out). */
  current?: KeyValue[];
  /** Refused: why (etcd's message). */
  message?: string;
  settledAtMs?: number;
}

/** How an entry ended. */
export type OutboxOutcome = Required<Pick<OutboxRecord, 'seq' | 'status'>> & Pick<OutboxRecord, 'revision' | 'current' | 'message'>;

/** A value read with the overlay: `pending` when it comes from an outbox entry not yet committed. */
export interface OverlaidValue {
  key: string;
  value: string | null;
  /** The key's mod_revision in the replica (0: absent there). */
  modRevision: number;
  pending: boolean;
  /** The outbox entry the value comes from, when pending. */
  pendingSeq: number | null;
}

/** What of its member an outbox uses: local reads, the revision, proposing outbox batches, and what the state machine applied of a client. */
export type OutboxMember = Pick<KvMember, 'range' | 'proposeOutboxBatch' | 'currentRevision' | 'outboxAppliedSeq'>;

/**
 * Where an outbox keeps its client id and entries. Durable: an entry is kept from the moment
 * add() resolves, across reloads, crashes and restarts (IndexedDB in a tab).
 */
export interface OutboxStore {
  /** The client id every entry carries: made once per store (atomically, if several open it together) and kept. */
  clientId(): Promise<string>;
  /**
   * Keeps `entry` under the next sequence number (1, 2, …), atomically with taking that number.
   * Rejects with outboxFullError when the store holds outboxEntriesMax entries.
   */
  add(entry: Omit<OutboxRecord, 'seq'>): Promise<OutboxRecord>;
  get(seq: number): Promise<OutboxRecord | undefined>;
  /** Every entry, in seq order. */
  all(): Promise<OutboxRecord[]>;
  /** The pending entries, in seq order. */
  pending(): Promise<OutboxRecord[]>;
  /** Replaces these records (settling them), all or none. */
  putAll(records: OutboxRecord[]): Promise<void>;
  /** Deletes the settled entries with seq at most `throughSeq`; pending ones stay. */
  forget(throughSeq: number): Promise<void>;
  close(): void;
}

/**
 * A note about the outbox kept apart from its store, so that losing the store is noticed rather
 * than read as an empty outbox. In a tab it is the origin's local storage, beside IndexedDB
 * (adapters/browser/outbox.ts): Chromium can delete an origin's whole IndexedDB one restart
 * after a crash tore a write (docs/browser.md), and the entries only there are then gone. The note only says which client id the
 * store had and how far it had queued; it holds no entry.
 *
 * Best effort, by design of where it lives: notes from the last moments before a browser crash
 * may not have been written out (Chromium saves local storage a little later), and two tabs
 * writing at once may each keep their own, so `queuedThroughSeq` may fall short by the entries
 * of those moments; the next queue() corrects it.
 */
export interface OutboxLedger {
  /** The note, or null if none was written; throws if what is there is not a note. */
  read(): OutboxLedgerNote | null;
  write(note: OutboxLedgerNote): void;
}

export interface OutboxLedgerNote {
  /** The client id of the store this note describes. */
  client: string;
  /** The highest sequence number that store had given an entry (0: none). */
  queuedThroughSeq: number;
  /** Stores found lost before this one and not yet acknowledged, oldest first. */
  losses: OutboxLoss[];
}

/** An outbox store found lost: opened, it had another client id than the ledger's. */
export interface OutboxLoss {
  /** The lost store's client id. */
  client: string;
  /** The highest sequence number it had given an entry, as far as the ledger knew. */
  queuedThroughSeq: number;
  /**
   * The last of its entries the state machine had applied, as this member's replica knew when
   * the loss was found (null: the replica has no record of the client — nothing applied, or
   * forgotten after outboxSessionsMax other clients). Entries after it, through
   * queuedThroughSeq, had not been applied then; their writes are gone. A replica that was
   * behind may name an earlier entry than the cluster's last.
   */
  appliedThroughSeq: number | null;
  /** Wall-clock time (OutboxOptions.wallClockMs) the loss was found. */
  foundAtMs: number;
}

/** What the outboxes sharing one store (a tab's and its siblings') tell each other. */
export type OutboxNotice = { kind: 'queued'; seq: number } | { kind: 'settled'; seq: number };

/** How the outboxes sharing one store coordinate (a BroadcastChannel and a Web Lock in a tab). */
export interface OutboxPeers {
  /** Tells every other outbox on the store (not this one). */
  post(notice: OutboxNotice): void;
  /** Hears the others' notices (one listener). */
  listen(fn: (notice: OutboxNotice) => void): void;
  /** Runs `drain` unless another outbox on the store is draining; resolves false if it did not run. */
  drainAlone(drain: () => Promise<void>): Promise<boolean>;
  close(): void;
}

export interface OutboxOptions {
  /** The member: drains propose through it, local reads read it. */
  kv: OutboxMember;
  connectivity: () => Connectivity;
  onConnectivity: (fn: (c: Connectivity) => void) => () => void;
  clock: Clock;
  /** Wall-clock milliseconds for queuedAtMs and settledAtMs (Date.now in a tab). */
  wallClockMs: () => number;
  store: OutboxStore;
  peers: OutboxPeers;
  /**
   * Where the store's client id and progress are noted apart from it, to notice its loss (a
   * tab's local storage). Without one a lost store reads as an empty outbox: only for stores
   * that cannot be lost apart from their member (the simulator's, in memory).
   */
  ledger?: OutboxLedger;
  /** How often it checks for entries to drain that no event announced (a closed tab's; default 1000 ms). */
  drainCheckMs?: number;
  log?: (level: 'info' | 'warn', msg: string) => void;
}

/** The refusal of a write beyond outboxEntriesMax; `count`: the entries held. */
export function outboxFullError(count: number): EtcdError {
  return new EtcdError(StatusCode.ResourceExhausted, `meshkv: the outbox holds ${count} entries, its limit (outboxEntriesMax); forget() settled ones first`);
}

export class Outbox {
  private readonly outcomeListeners = new Set<(o: OutboxOutcome) => void>();
  private readonly changeListeners = new Set<() => void>();
  private readonly waiting = new Map<number, ((o: OutboxOutcome) => void)[]>();
  private readonly db: OutboxStore;
  private readonly stops: (() => void)[] = [];
  private draining = false;
  private closed = false;

  private constructor(
    /** The client id every entry of this outbox carries (one per store: per origin and cluster in a tab). */
    readonly clientId: string,
    private readonly o: OutboxOptions,
  ) {
    this.db = o.store;
    o.peers.listen((n) => void this.onNotice(n));
    this.stops.push(o.onConnectivity((c) => c.state === 'online' && this.maybeDrain()));
    this.stops.push(o.clock.every(o.drainCheckMs ?? 1000, () => this.maybeDrain()));
  }

  static async open(o: OutboxOptions): Promise<Outbox> {
    const outbox = new Outbox(await o.store.clientId(), o);
    await outbox.checkLedger();
    outbox.maybeDrain();
    return outbox;
  }

  /**
   * Compares the store with the ledger's note: a note naming another client id means the store
   * that client had is gone (it is made once per store and kept). Its loss is kept in the
   * ledger, so every outbox opened on this origin reports it until acknowledged, unless every
   * entry it had queued was applied.
   */
  private async checkLedger(): Promise<void> {
    const ledger = this.o.ledger;
    if (ledger === undefined) return;
    // Without a readable note a loss cannot be told from a first open; the new note starts over.
    const note = this.readLedger(', so a lost store would go unnoticed this once; it is rewritten');
    if (note !== null && note.client === this.clientId) return;
    const losses = note?.losses ?? [];
    if (note !== null && note.queuedThroughSeq > 0) {
      const applied = this.o.kv.outboxAppliedSeq(note.client);
      if (applied === null || applied < note.queuedThroughSeq) {
        losses.push({ client: note.client, queuedThroughSeq: note.queuedThroughSeq, appliedThroughSeq: applied, foundAtMs: this.o.wallClockMs() });
        this.o.log?.(
          'warn',
          `outbox: the store of client ${note.client} is gone (its entries through ${note.queuedThroughSeq} were kept only there; ` +
            `applied through ${applied ?? 'none known'}); a new store starts as ${this.clientId}`,
        );
      }
    }
    // A store older than its note (kept before ledgers existed) may hold entries already.
    const queuedThroughSeq = (await this.db.pending()).at(-1)?.seq ?? 0;
    ledger.write({ client: this.clientId, queuedThroughSeq, losses });
  }

  /**
   * Outbox stores of this origin found lost and not yet acknowledged, oldest first: their
   * unapplied entries are gone (see OutboxLoss). Empty without a ledger.
   */
  losses(): OutboxLoss[] {
    return this.readLedger()?.losses ?? [];
  }

  /** Clears losses() (the app has told its user). */
  acknowledgeLosses(): void {
    const note = this.readLedger();
    if (note && note.losses.length > 0) this.o.ledger!.write({ ...note, losses: [] });
  }

  /** The ledger's note; null when there is none or it is unreadable (logged, with `consequence`). */
  private readLedger(consequence = ''): OutboxLedgerNote | null {
    try {
      return this.o.ledger?.read() ?? null;
    } catch (err) {
      this.o.log?.('warn', `outbox: the ledger is unreadable${consequence}: ${(err as Error).message}`);
      return null;
    }
  }

  /** Notes in the ledger that the store has queued through `seq` (never lowering it). */
  private noteQueued(seq: number): void {
    const ledger = this.o.ledger;
    if (ledger === undefined) return;
    const note = this.readLedger();
    // Another client id there: a sibling tab found this store lost and started a new one
    // meanwhile; its note stands.
    if (note !== null && note.client !== this.clientId) return;
    if (note !== null && note.queuedThroughSeq >= seq) return;
    ledger.write({ client: this.clientId, queuedThroughSeq: seq, losses: note?.losses ?? [] });
  }

  // ---- writing ----

  /** A transaction whose reads become its guard (see the header); commit() queues it. */
  begin(): OutboxTxn {
    return new OutboxTxn(this);
  }

  /**
   * Queues an explicit etcd txn: it commits if its compares hold (its success ops run), and is
   * a conflict otherwise (its failure ops run; with none, the compared keys are read for
   * `current`). Its single-key puts and deletes are overlaid while pending.
   */
  txn(request: TxnRequest): Promise<QueuedEntry> {
    const writes: OutboxWrite[] = [];
    for (const op of request.success ?? []) {
      if ('requestPut' in op) writes.push({ key: op.requestPut.key, value: op.requestPut.value ?? new Uint8Array(0) });
      else if ('requestDeleteRange' in op && !op.requestDeleteRange.rangeEnd?.length) writes.push({ key: op.requestDeleteRange.key, value: null });
    }
    return this.queue({ reads: [], writes, txn: request });
  }

  /** @internal (OutboxTxn.commit) */
  async queue(entry: Pick<OutboxRecord, 'reads' | 'writes' | 'txn'>): Promise<QueuedEntry> {
    this.checkOpen();
    if (entry.writes.length === 0 && entry.txn === null) throw new TypeError('outbox: an entry without writes has nothing to commit');
    const record = await this.db.add({ status: 'pending', queuedAtMs: this.o.wallClockMs(), ...entry });
    this.noteQueued(record.seq);
    this.o.peers.post({ kind: 'queued', seq: record.seq });
    this.emitChange();
    this.maybeDrain();
    return { seq: record.seq, outcome: this.outcome(record.seq) };
  }

  // ---- hearing how entries end ----

  /** Resolves when entry `seq` is settled (at once if it is); any tab may have settled it. */
  async outcome(seq: number): Promise<OutboxOutcome> {
    const record = await this.db.get(seq);
    if (record === undefined) throw new TypeError(`outbox: no entry ${seq} (never queued, or forgotten)`);
    if (record.status !== 'pending') return outcomeOf(record);
    return new Promise((resolve) => {
      const list = this.waiting.get(seq) ?? [];
      list.push(resolve);
      this.waiting.set(seq, list);
      // Settled between the read above and now (by another tab): check once more.
      void this.db.get(seq).then((r) => r && r.status !== 'pending' && this.resolveWaiting(r));
    });
  }

  /** Calls `fn` for every entry settled from now on, by this tab or another; returns the unsubscribe. */
  onOutcome(fn: (o: OutboxOutcome) => void): () => void {
    this.outcomeListeners.add(fn);
    return () => this.outcomeListeners.delete(fn);
  }

  /** Calls `fn` whenever an entry is queued or settled (re-read what you show); returns the unsubscribe. */
  onChange(fn: () => void): () => void {
    this.changeListeners.add(fn);
    return () => this.changeListeners.delete(fn);
  }

  /** Every entry, in order. */
  async entries(): Promise<OutboxRecord[]> {
    return this.db.all();
  }

  /** The pending entries, in order. */
  pending(): Promise<OutboxRecord[]> {
    return this.db.pending();
  }

  /** Deletes settled entries up to `seq` (the app has shown their outcome). Pending ones stay. */
  async forget(throughSeq: number): Promise<void> {
    await this.db.forget(throughSeq);
    this.emitChange();
  }

  // ---- read your own writes ----

  /** One key from the local replica, with the outbox's pending writes laid over it. */
  async get(key: Bytes): Promise<OverlaidValue> {
    const k = toBytes(key);
    const res = await this.o.kv.range({ key: k, serializable: true });
    const base = res.kvs[0];
    const overlay = lastPendingWrites(await this.pending(), (w) => equalBytes(w.key, k));
    return overlaid(k, base, overlay.get(toText(k)));
  }

  /** Every key under `prefix` from the local replica, with pending writes laid over (deleted keys left out), in key order. */
  async list(prefix: Bytes): Promise<OverlaidValue[]> {
    const p = toBytes(prefix);
    const res = await this.o.kv.range({ key: p, rangeEnd: prefixEnd(p), serializable: true });
    const overlay = lastPendingWrites(await this.pending(), (w) => startsWith(w.key, p));
    const byKey = new Map<string, OverlaidValue>();
    for (const kv of res.kvs) byKey.set(toText(kv.key), overlaid(kv.key, kv, overlay.get(toText(kv.key))));
    for (const [key, w] of overlay) if (!byKey.has(key)) byKey.set(key, overlaid(w.write.key, undefined, w));
    return [...byKey.values()].filter((v) => v.value !== null).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  // ---- draining ----

  /**
   * Proposes pending entries, in order, if this member is online and no other outbox on the
   * store is draining. Entries whose outcome stays unknown (a timeout) are proposed again on the
   * next pass.
   */
  maybeDrain(): void {
    if (this.closed || this.draining || this.o.connectivity().state !== 'online') return;
    this.draining = true;
    void this.o.peers
      .drainAlone(async () => {
        for (;;) {
          const batch = (await this.pending()).slice(0, drainBatchEntriesMax);
          if (batch.length === 0 || !(await this.drainBatch(batch))) return;
        }
      })
      .catch((err: Error) => this.o.log?.('warn', `outbox drain: ${err.message}`))
      .finally(() => (this.draining = false));
  }

  /**
   * Proposes `batch` in order, consecutive entries together (at most outboxBatchEntriesMax per
   * Raft entry, applied one by one in order there); an entry guarded by a pending entry waits
   * for that one's outcome. False when it stopped early (offline, unknown outcome, closed).
   */
  private async drainBatch(batch: OutboxRecord[]): Promise<boolean> {
    let runMax = outboxBatchEntriesMax;
    let i = 0;
    while (i < batch.length) {
      if (this.closed || this.o.connectivity().state !== 'online') return false;
      const run: { record: OutboxRecord; txn: TxnRequest; keys: Uint8Array[] }[] = [];
      const runSeqs = new Set<number>();
      while (i < batch.length && run.length < runMax) {
        // Another tab may have settled it since it was read (it held the lock before this one).
        const now = await this.db.get(batch[i].seq);
        if (now === undefined || now.status !== 'pending') {
          i++;
          continue;
        }
        if (now.reads.some((r) => 'afterSeq' in r && runSeqs.has(r.afterSeq))) break;
        const proposal = await this.proposal(now);
        if ('settled' in proposal) {
          if (run.length > 0) break;
          await this.settle([[now, proposal.settled]]);
          i++;
          continue;
        }
        run.push({ record: now, ...proposal });
        runSeqs.add(now.seq);
        i++;
      }
      if (run.length === 0) continue;
      let results: Awaited<ReturnType<OutboxMember['proposeOutboxBatch']>>;
      try {
        results = await this.o.kv.proposeOutboxBatch({ client: this.clientId, entries: run.map((r) => ({ seq: r.record.seq, txn: r.txn })) });
      } catch (err) {
        const e = toEtcdError(err);
        if (!(e instanceof EtcdError && e.code === StatusCode.InvalidArgument)) {
          this.o.log?.('info', `outbox entries ${run[0].record.seq}…${run[run.length - 1].record.seq}: outcome unknown (${(err as Error).message}); proposing them again later`);
          return false;
        }
        if (run.length > 1) {
          // Refused as a whole (too large together, or one bad entry): one at a time finds which.
          i -= run.length;
          runMax = 1;
          continue;
        }
        await this.settle([[run[0].record, { status: 'refused', message: e.message }]]);
        continue;
      }
      const settled: [OutboxRecord, Partial<OutboxRecord>][] = [];
      for (let k = 0; k < run.length; k++) settled.push([run[k].record, await this.settledFrom(results[k].outcome, results[k].txn, run[k].keys)]);
      await this.settle(settled);
      runMax = outboxBatchEntriesMax;
    }
    return true;
  }

  /**
   * The txn to propose for `r` and the keys whose current values a conflict reports; or, for an
   * entry built on a pending entry that did not commit, its outcome without proposing.
   */
  private async proposal(r: OutboxRecord): Promise<{ txn: TxnRequest; keys: Uint8Array[] } | { settled: Partial<OutboxRecord> }> {
    if (r.txn !== null) {
      const keys = dedupe((r.txn.compare ?? []).map((c) => c.key));
      const failure = r.txn.failure?.length ? r.txn.failure : keys.map((key): RequestOp => ({ requestRange: { key } }));
      return { txn: { ...r.txn, failure }, keys };
    }
    const compare: Compare[] = [];
    for (const read of r.reads) {
      let modRevision: number;
      if ('modRevision' in read) modRevision = read.modRevision;
      else {
        const base = await this.db.get(read.afterSeq);
        if (base?.status !== 'committed' || base.revision === undefined) {
          // Read from an entry that never committed: this one was based on a value the cluster never held.
          const keys = dedupe([...r.reads.map((x) => x.key), ...r.writes.map((w) => w.key)]);
          const revision = this.o.kv.currentRevision;
          return { settled: { status: 'conflict', revision, current: await this.currentValues(keys, revision) } };
        }
        modRevision = base.revision;
      }
      compare.push({ key: read.key, target: CompareTarget.MOD, result: CompareResult.EQUAL, modRevision });
    }
    const keys = dedupe([...r.reads.map((x) => x.key), ...r.writes.map((w) => w.key)]);
    const success = r.writes.map((w): RequestOp => (w.value === null ? { requestDeleteRange: { key: w.key } } : { requestPut: { key: w.key, value: w.value } }));
    return { txn: { compare, success, failure: keys.map((key) => ({ requestRange: { key } })) }, keys };
  }

  /** The record's fields for a state machine outcome; a retry's conflict reads the values at its revision. */
  private async settledFrom(outcome: Awaited<ReturnType<OutboxMember['proposeOutboxBatch']>>[number]['outcome'], txn: TxnResponse | null, keys: Uint8Array[]): Promise<Partial<OutboxRecord>> {
    switch (outcome.kind) {
      case 'committed':
        return { status: 'committed', revision: outcome.revision };
      case 'conflict': {
        const current = txn !== null ? txn.responses.flatMap((r) => ('responseRange' in r ? r.responseRange.kvs : [])) : await this.currentValues(keys, outcome.revision);
        return { status: 'conflict', revision: outcome.revision, current };
      }
      case 'refused':
        return { status: 'refused', message: outcome.message };
      case 'unknown':
        return { status: 'applied', message: 'meshkv: applied once, but the cluster no longer knows whether its guard held; read the keys' };
    }
  }

  /** The keys' values at `revision` (0: now) in the local replica; now if that revision was compacted. */
  private async currentValues(keys: Uint8Array[], revision: number): Promise<KeyValue[]> {
    const out: KeyValue[] = [];
    for (const key of keys) {
      let kvs: KeyValue[];
      try {
        kvs = (await this.o.kv.range({ key, revision, serializable: true })).kvs;
      } catch {
        kvs = (await this.o.kv.range({ key, serializable: true })).kvs;
      }
      out.push(...kvs);
    }
    return out;
  }

  /** Records outcomes in one step of the store, then tells every sharer. */
  private async settle(outcomes: [OutboxRecord, Partial<OutboxRecord>][]): Promise<void> {
    const settledAtMs = this.o.wallClockMs();
    const records = outcomes.map(([r, fields]): OutboxRecord => ({ ...r, ...fields, settledAtMs }));
    await this.db.putAll(records);
    for (const r of records) {
      this.o.peers.post({ kind: 'settled', seq: r.seq });
      this.resolveWaiting(r);
    }
    this.emitChange();
  }

  private async onNotice(n: OutboxNotice): Promise<void> {
    if (this.closed) return;
    if (n.kind === 'settled') {
      const r = await this.db.get(n.seq);
      if (r !== undefined && r.status !== 'pending') this.resolveWaiting(r);
    } else this.maybeDrain();
    this.emitChange();
  }

  private resolveWaiting(r: OutboxRecord): void {
    const o = outcomeOf(r);
    const list = this.waiting.get(r.seq);
    this.waiting.delete(r.seq);
    for (const resolve of list ?? []) resolve(o);
    if (list !== undefined || this.outcomeListeners.size > 0) for (const fn of [...this.outcomeListeners]) fn(o);
  }

  private emitChange(): void {
    for (const fn of [...this.changeListeners]) fn();
  }

  private checkOpen(): void {
    if (this.closed) throw new TypeError('outbox: closed');
  }

  /** Stops draining and listening; pending entries stay for the next open. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const stop of this.stops) stop();
    this.o.peers.close();
    this.db.close();
  }
}

export interface QueuedEntry {
  seq: number;
  /** Settles when the entry is committed, a conflict or refused (never rejects for a conflict). */
  outcome: Promise<OutboxOutcome>;
}

/**
 * Reads (with the outbox overlaid) that become the guard of the writes queued with them:
 * commit() queues one entry that commits only if nothing read has changed since.
 */
export class OutboxTxn {
  private readonly reads = new Map<string, GuardRead>();
  private readonly writes = new Map<string, OutboxWrite>();
  private committed = false;

  constructor(private readonly outbox: Outbox) {}

  async get(key: Bytes): Promise<OverlaidValue> {
    const v = await this.outbox.get(key);
    this.guard(v);
    return v;
  }

  /** Every key under `prefix` (overlaid); each key returned is guarded, keys added under the prefix meanwhile are not. */
  async list(prefix: Bytes): Promise<OverlaidValue[]> {
    const vs = await this.outbox.list(prefix);
    for (const v of vs) this.guard(v);
    return vs;
  }

  put(key: Bytes, value: Bytes): this {
    const k = toBytes(key);
    this.writes.set(toText(k), { key: k, value: toBytes(value) });
    return this;
  }

  delete(key: Bytes): this {
    const k = toBytes(key);
    this.writes.set(toText(k), { key: k, value: null });
    return this;
  }

  /** Queues the writes, guarded by the reads, in the durable outbox. */
  commit(): Promise<QueuedEntry> {
    if (this.committed) throw new TypeError('outbox: this transaction was committed already');
    this.committed = true;
    return this.outbox.queue({ reads: [...this.reads.values()], writes: [...this.writes.values()], txn: null });
  }

  private guard(v: OverlaidValue): void {
    if (this.reads.has(v.key)) return;
    const key = toBytes(v.key);
    this.reads.set(v.key, v.pendingSeq !== null ? { key, afterSeq: v.pendingSeq } : { key, modRevision: v.modRevision });
  }
}

function outcomeOf(r: OutboxRecord): OutboxOutcome {
  return { seq: r.seq, status: r.status, revision: r.revision, current: r.current, message: r.message };
}

/** The last pending write per key (by key text) among `pending`, in seq order, that `match` keeps. */
function lastPendingWrites(pending: OutboxRecord[], match: (w: OutboxWrite) => boolean): Map<string, { write: OutboxWrite; seq: number }> {
  const out = new Map<string, { write: OutboxWrite; seq: number }>();
  for (const r of pending) for (const w of r.writes) if (match(w)) out.set(toText(w.key), { write: w, seq: r.seq });
  return out;
}

function overlaid(key: Uint8Array, base: KeyValue | undefined, pending: { write: OutboxWrite; seq: number } | undefined): OverlaidValue {
  const modRevision = base?.modRevision ?? 0;
  if (pending !== undefined) return { key: toText(key), value: pending.write.value === null ? null : toText(pending.write.value), modRevision, pending: true, pendingSeq: pending.seq };
  return { key: toText(key), value: base ? toText(base.value) : null, modRevision, pending: false, pendingSeq: null };
}

function dedupe(keys: Uint8Array[]): Uint8Array[] {
  const seen = new Map<string, Uint8Array>();
  for (const k of keys) seen.set(toText(k), k);
  return [...seen.values()];
}
