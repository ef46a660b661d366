// An outbox store in memory (the OutboxStore seam of src/client/outbox.ts), for the simulator's
// outbox clients and the Node tests: it outlives the outboxes opened on it, as a tab's IndexedDB
// outlives the tab, and hands out copies, as IndexedDB does.

import { outboxEntriesMax, outboxFullError, type OutboxNotice, type OutboxPeers, type OutboxRecord, type OutboxStore } from '../../src/client/outbox.ts';

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
    const record: OutboxRecord = { seq: this.nextSeq++, ...structuredClone(entry) };
    this.entries.set(record.seq, record);
    return Promise.resolve(structuredClone(record));
  }

  get(seq: number): Promise<OutboxRecord | undefined> {
    const r = this.entries.get(seq);
    return Promise.resolve(r === undefined ? undefined : structuredClone(r));
  }

  all(): Promise<OutboxRecord[]> {
    return Promise.resolve(this.allNow().map((r) => structuredClone(r)));
  }

  /** The entries as they are, for the checks at the end. */
  allNow(): OutboxRecord[] {
    return [...this.entries.values()].sort((a, b) => a.seq - b.seq);
  }

  pending(): Promise<OutboxRecord[]> {
    return Promise.resolve(this.allNow().filter((r) => r.status === 'pending').map((r) => structuredClone(r)));
  }

  putAll(records: OutboxRecord[]): Promise<void> {
    for (const r of records) this.entries.set(r.seq, structuredClone(r));
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
