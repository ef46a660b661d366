// Exactly-once writes for offline outboxes (docs/offline.md). An outbox entry is a txn tagged
// with its outbox's client id and a sequence number; the replicated state machine remembers, per
// client, the last sequence number it applied and how that entry ended (Raft thesis §6.3,
// Replicache's lastMutationID). A retry of an entry already applied (a tab that crashed between
// proposing and hearing the answer, or a second tab draining the same outbox) is answered from
// that record and changes nothing.
//
// The table is part of the replicated state: every member applies the same entries in the same
// order, so every member keeps and evicts the same sessions. Each client's record is stored in
// the backend's `meta` bucket under `meshkv_outbox/<client>`, in the same batch as the data its
// entries wrote (an eviction deletes it in that batch), so the table always describes the
// backend's applied index: a restart or an adopted snapshot stream reads it from there, never
// from a snapshot taken at another index. A whole-image snapshot (memory backends) carries it in
// the member table's header (member-table.ts), taken at the image's index.
//
// Bound: at most outboxSessionsMax clients are remembered; the one whose last entry is oldest
// (by log index) is forgotten first. An outbox whose session was forgotten and that retries its
// last entry would have it applied again: that takes outboxSessionsMax other outboxes writing
// between its proposal and its retry.

import { Packr } from 'msgpackr';
import { decodeRequest, encodeRequest, RequestDecodeError } from '../codec/request.ts';
import type { TxnRequest } from '../mvcc/types.ts';
import type { BackendOp, BackendReader } from '../seams.ts';

/**
 * Outboxes whose last entries the state machine remembers. Each costs ~50 bytes in the backend
 * (and in a whole-image snapshot) plus ~12 per entry of its last batch (at most outboxBatchEntriesMax).
 */
export const outboxSessionsMax = 4096;
/** Longest outbox client id, in characters. */
export const outboxClientIdCharsMax = 64;

/** First byte of an outbox batch ('o'). Client requests start with their format version (1). */
export const outboxEntryTag = 0x6f;
/**
 * Outbox entries proposed together as one Raft entry (one round trip for the batch). They are
 * applied in order, each with its own revision, guard and outcome, exactly as one at a time.
 */
export const outboxBatchEntriesMax = 64;

/** How an applied outbox entry ended, as remembered. */
export type OutboxOutcome =
  /** The guard held: the entry's writes are at `revision`. */
  | { kind: 'committed'; revision: number }
  /** The guard failed at `revision`: nothing was written. */
  | { kind: 'conflict'; revision: number }
  /** The txn was refused as etcd refuses requests (too many ops, key too large, …). */
  | { kind: 'refused'; message: string }
  /**
   * Applied, but its outcome is no longer kept: the entry is older than its client's last batch,
   * or its client was evicted and the entry is replayed from the log of a member whose backend
   * already held it. Every member answers such a retry alike; the entry is still applied once.
   */
  | { kind: 'unknown' };

export interface OutboxEntry {
  client: string;
  /** Positive; each client's entries are proposed in increasing order. */
  seq: number;
  txn: TxnRequest;
}

/** Consecutive entries of one client, proposed as one Raft entry. */
export interface OutboxBatch {
  client: string;
  entries: { seq: number; txn: TxnRequest }[];
}

interface Session {
  /** The last sequence number applied. */
  seq: number;
  /**
   * The outcomes of the entries of the last Raft entry (batch) that applied any, by seq: a
   * drain waits for a batch's answer before proposing the next, so a retry is never older.
   * Invariant: non-empty, at most outboxBatchEntriesMax, ascending seqs ending at `seq`.
   */
  outcomes: [number, OutboxOutcome][];
  /** Log index of that Raft entry: eviction goes by it, and a new index starts a new batch. */
  index: number;
}

const packr = new Packr({ useRecords: false });

/** Prefix of a client's session key in the backend's `meta` bucket (etcd's own meta keys have no '/'). */
const sessionKeyPrefix = new TextEncoder().encode('meshkv_outbox/');
/** The first key after every session key: the prefix with its last byte ('/') incremented. */
const sessionKeyEnd = new TextEncoder().encode('meshkv_outbox0');
const utf8 = new TextEncoder();

export function outboxSessionKey(client: string): Uint8Array {
  const name = utf8.encode(client);
  const key = new Uint8Array(sessionKeyPrefix.length + name.length);
  key.set(sessionKeyPrefix, 0);
  key.set(name, sessionKeyPrefix.length);
  return key;
}

export function encodeOutboxBatch(b: OutboxBatch): Uint8Array {
  const body = packr.pack([b.client, b.entries.map((e) => [e.seq, encodeRequest({ kind: 'txn', request: e.txn })])]);
  const out = new Uint8Array(body.length + 1);
  out[0] = outboxEntryTag;
  out.set(body, 1);
  return out;
}

