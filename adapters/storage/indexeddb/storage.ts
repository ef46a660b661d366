// IndexedDB storage for a browser member (see schema.ts for the layout).
//
// Every save() is ONE readwrite transaction: snapshot, entry overwrites, appends and hard state
// commit together or not at all, so a tab that dies mid-save leaves the previous state intact.
// A synced save (and every snapshot) commits with durability 'strict': the promise resolves
// only once the browser has flushed it to disk. An unsynced save commits 'relaxed' (the
// browser may still hold it in memory); the next strict commit, or close(), flushes it too,
// because the browser's backing store writes commits in order.
//
// An exclusive Web Lock named after the database is held from open() to close(), so two tabs
// of one origin never open the same member's database at once.

import { deleteDB, openDB, unwrap } from 'idb';
import type { Entry, HardState, Snapshot } from '../../../src/raft/types.ts';
import type { PersistBatch, PersistedState, Storage } from '../../../src/seams.ts';
import { StorageError } from '../errors.ts';
import { LogShape, checkOwnSnapshot, planBatch } from '../log-rules.ts';
import type { ReleaseLock } from './lock.ts';
import { tryAcquireWebLock } from './lock.ts';
import type { MeshkvDb } from './schema.ts';
import { databaseNameOf, decodeState, entriesStore, hardStateKey, metaStore, schemaVersion, snapshotKey, upgrade } from './schema.ts';

/** Which member's storage to open. */
export interface IndexedDbMember {
  /** The cluster's name or token: members of different clusters never share a database. */
  cluster: string;
  memberId: number;
}

export class IndexedDbStorage implements Storage {
  /** The IndexedDB database name; the Web Lock has the same name. */
  readonly database: string;
  private readonly db: MeshkvDb;
  private readonly releaseLock: ReleaseLock;

  private hardState: HardState;
  /** The snapshot point and the terms of the entries after it: enough to plan every batch. */
  private readonly log: LogShape;
  /** A relaxed commit happened since the last strict one: close() must flush it. */
  private unsynced = false;

  /** What open() read, handed out by the first load() so boot reads the database once. */
  private bootState: PersistedState | null;
  private busy = false;
  private closed = false;
  /** A write failed or the connection was lost: memory may disagree with the database. */
  private failure: Error | null = null;

  private constructor(database: string, db: MeshkvDb, releaseLock: ReleaseLock, state: PersistedState) {
    this.database = database;
    this.db = db;
    this.releaseLock = releaseLock;
    this.hardState = state.hardState;
    this.log = new LogShape(state.snapshot && { index: state.snapshot.metadata.index, term: state.snapshot.metadata.term }, state.entries.map((e) => e.term));
    this.bootState = state;
  }

  /** The database name `member`'s storage uses. */
  static databaseName(member: IndexedDbMember): string {
    return databaseNameOf(member.cluster, member.memberId);
  }

  /**
   * Locks the member's database (refusing at once with StorageError 'locked' if another tab or
   * worker of this origin has it open), creates or upgrades it, and reads it back, checking
   * every record (StorageError 'corrupt').
   */
  static async open(member: IndexedDbMember): Promise<IndexedDbStorage> {
    const database = IndexedDbStorage.databaseName(member);
    let storage: IndexedDbStorage | null = null;
    const releaseLock = await lockDatabase(database, () => storage?.lose('another context took its Web Lock away (steal)'));
    let db: MeshkvDb | null = null;
    try {
      db = await openDatabase(database, {
        // Another context is deleting or upgrading the database: let it, and stop writing.
        blocking: () => storage?.lose('another context asked to delete or upgrade the database'),
        terminated: () => storage?.lose('the browser closed the connection (storage cleared or disk error)'),
      });
      storage = new IndexedDbStorage(database, db, releaseLock, await readState(db, database));
      return storage;
    } catch (err) {
      db?.close();
      await releaseLock();
      throw err;
    }
  }

