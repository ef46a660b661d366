// Exactly-once writes for offline outboxes (docs/offline.md). An outbox entry is a txn tagged
// with its outbox's client id and a sequence number; the replicated state machine remembers, per
// client, the last sequence number it applied and how that entry ended (Raft thesis §6.3,
// Replicache's lastMutationID). A retry of an entry already applied (a tab that crashed between
// proposing and hearing the answer, or a second tab draining the same outbox) is answered from
// that record and changes nothing.
//
// The table is part of the replicated state: every member applies the same entries in the same
// order, so every member keeps and evicts the same sessions. It travels in the member table's
// snapshot header (member-table.ts), so it survives snapshots and restarts.
//
// Bound: at most outboxSessionsMax clients are remembered; the one whose last entry is oldest
// (by log index) is forgotten first. An outbox whose session was forgotten and that retries its
// last entry would have it applied again: that takes outboxSessionsMax other outboxes writing
// between its proposal and its retry.

import { Packr } from 'msgpackr';
import { decodeRequest, encodeRequest, RequestDecodeError } from '../codec/request.ts';
import type { TxnRequest } from '../mvcc/types.ts';

/**
 * Outboxes whose last entries the state machine remembers. Each costs ~50 bytes in every
 * snapshot plus ~12 per entry of its last batch (at most outboxBatchEntriesMax).
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
   * Applied, but by a member replaying entries its persistent backend already held (a restart
   * after the last snapshot), which does not see the outcome again. Only that member's answer
   * to a retry lacks the outcome; the entry is still applied once.
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
    if (s === undefined || seq > s.seq) return null;
    return { outcome: s.outcomes.find(([q]) => q === seq)?.[1] ?? { kind: 'unknown' } };
  }

  record(client: string, seq: number, outcome: OutboxOutcome, index: number): void {
    const prev = this.byClient.get(client);
    if (prev !== undefined && seq <= prev.seq) throw new Error(`outbox sessions: ${client} entry ${seq} recorded after ${prev.seq}`);
    const outcomes: [number, OutboxOutcome][] = prev !== undefined && prev.index === index ? [...prev.outcomes, [seq, outcome]] : [[seq, outcome]];
    if (outcomes.length > outboxBatchEntriesMax) throw new Error(`outbox sessions: ${client} has more than ${outboxBatchEntriesMax} entries at index ${index}`);
    this.byClient.delete(client);
    this.byClient.set(client, { seq, outcomes, index });
    if (this.byClient.size > outboxSessionsMax) {
      const oldest = this.byClient.keys().next().value as string;
      this.byClient.delete(oldest);
    }
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
      const bad = checkClient(client) ?? checkSeq(seq);
      if (bad !== null) throw new Error(`outbox sessions image: ${bad}`);
      const valid =
        Number.isSafeInteger(index) &&
        Array.isArray(outcomes) &&
        outcomes.length >= 1 &&
        outcomes.length <= outboxBatchEntriesMax &&
        outcomes.every((o) => Array.isArray(o) && o.length === 2 && Number.isSafeInteger(o[0]) && typeof o[1] === 'object' && o[1] !== null && typeof o[1].kind === 'string');
      if (!valid) throw new Error('outbox sessions image: a session has a bad index or outcomes');
      this.byClient.set(client as string, { seq: seq as number, index: index as number, outcomes: outcomes as [number, OutboxOutcome][] });
    }
  }
}