/** The batch, or a reason it cannot be one (every member decodes the same bytes alike). */
export function decodeOutboxBatch(bytes: Uint8Array): OutboxBatch | string {
  if (bytes[0] !== outboxEntryTag) return 'not an outbox entry';
  let decoded: unknown;
  try {
    decoded = packr.unpack(bytes.subarray(1));
  } catch (err) {
    return `undecodable outbox entry: ${(err as Error).message}`;
  }
  if (!Array.isArray(decoded) || decoded.length !== 2 || !Array.isArray(decoded[1])) return 'outbox entry is not [client, [[seq, txn], …]]';
  const [client, rows] = decoded as [unknown, unknown[]];
  const bad = checkClient(client) ?? checkBatchSize(rows.length);
  if (bad !== null) return bad;
  const entries: OutboxBatch['entries'] = [];
  for (const row of rows) {
    if (!Array.isArray(row) || row.length !== 2) return 'outbox entry: a batch row is not [seq, txn]';
    const [seq, txnBytes] = row as unknown[];
    const badSeq = checkSeq(seq) ?? (entries.length > 0 && (seq as number) <= entries[entries.length - 1].seq ? `outbox batch: sequence numbers must increase, ${String(seq)} follows ${entries[entries.length - 1].seq}` : null);
    if (badSeq !== null) return badSeq;
    if (!(txnBytes instanceof Uint8Array)) return 'outbox entry: txn is not bytes';
    try {
      const req = decodeRequest(txnBytes);
      if (req.kind !== 'txn') return `outbox entry: a ${req.kind}, not a txn`;
      entries.push({ seq: seq as number, txn: req.request });
    } catch (err) {
      if (err instanceof RequestDecodeError) return `outbox entry: ${err.message}`;
      throw err;
    }
  }
  return { client: client as string, entries };
}

export function checkBatchSize(n: number): string | null {
  return n >= 1 && n <= outboxBatchEntriesMax ? null : `an outbox batch holds 1 to ${outboxBatchEntriesMax} entries, not ${n}`;
}

export function checkClient(client: unknown): string | null {
  if (typeof client !== 'string' || client.length === 0 || client.length > outboxClientIdCharsMax) {
    return `outbox client id must be a string of 1 to ${outboxClientIdCharsMax} characters`;
  }
  return null;
}

export function checkSeq(seq: unknown): string | null {
  return Number.isSafeInteger(seq) && (seq as number) > 0 ? null : `outbox sequence number ${String(seq)} is not a positive integer`;
}

export class OutboxSessions {
  /**
   * Map order is eviction order: a session is re-inserted whenever it records an entry, so the
   * first one is the least recently used. Invariant: size <= outboxSessionsMax.
   */
  private readonly byClient = new Map<string, Session>();
  /**
   * Test-only sabotage (the simulator's `outbox-retries` self-test): every entry counts as new,
   * so a retry is applied again. Never set outside test/sim.
   */
  forgetsRetries = false;

  get size(): number {
    return this.byClient.size;
  }

  /**
   * The remembered outcome when (client, seq) was applied already (seq at or below the last one
   * applied for this client), else null: the entry is new. An entry older than the last batch
   * is answered 'unknown' (applied, outcome no longer kept).
   */
  applied(client: string, seq: number): { outcome: OutboxOutcome } | null {
    const s = this.byClient.get(client);
    if (s === undefined || seq > s.seq || this.forgetsRetries) return null;
    return { outcome: s.outcomes.find(([q]) => q === seq)?.[1] ?? { kind: 'unknown' } };
  }

  /**
   * The last sequence number applied for `client`, or null when the table has no session for it
   * (nothing applied, or evicted after outboxSessionsMax other clients).
   */
  lastApplied(client: string): number | null {
    return this.byClient.get(client)?.seq ?? null;
  }