  /** Deletes the member's database, refusing with StorageError 'locked' while it is open anywhere. */
  static async destroy(member: IndexedDbMember): Promise<void> {
    const database = IndexedDbStorage.databaseName(member);
    const releaseLock = await lockDatabase(database, () => {});
    try {
      await deleteDB(database);
    } finally {
      await releaseLock();
    }
  }

  async load(): Promise<PersistedState> {
    return this.exclusive(async () => {
      const boot = this.bootState;
      this.bootState = null;
      return boot ?? readState(this.db, this.database);
    });
  }

  async save(batch: PersistBatch, sync: boolean): Promise<void> {
    return this.exclusive(async () => {
      const plan = planBatch(this.log, batch);
      if (batch.snapshot === null && batch.entries.length === 0 && batch.hardState === null) {
        if (sync && this.unsynced) await this.guard(() => this.flush());
        return;
      }
      this.bootState = null;
      const strict = sync || batch.snapshot !== null;
      await this.guard(() =>
        this.write(strict ? 'strict' : 'relaxed', (entries, meta) => {
          if (batch.snapshot !== null) {
            if (plan.snapshotReset) entries.clear();
            else entries.delete(IDBKeyRange.upperBound(batch.snapshot.metadata.index));
            meta.put(ownSnapshot(batch.snapshot), snapshotKey);
          }
          if (batch.entries.length > 0) {
            const lastIndex = plan.snapshotReset ? batch.snapshot!.metadata.index : this.log.lastIndex;
            if (plan.appendFromIndex <= lastIndex) entries.delete(IDBKeyRange.lowerBound(plan.appendFromIndex));
            for (const e of batch.entries) entries.put(ownEntry(e));
          }
          if (batch.hardState !== null) meta.put({ ...batch.hardState }, hardStateKey);
        }),
      );
      if (batch.snapshot !== null) this.log.snapshotStored(batch.snapshot.metadata, plan.snapshotReset);
      if (batch.entries.length > 0) {
        this.log.appended(plan.appendFromIndex, batch.entries);
      }
      if (batch.hardState !== null) this.hardState = { ...batch.hardState };
      // A strict commit flushes every relaxed one before it.
      this.unsynced = !strict;
    });
  }

  async saveSnapshot(snapshot: Snapshot): Promise<void> {
    return this.exclusive(async () => {
      checkOwnSnapshot(this.log, snapshot);
      this.bootState = null;
      await this.guard(() =>
        this.write('strict', (entries, meta) => {
          entries.delete(IDBKeyRange.upperBound(snapshot.metadata.index));
          meta.put(ownSnapshot(snapshot), snapshotKey);
        }),
      );
      this.log.snapshotStored(snapshot.metadata, false);
      this.unsynced = false;
    });
  }

  /** Flushes unsynced saves, then closes the connection and releases the Web Lock. */
  async close(): Promise<void> {
    if (this.closed) return;
    if (this.busy) throw new StorageError('concurrent-call', `IndexedDB ${this.database}: close() while another operation runs`);
    this.closed = true;
    try {
      if (this.unsynced && this.failure === null) await this.flush();
    } finally {
      this.db.close();
      await this.releaseLock();
    }
  }


  /**
   * A strict commit rewriting the hard state: the browser flushes commits in order, so every
   * relaxed commit before it becomes durable too.
   */
  private async flush(): Promise<void> {
    await this.write('strict', (_entries, meta) => meta.put({ ...this.hardState }, hardStateKey));
    this.unsynced = false;
  }

  /**
   * One readwrite transaction: `fill` issues its requests (raw ones, not a promise each: any
   * failed request aborts the whole transaction, which tx.done reports). A synchronous throw
   * while filling aborts it too, so a half-issued batch never commits.
   */
  private async write(durability: 'strict' | 'relaxed', fill: (entries: IDBObjectStore, meta: IDBObjectStore) => void): Promise<void> {
    const tx = this.db.transaction([entriesStore, metaStore], 'readwrite', { durability });
    const raw = unwrap(tx);
    try {
      fill(raw.objectStore(entriesStore), raw.objectStore(metaStore));
    } catch (err) {
      tx.done.catch(() => {});
      raw.abort();
      throw err;
    }
    await tx.done;
  }

