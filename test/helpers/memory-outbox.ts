// An outbox store in memory (the OutboxStore seam of src/client/outbox.ts), for the simulator's
// outbox clients and the Node tests: it outlives the outboxes opened on it, as a tab's IndexedDB
// outlives the tab, and hands out copies, as IndexedDB does.
//
// The copies are made by copyRecord, not structuredClone: the simulator's outbox clients read
// every pending entry on each overlaid read, and structuredClone's serialization took a twentieth
// of a seed's CPU.

import { outboxEntriesMax, outboxFullError, type OutboxLedger, type OutboxLedgerNote, type OutboxNotice, type OutboxPeers, type OutboxRecord, type OutboxStore } from '../../src/client/outbox.ts';

/** The durable part of a client: its entries, as IndexedDB keeps them in a tab. */
export class MemoryOutboxStore implements OutboxStore {
  private readonly entries = new Map<number, OutboxRecord>();
  private nextSeq = 1;
  /** The drain lock the outboxes opened on this store share (a Web Lock in a tab). */
  drainer: object | null = null;

  constructor(private readonly client: string) {}

  clientId(): Promise<string> {
    return Promise.resolve(this.client);
  }

  add(entry: Omit<OutboxRecord, 'seq'>): Promise<OutboxRecord> {
    if (this.entries.size >= outboxEntriesMax) return Promise.reject(outboxFullError(this.entries.size));
    const record: OutboxRecord = { seq: this.nextSeq++, ...copyRecord(entry) };
    this.entries.set(record.seq, record);
    return Promise.resolve(copyRecord(record));
  }

  get(seq: number): Promise<OutboxRecord | undefined> {
    const r = this.entries.get(seq);
    return Promise.resolve(r === undefined ? undefined : copyRecord(r));
  }

  all(): Promise<OutboxRecord[]> {
    return Promise.resolve(this.allNow().map((r) => copyRecord(r)));
  }

  /** The entries as they are, for the checks at the end. */
  allNow(): OutboxRecord[] {
    return [...this.entries.values()].sort((a, b) => a.seq - b.seq);
  }

  pending(): Promise<OutboxRecord[]> {
    return Promise.resolve(this.allNow().filter((r) => r.status === 'pending').map((r) => copyRecord(r)));
  }

  putAll(records: OutboxRecord[]): Promise<void> {
    for (const r of records) this.entries.set(r.seq, copyRecord(r));
    return Promise.resolve();
  }

  forget(throughSeq: number): Promise<void> {
    for (const r of this.allNow()) if (r.seq <= throughSeq && r.status !== 'pending') this.entries.delete(r.seq);
    return Promise.resolve();
  }

  /** The store outlives every outbox opened on it. */
  close(): void {}
}

/** For one outbox open at a time per store: no one to notify; the drain lock goes with the outbox that closes holding it, as a tab's Web Lock does. */
export class SingleOutboxPeers implements OutboxPeers {
  constructor(private readonly store: MemoryOutboxStore) {}

  post(_notice: OutboxNotice): void {}

  listen(_fn: (notice: OutboxNotice) => void): void {}

  async drainAlone(drain: () => Promise<void>): Promise<boolean> {
    if (this.store.drainer !== null) return false;
    this.store.drainer = this;
    try {
      await drain();
    } finally {
      if (this.store.drainer === this) this.store.drainer = null;
    }
    return true;
  }

  close(): void {
    if (this.store.drainer === this) this.store.drainer = null;
  }
}

/**
 * A deep copy of a record: plain objects, arrays, byte arrays and primitives, which is all an
 * outbox record holds (IndexedDB's structured clone would refuse anything else; so does this).
 */
function copyRecord<T>(value: T): T {
  return copyValue(value) as T;
}

function copyValue(v: unknown): unknown {
  if (v === null || typeof v !== 'object') return v;
  if (v instanceof Uint8Array) return new Uint8Array(v);
  if (Array.isArray(v)) return v.map(copyValue);
  if (Object.getPrototypeOf(v) !== Object.prototype) throw new TypeError(`memory outbox store: cannot copy a ${v.constructor?.name ?? 'null-prototype'} object`);
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v)) out[k] = copyValue((v as Record<string, unknown>)[k]);
  return out;
}

/** The outbox's ledger in memory (localStorage in a tab): it outlives the stores it notes. */
export class MemoryOutboxLedger implements OutboxLedger {
  /** As localStorage keeps it: text, so a test can also leave something that is not a note. */
  text: string | null = null;

  read(): OutboxLedgerNote | null {
    return this.text === null ? null : (JSON.parse(this.text) as OutboxLedgerNote);
  }

  write(note: OutboxLedgerNote): void {
    this.text = JSON.stringify(note);
  }
}