  /**
   * Records an applied entry of the batch (Raft entry) at `index`, whose sequence numbers are
   * `batchSeqs`. Returns the backend writes that keep the stored table equal to this one (the
   * client's record, and the deletion of an evicted client's), for the batch that commits the
   * entry's data.
   *
   * The first entry a batch records starts the client's new last batch; it keeps the outcomes
   * the previous one remembered for entries this batch repeats (retries before the new ones),
   * so that a retry of this whole batch is answered for every entry, not 'unknown' for those
   * (the simulator found it: a member crashed after applying [3], the retry [3, 4, 5, 6]
   * crashed again, and the next retry heard 'unknown' for 3).
   */
  record(client: string, seq: number, outcome: OutboxOutcome, index: number, batchSeqs: ReadonlySet<number> = new Set()): BackendOp[] {
    const prev = this.byClient.get(client);
    if (prev !== undefined && seq <= prev.seq && !this.forgetsRetries) throw new Error(`outbox sessions: ${client} entry ${seq} recorded after ${prev.seq}`);
    let outcomes: [number, OutboxOutcome][];
    if (prev !== undefined && prev.index === index) outcomes = [...prev.outcomes, [seq, outcome]];
    else outcomes = [...(prev?.outcomes.filter(([q]) => q < seq && batchSeqs.has(q)) ?? []), [seq, outcome]];
    if (outcomes.length > outboxBatchEntriesMax) throw new Error(`outbox sessions: ${client} has more than ${outboxBatchEntriesMax} entries at index ${index}`);
    this.byClient.delete(client);
    const session = { seq, outcomes, index };
    this.byClient.set(client, session);
    const ops: BackendOp[] = [{ bucket: 'meta', key: outboxSessionKey(client), value: encodeSession(session) }];
    if (this.byClient.size > outboxSessionsMax) {
      const oldest = this.byClient.keys().next().value as string;
      this.byClient.delete(oldest);
      ops.push({ bucket: 'meta', key: outboxSessionKey(oldest), value: null });
    }
    return ops;
  }

  /** Puts of every session: the stored table after a batch that clears the backend (a restore). */
  backendOps(): BackendOp[] {
    return [...this.byClient].map(([client, s]) => ({ bucket: 'meta' as const, key: outboxSessionKey(client), value: encodeSession(s) }));
  }

  /** Replaces the table with the one stored in `backend`'s `meta` bucket. Throws on a bad record. */
  load(backend: BackendReader): void {
    const rows: [string, Session][] = [];
    const decoder = new TextDecoder('utf-8', { fatal: true });
    backend.range('meta', sessionKeyPrefix, sessionKeyEnd, (key, value) => {
      const client = decoder.decode(key.subarray(sessionKeyPrefix.length));
      rows.push([client, checkSession(client, packr.unpack(value) as unknown, 'stored outbox session')]);
    });
    if (rows.length > outboxSessionsMax) throw new Error(`stored outbox sessions: ${rows.length} clients, more than ${outboxSessionsMax}`);
    // Eviction order is the order of last use, which is log-index order: one Raft entry holds one client's batch.
    rows.sort((a, b) => a[1].index - b[1].index);
    this.byClient.clear();
    for (const [client, session] of rows) this.byClient.set(client, session);
  }

  encodeImage(): Uint8Array {
    return packr.pack([...this.byClient].map(([client, s]) => [client, s.seq, s.index, s.outcomes]));
  }

  /** Replaces the table with an image's (empty bytes: an empty table). Throws on a bad image. */
  restoreImage(image: Uint8Array): void {
    this.byClient.clear();
    if (image.length === 0) return;
    const decoded = packr.unpack(image) as unknown;
    if (!Array.isArray(decoded) || decoded.length > outboxSessionsMax) throw new Error('outbox sessions image: not a list of at most outboxSessionsMax sessions');
    for (const row of decoded) {
      if (!Array.isArray(row) || row.length !== 4) throw new Error('outbox sessions image: a session is not [client, seq, index, outcomes]');
      const [client, seq, index, outcomes] = row as [unknown, unknown, unknown, unknown];
      const bad = checkClient(client);
      if (bad !== null) throw new Error(`outbox sessions image: ${bad}`);
      this.byClient.set(client as string, checkSession(client as string, [seq, index, outcomes], 'outbox sessions image'));
    }
  }
}

function encodeSession(s: Session): Uint8Array {
  return packr.pack([s.seq, s.index, s.outcomes]);
}

/** A session from its decoded [seq, index, outcomes]; `what` names the source in errors. */
function checkSession(client: string, decoded: unknown, what: string): Session {
  const bad = checkClient(client);
  if (bad !== null) throw new Error(`${what}: ${bad}`);
  if (!Array.isArray(decoded) || decoded.length !== 3) throw new Error(`${what} of ${client}: not [seq, index, outcomes]`);
  const [seq, index, outcomes] = decoded as [unknown, unknown, unknown];
  const badSeq = checkSeq(seq);
  if (badSeq !== null) throw new Error(`${what} of ${client}: ${badSeq}`);
  const valid =
    Number.isSafeInteger(index) &&
    Array.isArray(outcomes) &&
    outcomes.length >= 1 &&
    outcomes.length <= outboxBatchEntriesMax &&
    outcomes.every((o) => Array.isArray(o) && o.length === 2 && Number.isSafeInteger(o[0]) && typeof o[1] === 'object' && o[1] !== null && typeof o[1].kind === 'string');
  if (!valid) throw new Error(`${what} of ${client}: a bad index or outcomes`);
  return { seq: seq as number, index: index as number, outcomes: outcomes as [number, OutboxOutcome][] };
}