  /** The connection can no longer be trusted: refuse every further call. */
  private lose(why: string): void {
    this.failure ??= new Error(why);
    this.db.close();
  }

  /** One operation at a time, as the Storage contract says; a second concurrent call is a bug. */
  private async exclusive<T>(op: () => Promise<T>): Promise<T> {
    if (this.closed) throw new StorageError('closed', `IndexedDB ${this.database} used after close()`);
    if (this.failure !== null) {
      throw new StorageError('closed', `IndexedDB ${this.database} failed earlier (${this.failure.message}); close it and open it again`);
    }
    if (this.busy) throw new StorageError('concurrent-call', `IndexedDB ${this.database}: concurrent calls; the member must await each one`);
    this.busy = true;
    try {
      return await op();
    } finally {
      this.busy = false;
    }
  }

  private async guard(op: () => Promise<void>): Promise<void> {
    try {
      await op();
    } catch (err) {
      this.failure = err instanceof Error ? err : new Error(String(err));
      // A failed transaction is aborted as a whole: the database still holds the previous state.
      throw new Error(`IndexedDB ${this.database}: write failed (${describeError(err)}); nothing of this batch was stored`, { cause: err });
    }
  }
}

async function lockDatabase(database: string, onLost: () => void): Promise<ReleaseLock> {
  if (typeof navigator === 'undefined' || navigator.locks === undefined) {
    throw new StorageError('unavailable', `IndexedDB ${database}: Web Locks are unavailable (they need a secure context: https or localhost)`);
  }
  const release = await tryAcquireWebLock(navigator.locks, database, onLost);
  if (release === null) {
    throw new StorageError('locked', `IndexedDB database ${database} is open in another tab or worker of this origin (Web Lock "${database}" is held): close it there first`);
  }
  return release;
}

async function openDatabase(database: string, callbacks: { blocking: () => void; terminated: () => void }): Promise<MeshkvDb> {
  if (typeof indexedDB === 'undefined') throw new StorageError('unavailable', `IndexedDB ${database}: this runtime has no IndexedDB`);
  try {
    return await openDB(database, schemaVersion, { upgrade: (db, oldVersion, _newVersion, tx) => upgrade(db, oldVersion, tx), ...callbacks });
  } catch (err) {
    if ((err as DOMException).name === 'VersionError') {
      throw new StorageError('unsupported-version', `IndexedDB database ${database} has a schema newer than version ${schemaVersion}, written by a newer meshkv: upgrade meshkv to open it`);
    }
    throw err;
  }
}

async function readState(db: MeshkvDb, database: string): Promise<PersistedState> {
  const tx = db.transaction([entriesStore, metaStore], 'readonly');
  const meta = tx.objectStore(metaStore);
  const [metaKeys, metaValues, entries] = await Promise.all([meta.getAllKeys(), meta.getAll(), tx.objectStore(entriesStore).getAll(), tx.done]);
  return decodeState(database, { metaKeys, metaValues, entries });
}

/**
 * A record owning exactly its bytes. IndexedDB copies on put, but a view into a larger buffer
 * (a decoded network frame) would store that whole buffer.
 */
function ownBytes(data: Uint8Array): Uint8Array {
  return data.byteOffset === 0 && data.byteLength === data.buffer.byteLength ? data : data.slice();
}

function ownEntry(e: Entry): Entry {
  return { index: e.index, term: e.term, type: e.type, data: ownBytes(e.data) };
}

/** Exactly the fields load() accepts, whatever else the caller's objects carry. */
function ownSnapshot(s: Snapshot): Snapshot {
  const { index, term, confState: c } = s.metadata;
  const confState = { voters: c.voters, learners: c.learners, votersOutgoing: c.votersOutgoing, learnersNext: c.learnersNext, autoLeave: c.autoLeave };
  return { metadata: { index, term, confState }, data: ownBytes(s.data) };
}

function describeError(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}
