// The browser backend, beside the member's log storage (storage.ts): IndexedDB, one object store
// per etcd bucket (layout: src/backend/layout.ts), keys stored as binary keys, which IndexedDB
// orders bytewise as the seam requires. Reads are asynchronous, so this is an AsyncBackend: the
// store reads it through src/backend/prefetched.ts.
//
// Database `meshkv/<cluster>/member/<id>/backend`, beside the member's log storage (whose Web
// Lock already keeps a second tab from opening the same member).
//
// Commits are coalesced: every commit() of one event turn becomes one readwrite transaction over
// every bucket, with the applied index written last inside it; IndexedDB commits a transaction
// whole or not at all, so the stored index and the data it describes change together. Commits
// are 'relaxed' (visible at once, flushed by the browser later, surviving a tab crash since the
// browser process holds them); durable() runs a 'strict' transaction, which IndexedDB orders
// after every earlier one, so it flushes them too (the same rule as the log storage's saves).

import { deleteDB, openDB, unwrap } from 'idb';
import { checkBatchIndex, decodeU64, encodeU64, metaKeys } from '../../../src/backend/layout.ts';
import { backendBuckets, type AsyncBackend, type BackendBatch, type BackendBucket } from '../../../src/seams.ts';
import { databaseNameOf } from './schema.ts';

/** Which member's backend to open (the same pair as its log storage). */
export interface IndexedDbBackendMember {
  cluster: string;
  memberId: number;
}

const schemaVersion = 1;

export class IndexedDbBackend implements AsyncBackend {
  readonly persistent = true;
  /** The applied index of the last committed batch. Invariant: <= queuedIndex. */
  private applied: number;
  /** The applied index of the last batch handed to commit(). */
  private queuedIndex: number;
  /** Batches waiting for the scheduled transaction; drained when it starts. */
  private queue: BackendBatch[] = [];
  private scheduled: Promise<void> | null = null;
  /** The latest write transaction: durable() and close() wait for it. */
  private last: Promise<void> = Promise.resolve();
  private failure: Error | null = null;
  private closed = false;

  private constructor(
    readonly database: string,
    private readonly db: IDBDatabase,
    applied: number,
  ) {
    this.applied = applied;
    this.queuedIndex = applied;
    db.onversionchange = () => this.fail('another context asked to delete or upgrade the database');
    db.onclose = () => this.fail('the browser closed the connection (storage cleared or disk error)');
  }

  static databaseName(member: IndexedDbBackendMember): string {
    return `${databaseNameOf(member.cluster, member.memberId)}/backend`;
  }

  /** Opens (creating if needed) the member's backend and reads its applied index. */
  static async open(member: IndexedDbBackendMember): Promise<IndexedDbBackend> {
    const name = IndexedDbBackend.databaseName(member);
    const wrapped = await openDB(name, schemaVersion, {
      upgrade(db, oldVersion) {
        if (oldVersion > 0) throw new Error(`indexedDbBackend ${name}: unknown schema version ${oldVersion}`);
        for (const bucket of backendBuckets) db.createObjectStore(bucket);
      },
    });
    if (wrapped.version !== schemaVersion) {
      wrapped.close();
      throw new Error(`indexedDbBackend ${name}: schema version ${wrapped.version} was written by a newer meshkv (this one knows ${schemaVersion})`);
    }
    const db = unwrap(wrapped);
    const stored = await request(db.transaction('meta', 'readonly').objectStore('meta').get(metaKeys.consistentIndex));
    return new IndexedDbBackend(name, db, stored === undefined ? 0 : decodeU64(asBytes(stored)));
  }

  /** Deletes the member's backend; the caller holds the member's storage lock or knows it is closed. */
  static async destroy(member: IndexedDbBackendMember): Promise<void> {
    await deleteDB(IndexedDbBackend.databaseName(member));
  }

  get appliedIndex(): number {
    return this.applied;
  }

  commit(batch: BackendBatch): Promise<void> {
    if (this.closed) return Promise.reject(new Error(`indexedDbBackend ${this.database}: commit after close`));
    if (this.failure !== null) return Promise.reject(this.failure);
    checkBatchIndex(batch, this.queuedIndex);
    this.queuedIndex = batch.appliedIndex;
    this.queue.push(batch);
    if (this.scheduled === null) {
      const txn = Promise.resolve().then(() => this.writeQueued());
      this.scheduled = txn;
      this.last = txn;
    }
    return this.scheduled;
  }

