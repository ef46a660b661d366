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
//
// Staging (a snapshot streamed from the leader): one more object store, `staging`, keyed by
// [bucket, key], filled in its own transactions while the live stores go on serving. Adopting
// is one strict readwrite transaction over every store: clear the live buckets, move the staged
// records in with a cursor (one record in memory at a time), write the applied index, clear
// `staging`. IndexedDB commits it whole or not at all, so a crash or a cut stream leaves the
// live content; a new stage() clears what an earlier one left.

import { deleteDB, openDB, unwrap } from 'idb';
import { checkBatchIndex, decodeU64, encodeU64, metaKeys } from '../../../src/backend/layout.ts';
import { backendBuckets, type AsyncBackend, type BackendBatch, type BackendBucket, type BackendOp, type BackendStaging } from '../../../src/seams.ts';
import { databaseNameOf } from './schema.ts';

/** Which member's backend to open (the same pair as its log storage). */
export interface IndexedDbBackendMember {
  cluster: string;
  memberId: number;
}

/** 2 added the staging store. */
const schemaVersion = 2;
const stagingStore = 'staging';
const everyStore = [...backendBuckets, stagingStore];

export class IndexedDbBackend implements AsyncBackend {
  readonly persistent = true;
  /** The applied index of the last committed batch. Invariant: <= queuedIndex. */
  private applied: number;
  /** The applied index of the last batch handed to commit(). */
  private queuedIndex: number;
  /** Batches of the next write transaction and its promise; null once it started or an adopt came after it. */
  private group: { batches: BackendBatch[]; written: Promise<void> } | null = null;
  /** The latest write transaction or adopt: durable() and close() wait for it. */
  private last: Promise<void> = Promise.resolve();
  /** Settles when the latest adopt did: commits called after it are written after it. */
  private barrier: Promise<void> = Promise.resolve();
  /** The staging area in use, if any (a new one replaces it). */
  private staged: object | null = null;
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
        if (oldVersion < 1) for (const bucket of backendBuckets) db.createObjectStore(bucket);
        if (oldVersion < 2) db.createObjectStore(stagingStore);
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
    if (this.group === null) {
      const batches: BackendBatch[] = [];
      const written = this.barrier.then(() => {
        if (this.group?.batches === batches) this.group = null;
        return this.writeGroup(batches);
      });
      this.group = { batches, written };
      this.last = written;
    }
    this.group.batches.push(batch);
    return this.group.written;
  }

  /** One readwrite transaction: every batch of a group, then the last applied index. */
  private async writeGroup(batches: BackendBatch[]): Promise<void> {
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

  /**
   * A staging area: `staging` is cleared first (what a crash or an abandoned stream left), in a
   * transaction created now, so IndexedDB runs it before this area's writes.
   */
  stage(): BackendStaging {
    this.assertOpen();
    const token = {};
    this.staged = token;
    this.clearStaging();
    const current = (what: string): void => {
      if (this.staged !== token) throw new Error(`indexedDbBackend ${this.database}: ${what} on a staging area that was adopted, abandoned or replaced`);
    };
    return {
      write: async (ops) => {
        current('write');
        this.assertOpen();
        if (ops.some((op) => op.value === null)) throw new Error(`indexedDbBackend ${this.database}: a staging area takes puts only`);
        await this.writeStaged(ops);
      },
      adopt: async (appliedIndex) => {
        current('adopt');
        if (this.closed) throw new Error(`indexedDbBackend ${this.database}: adopt after close`);
        if (this.failure !== null) throw this.failure;
        checkBatchIndex({ clear: true, ops: [], appliedIndex }, this.queuedIndex);
        this.staged = null;
        this.queuedIndex = appliedIndex;
        // After every commit called before (the pending group is closed: later commits wait for the barrier).
        this.group = null;
        const adopted = this.last.then(() => this.writeAdopt(appliedIndex));
        this.last = adopted;
        this.barrier = adopted.catch(() => {});
        await adopted;
      },
      abandon: () => {
        if (this.staged !== token) return;
        this.staged = null;
        // Frees the space now rather than at the next stage().
        if (!this.closed && this.failure === null) this.clearStaging();
      },
    };
  }

  private clearStaging(): void {
    const tx = this.db.transaction(stagingStore, 'readwrite', { durability: 'relaxed' });
    tx.objectStore(stagingStore).clear();
    completion(tx).catch((err: unknown) => this.fail(`clearing the staging area failed: ${err instanceof Error ? err.message : String(err)}`));
  }

  private async writeStaged(ops: readonly BackendOp[]): Promise<void> {
    try {
      const tx = this.db.transaction(stagingStore, 'readwrite', { durability: 'relaxed' });
      const store = tx.objectStore(stagingStore);
      for (const op of ops) {
        if (!backendBuckets.includes(op.bucket)) throw new Error(`unknown bucket ${JSON.stringify(op.bucket)}`);
        store.put(op.value, [op.bucket, idbKey(op.key)]);
      }
      await completion(tx);
    } catch (err) {
      throw this.fail(`writing the staging area failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  /** One strict transaction: the staged records replace the live ones, with the applied index. */
  private async writeAdopt(appliedIndex: number): Promise<void> {
    if (this.failure !== null) throw this.failure;
    try {
      const tx = this.db.transaction(everyStore, 'readwrite', { durability: 'strict' });
      for (const bucket of backendBuckets) tx.objectStore(bucket).clear();
      const staging = tx.objectStore(stagingStore);
      // Every step is queued from the cursor's callbacks, while the transaction is active; a
      // failed request or a throw in a callback aborts it whole.
      const cursor = staging.openCursor();
      cursor.onsuccess = () => {
        const at = cursor.result;
        if (at !== null) {
          const [bucket, key] = at.key as [BackendBucket, IDBValidKey];
          tx.objectStore(bucket).put(at.value, key);
          at.continue();
          return;
        }
        staging.clear();
        tx.objectStore('meta').put(encodeU64(appliedIndex), metaKeys.consistentIndex);
      };
      await completion(tx);
    } catch (err) {
      throw this.fail(`adopting the staging area failed: ${err instanceof Error ? err.message : String(err)}`);
    }
    this.applied = appliedIndex;
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
