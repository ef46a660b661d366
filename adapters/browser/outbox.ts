// The outbox of a tab (docs/offline.md; the logic is src/client/outbox.ts): its entries live in
// IndexedDB (one database per origin and cluster, `meshkv/<cluster>/outbox`, shared by every
// tab), the tabs tell each other what they queued and settled over a BroadcastChannel, and one
// tab at a time drains, holding the Web Lock `meshkv/<cluster>/outbox-drain`.

import { openDB, type IDBPDatabase } from 'idb';
import {
  Outbox,
  outboxEntriesMax,
  outboxFullError,
  type OutboxLedger,
  type OutboxLedgerNote,
  type OutboxNotice,
  type OutboxOptions,
  type OutboxPeers,
  type OutboxRecord,
  type OutboxStore,
} from '../../src/client/outbox.ts';

export { Outbox, OutboxTxn, drainBatchEntriesMax, outboxBatchEntriesMax, outboxEntriesMax } from '../../src/client/outbox.ts';
export type { GuardRead, OutboxLoss, OutboxOutcome, OutboxRecord, OutboxStatus, OutboxWrite, OverlaidValue, QueuedEntry } from '../../src/client/outbox.ts';

interface Meta {
  client: string;
  nextSeq: number;
}

type Db = IDBPDatabase<unknown>;

function outboxDatabaseName(cluster: string): string {
  return `meshkv/${cluster}/outbox`;
}

function outboxLedgerKey(cluster: string): string {
  return `meshkv/${cluster}/outbox-ledger`;
}

/** Opens the outbox of this origin's tabs for `cluster`. */
export async function openTabOutbox(o: Omit<OutboxOptions, 'store' | 'peers' | 'wallClockMs' | 'ledger'> & { cluster: string }): Promise<Outbox> {
  const store = await IndexedDbOutboxStore.open(o.cluster);
  return Outbox.open({ ...o, store, peers: new TabOutboxPeers(o.cluster), ledger: new LocalStorageOutboxLedger(o.cluster), wallClockMs: () => Date.now() });
}

/**
 * The outbox's ledger in localStorage, which Chromium keeps apart from IndexedDB (its own
 * LevelDB), so it survives the deletion of the origin's IndexedDB after a torn write
 * (docs/browser.md). Clearing the site's data clears both, and then nothing is reported lost.
 */
export class LocalStorageOutboxLedger implements OutboxLedger {
  private readonly key: string;

  constructor(cluster: string) {
    this.key = outboxLedgerKey(cluster);
  }

  read(): OutboxLedgerNote | null {
    const text = localStorage.getItem(this.key);
    if (text === null) return null;
    let note: unknown;
    try {
      note = JSON.parse(text);
    } catch (err) {
      throw new Error(`localStorage ${this.key} is not JSON: ${(err as Error).message}`);
    }
    if (!isLedgerNote(note)) throw new Error(`localStorage ${this.key} is not an outbox ledger note: ${text.slice(0, 200)}`);
    return note;
  }

  write(note: OutboxLedgerNote): void {
    localStorage.setItem(this.key, JSON.stringify(note));
  }
}

function isLedgerNote(v: unknown): v is OutboxLedgerNote {
  if (typeof v !== 'object' || v === null) return false;
  const n = v as Record<string, unknown>;
  const isSeq = (x: unknown) => Number.isSafeInteger(x) && (x as number) >= 0;
  return (
    typeof n.client === 'string' &&
    isSeq(n.queuedThroughSeq) &&
    Array.isArray(n.losses) &&
    n.losses.every((l: Record<string, unknown>) => typeof l === 'object' && l !== null && typeof l.client === 'string' && isSeq(l.queuedThroughSeq) && (l.appliedThroughSeq === null || isSeq(l.appliedThroughSeq)) && typeof l.foundAtMs === 'number')
  );
}

class IndexedDbOutboxStore implements OutboxStore {
  private constructor(private readonly db: Db) {}

  static async open(cluster: string): Promise<IndexedDbOutboxStore> {
    const db = await openDB(outboxDatabaseName(cluster), 1, {
      upgrade(db) {
        db.createObjectStore('meta');
        // By status: reading the pending entries (every overlaid read, every drain pass) skips settled ones.
        db.createObjectStore('entries', { keyPath: 'seq' }).createIndex('status', 'status');
      },
    });
    return new IndexedDbOutboxStore(db);
  }

  async clientId(): Promise<string> {
    // Made once per database, in a transaction, so two tabs opening it together agree.
    const tx = this.db.transaction('meta', 'readwrite');
    let meta = (await tx.store.get('meta')) as Meta | undefined;
    if (meta === undefined) {
      meta = { client: `outbox-${crypto.randomUUID()}`, nextSeq: 1 };
      await tx.store.put(meta, 'meta');
    }
    await tx.done;
    return meta.client;
  }

  async add(entry: Omit<OutboxRecord, 'seq'>): Promise<OutboxRecord> {
    const tx = this.db.transaction(['meta', 'entries'], 'readwrite');
    const meta = (await tx.objectStore('meta').get('meta')) as Meta;
    const count = await tx.objectStore('entries').count();
    if (count >= outboxEntriesMax) {
      tx.abort();
      throw outboxFullError(count);
    }
    const record: OutboxRecord = { seq: meta.nextSeq, ...entry };
    await tx.objectStore('entries').add(record);
    await tx.objectStore('meta').put({ ...meta, nextSeq: meta.nextSeq + 1 }, 'meta');
    await tx.done;
    return record;
  }

  async get(seq: number): Promise<OutboxRecord | undefined> {
    return (await this.db.get('entries', seq)) as OutboxRecord | undefined;
  }

  async all(): Promise<OutboxRecord[]> {
    return (await this.db.getAll('entries')) as OutboxRecord[];
  }

  async pending(): Promise<OutboxRecord[]> {
    // An index lists equal keys by primary key: seq order.
    return (await this.db.getAllFromIndex('entries', 'status', 'pending')) as OutboxRecord[];
  }

  async putAll(records: OutboxRecord[]): Promise<void> {
    const tx = this.db.transaction('entries', 'readwrite');
    await Promise.all([...records.map((r) => tx.store.put(r)), tx.done]);
  }

  async forget(throughSeq: number): Promise<void> {
    const tx = this.db.transaction('entries', 'readwrite');
    for (let cursor = await tx.store.openCursor(IDBKeyRange.upperBound(throughSeq)); cursor; cursor = await cursor.continue()) {
      if ((cursor.value as OutboxRecord).status !== 'pending') await cursor.delete();
    }
    await tx.done;
  }

  close(): void {
    this.db.close();
  }
}

class TabOutboxPeers implements OutboxPeers {
  private readonly channel: BroadcastChannel;

  constructor(private readonly cluster: string) {
    this.channel = new BroadcastChannel(`meshkv/${cluster}/outbox`);
  }

  post(notice: OutboxNotice): void {
    this.channel.postMessage(notice);
  }

  listen(fn: (notice: OutboxNotice) => void): void {
    this.channel.onmessage = (e: MessageEvent<OutboxNotice>) => fn(e.data);
  }

  async drainAlone(drain: () => Promise<void>): Promise<boolean> {
    return navigator.locks.request(`meshkv/${this.cluster}/outbox-drain`, { ifAvailable: true }, async (lock) => {
      if (lock === null) return false;
      await drain();
      return true;
    });
  }

  close(): void {
    this.channel.close();
  }
}