  /** One readwrite transaction: every queued batch, then the last applied index. */
  private async writeQueued(): Promise<void> {
    const batches = this.queue;
    this.queue = [];
    this.scheduled = null;
    if (this.failure !== null) throw this.failure;
    let index = this.applied;
    try {
      const tx = this.db.transaction(backendBuckets, 'readwrite', { durability: 'relaxed' });
      for (const batch of batches) {
        if (batch.clear) for (const bucket of backendBuckets) tx.objectStore(bucket).clear();
        for (const op of batch.ops) {
          const store = tx.objectStore(op.bucket);
          if (op.value === null) store.delete(idbKey(op.key));
          // put() stores a structured clone: the caller's buffer is not kept.
          else store.put(op.value, idbKey(op.key));
        }
        index = batch.appliedIndex;
      }
      tx.objectStore('meta').put(encodeU64(index), metaKeys.consistentIndex);
      await completion(tx);
    } catch (err) {
      throw this.fail(`commit failed: ${err instanceof Error ? err.message : String(err)}`);
    }
    this.applied = index;
  }

  async durable(): Promise<number> {
    await this.last;
    const index = this.applied;
    if (this.failure !== null) throw this.failure;
    // A strict transaction commits after every earlier one and only once flushed to disk.
    const tx = this.db.transaction('meta', 'readwrite', { durability: 'strict' });
    tx.objectStore('meta').put(encodeU64(index), metaKeys.consistentIndex);
    await completion(tx);
    return index;
  }

  async getMany(bucket: BackendBucket, keys: readonly Uint8Array[]): Promise<(Uint8Array | undefined)[]> {
    this.assertOpen();
    if (keys.length === 0) return [];
    const store = this.db.transaction(bucket, 'readonly').objectStore(bucket);
    const values = await Promise.all(keys.map((k) => request(store.get(idbKey(k)))));
    return values.map((v) => (v === undefined ? undefined : asBytes(v)));
  }

  async rangeChunk(bucket: BackendBucket, start: Uint8Array, end: Uint8Array | null, pairsMax: number): Promise<[Uint8Array, Uint8Array][]> {
    this.assertOpen();
    if (!Number.isSafeInteger(pairsMax) || pairsMax < 1) throw new RangeError(`indexedDbBackend: pairsMax ${pairsMax} is not a positive integer`);
    if (end !== null && indexedDB.cmp(idbKey(start), idbKey(end)) >= 0) return [];
    const range = end === null ? IDBKeyRange.lowerBound(idbKey(start)) : IDBKeyRange.bound(idbKey(start), idbKey(end), false, true);
    const store = this.db.transaction(bucket, 'readonly').objectStore(bucket);
    // Both requests run in one transaction, so they see the same state.
    const [keys, values] = await Promise.all([request(store.getAllKeys(range, pairsMax)), request(store.getAll(range, pairsMax))]);
    return keys.map((k, i) => [asBytes(k), asBytes(values[i])]);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      if (this.failure === null) await this.durable();
    } finally {
      this.db.close();
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new Error(`indexedDbBackend ${this.database}: read after close`);
    if (this.failure !== null) throw this.failure;
  }

  /** Records the first failure: every later commit and read rejects with it. */
  private fail(reason: string): Error {
    this.failure ??= new Error(`indexedDbBackend ${this.database}: ${reason}`);
    return this.failure;
  }
}

function request<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function completion(tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new Error('transaction aborted'));
  });
}

/** A binary key: IndexedDB compares these bytewise, as the seam orders keys. */
function idbKey(key: Uint8Array): IDBValidKey {
  return key as Uint8Array<ArrayBuffer>;
}

/** Keys come back as ArrayBuffers, values as the Uint8Arrays stored. */
function asBytes(v: unknown): Uint8Array {
  if (v instanceof Uint8Array) return v;
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  throw new Error(`indexedDbBackend: a stored ${Object.prototype.toString.call(v)} where bytes belong`);
}
