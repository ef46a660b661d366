import { openDB } from 'idb';
import { afterEach, describe, expect, it } from 'vitest';
import { StorageError } from '../../adapters/storage/errors.ts';
import type { IndexedDbMember } from '../../adapters/storage/indexeddb/index.ts';
import { IndexedDbStorage, schemaVersion } from '../../adapters/storage/indexeddb/index.ts';
import { batch, entries, entry, hs, snapshot, storageCompliance } from './compliance.ts';
import type { CrashWorkerReport, CrashWorkerRequest } from './indexeddb-crash.worker.ts';

/** A member of a cluster no other test uses, so every test starts from an empty database. */
function freshMember(): IndexedDbMember {
  return { cluster: `test-${crypto.randomUUID()}`, memberId: 1 };
}

storageCompliance('indexeddb', async () => {
  const member = freshMember();
  return {
    open: () => IndexedDbStorage.open(member),
    cleanup: () => IndexedDbStorage.destroy(member),
  };
});

describe('IndexedDbStorage', () => {
  const opened: IndexedDbStorage[] = [];
  const members: IndexedDbMember[] = [];

  async function open(member: IndexedDbMember): Promise<IndexedDbStorage> {
    if (!members.includes(member)) members.push(member);
    const s = await IndexedDbStorage.open(member);
    opened.push(s);
    return s;
  }

  afterEach(async () => {
    for (const s of opened.splice(0)) await s.close().catch(() => {});
    for (const m of members.splice(0)) await IndexedDbStorage.destroy(m);
  });

  /** Error of a promise that must reject. */
  async function failure(p: Promise<unknown>): Promise<StorageError> {
    const err = await p.then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(StorageError);
    return err as StorageError;
  }

  describe('database names', () => {
    it('derives one database per cluster and member, so other clusters never share it', async () => {
      const a = { cluster: `a-${crypto.randomUUID()}`, memberId: 1 };
      const b = { cluster: `${a.cluster}/member/1`, memberId: 1 };
      expect(IndexedDbStorage.databaseName(a)).not.toBe(IndexedDbStorage.databaseName(b));
      const [sa, sb] = [await open(a), await open(b)];
      await sa.save(batch({ entries: entries(1, 2, 1) }), true);
      await sb.save(batch({ entries: entries(1, 5, 7) }), true);
      expect((await sa.load()).entries).toEqual(entries(1, 2, 1));
      expect((await sb.load()).entries).toEqual(entries(1, 5, 7));
    });

    it('refuses a member id that is not a positive integer and an empty cluster', () => {
      expect(() => IndexedDbStorage.databaseName({ cluster: 'c', memberId: 0 })).toThrow(/member id 0 is not a positive safe integer/);
      expect(() => IndexedDbStorage.databaseName({ cluster: '', memberId: 1 })).toThrow(/cluster must be a non-empty string/);
    });
  });

  describe('Web Lock', () => {
    it('refuses a second open of the same member at once, and opens again after close', async () => {
      const member = freshMember();
      const first = await open(member);
      const err = await failure(IndexedDbStorage.open(member));
      expect(err.code).toBe('locked');
      expect(err.message).toContain(`IndexedDB database ${IndexedDbStorage.databaseName(member)} is open in another tab or worker of this origin`);
      await first.close();
      const again = await open(member);
      expect((await again.load()).entries).toEqual([]);
    });

    it('refuses to destroy a database that is open', async () => {
      const member = freshMember();
      const s = await open(member);
      await s.save(batch({ entries: entries(1, 1, 1) }), true);
      expect((await failure(IndexedDbStorage.destroy(member))).code).toBe('locked');
      expect((await s.load()).entries.length).toBe(1);
    });

    it('stops writing once another context steals its lock', async () => {
      const member = freshMember();
      const s = await open(member);
      await s.save(batch({ entries: entries(1, 1, 1) }), true);
      await navigator.locks.request(IndexedDbStorage.databaseName(member), { steal: true }, async () => {});
      const err = await failure(s.save(batch({ entries: entries(2, 2, 1) }), true));
      expect(err.code).toBe('closed');
      expect(err.message).toContain('another context took its Web Lock away (steal)');
    });

    it('refuses an open from a worker while this page holds the member', async () => {
      const member = freshMember();
      await open(member);
      const worker = startCrashWorker();
      try {
        const report = await worker.run({ member, syncedSaves: 1, entriesPerSave: 1, inflightEntries: 0 });
        expect(report).toEqual({ kind: 'failed', message: expect.stringContaining('is open in another tab or worker of this origin') });
      } finally {
        worker.terminate();
      }
    });
  });

  describe('recovery after the holding context dies', () => {
    it('keeps completed saves and frees the lock when a worker dies without close()', async () => {
      const member = freshMember();
      members.push(member);
      const worker = startCrashWorker();
      const report = await worker.run({ member, syncedSaves: 20, entriesPerSave: 5, inflightEntries: 0 });
      expect(report).toEqual({ kind: 'saved', lastIndex: 100 });
      // Still alive: it holds the lock.
      expect((await failure(IndexedDbStorage.open(member))).code).toBe('locked');
      worker.terminate();
      const s = await openWhenReleased(member);
      const loaded = await s.load();
      expect(loaded.hardState).toEqual(hs(1, 1, 95));
      expect(loaded.entries.map((e) => e.index)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
      expect(new TextDecoder().decode(loaded.entries[99].data)).toBe('worker-100');
      await s.save(batch({ entries: entries(101, 101, 1) }), true);
    });

    it('keeps a save cut off by the death either whole or not at all', async () => {
      const member = freshMember();
      members.push(member);
      const worker = startCrashWorker();
      const report = await worker.run({ member, syncedSaves: 2, entriesPerSave: 10, inflightEntries: 2000 });
      expect(report).toEqual({ kind: 'saved', lastIndex: 20 });
      worker.terminate();
      const loaded = await (await openWhenReleased(member)).load();
      expect([20, 2020]).toContain(loaded.entries.length);
      expect(loaded.hardState).toEqual(loaded.entries.length === 20 ? hs(1, 1, 10) : hs(2, 1, 20));
    });

    /** The lock of a terminated worker is released asynchronously, within a few milliseconds. */
    async function openWhenReleased(member: IndexedDbMember): Promise<IndexedDbStorage> {
      for (let attempt = 0; ; attempt++) {
        try {
          return await open(member);
        } catch (err) {
          if (!(err instanceof StorageError && err.code === 'locked') || attempt >= 100) throw err;
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      }
    }
  });

  describe('corrupt records', () => {
    /** Stores three entries and a hard state, closes, then lets `edit` tamper with the raw database. */
    async function tampered(edit: (db: Awaited<ReturnType<typeof openDB>>) => Promise<unknown>): Promise<{ member: IndexedDbMember; name: string }> {
      const member = freshMember();
      const s = await open(member);
      await s.save(batch({ hardState: hs(1, 1, 3), entries: entries(1, 3, 1) }), true);
      await s.close();
      const name = IndexedDbStorage.databaseName(member);
      const db = await openDB(name);
      try {
        await edit(db);
      } finally {
        db.close();
      }
      return { member, name };
    }

    async function expectCorrupt(member: IndexedDbMember, message: string): Promise<void> {
      const err = await failure(IndexedDbStorage.open(member));
      expect(err.code).toBe('corrupt');
      expect(err.message).toBe(message);
      // The failed open released its lock: the next attempt reports the same problem.
      expect((await failure(IndexedDbStorage.open(member))).code).toBe('corrupt');
    }

    it('names the database, store and key of an entry with a wrong field', async () => {
      const { member, name } = await tampered((db) => db.put('entries', { index: 2, term: 'one', type: 0, data: new Uint8Array(1) }));
      await expectCorrupt(member, `IndexedDB database "${name}", store "entries", key 2: field term is string "one", not a non-negative safe integer`);
    });

    it('refuses entry data that is not a Uint8Array, and an unexpected field', async () => {
      let { member, name } = await tampered((db) => db.put('entries', { index: 3, term: 1, type: 0, data: [1, 2] }));
      await expectCorrupt(member, `IndexedDB database "${name}", store "entries", key 3: field data is an array, not a Uint8Array`);
      ({ member, name } = await tampered((db) => db.put('entries', { index: 3, term: 1, type: 0, data: new ArrayBuffer(2) })));
      await expectCorrupt(member, `IndexedDB database "${name}", store "entries", key 3: field data is an object of class ArrayBuffer, not a Uint8Array`);
      ({ member, name } = await tampered((db) => db.put('entries', { index: 1, term: 1, type: 0, data: new Uint8Array(0), extra: true })));
      await expectCorrupt(member, `IndexedDB database "${name}", store "entries", key 1: expected fields index, term, type, data; missing [], unexpected [extra]`);
    });

    it('reports a gap in the log instead of skipping it', async () => {
      const { member, name } = await tampered((db) => db.delete('entries', 2));
      await expectCorrupt(member, `IndexedDB database "${name}", store "entries", key 3: gap in the log: entries 2..2 are missing`);
    });

    it('reports entries left below the snapshot and a broken snapshot record', async () => {
      let { member, name } = await tampered((db) => db.put('meta', snapshot(2, 1), 'snapshot'));
      await expectCorrupt(member, `IndexedDB database "${name}", store "entries", key 1: entry is at or below the snapshot index 2; the log must start at 3`);
      ({ member, name } = await tampered((db) => db.put('meta', { metadata: { index: 2, term: 1 }, data: new Uint8Array(0) }, 'snapshot')));
      await expectCorrupt(member, `IndexedDB database "${name}", store "meta", key "snapshot", field metadata: expected fields index, term, confState; missing [confState], unexpected []`);
    });

    it('reports a broken hard state and an unknown meta record', async () => {
      let { member, name } = await tampered((db) => db.put('meta', 'term=1', 'hardState'));
      await expectCorrupt(member, `IndexedDB database "${name}", store "meta", key "hardState": expected an object with fields term, vote, commit, found string "term=1"`);
      ({ member, name } = await tampered((db) => db.put('meta', 1, 'leftover')));
      await expectCorrupt(member, `IndexedDB database "${name}", store "meta", key "leftover": unknown record`);
    });
  });

  describe('schema versions', () => {
    it('refuses a database written by a newer schema, loading nothing from it', async () => {
      const member = freshMember();
      members.push(member);
      const db = await openDB(IndexedDbStorage.databaseName(member), schemaVersion + 1, {
        upgrade: (d) => void d.createObjectStore('entries-v2'),
      });
      db.close();
      const err = await failure(IndexedDbStorage.open(member));
      expect(err.code).toBe('unsupported-version');
      expect(err.message).toContain(`has a schema newer than version ${schemaVersion}`);
    });
  });

  describe('transactions', () => {
    /** Records every transaction the page opens while `body` runs: its stores, mode and durability. */
    async function recordTransactions(body: () => Promise<void>): Promise<string[]> {
      const seen: string[] = [];
      const original = IDBDatabase.prototype.transaction;
      IDBDatabase.prototype.transaction = function (this: IDBDatabase, ...args: Parameters<IDBDatabase['transaction']>) {
        const tx = original.apply(this, args);
        seen.push(`${[...tx.objectStoreNames].join('+')} ${tx.mode} ${tx.durability}`);
        return tx;
      };
      try {
        await body();
      } finally {
        IDBDatabase.prototype.transaction = original;
      }
      return seen;
    }

    it('commits each save in one transaction: strict when synced or holding a snapshot, relaxed otherwise', async () => {
      const s = await open(freshMember());
      await s.load();
      const many = Array.from({ length: 256 }, (_, i) => entry(i + 1, 1));
      const seen = await recordTransactions(async () => {
        await s.save(batch({ entries: many, hardState: hs(1, 1, 0) }), true);
        await s.save(batch({ hardState: hs(1, 1, 256) }), false);
        await s.save(batch({ snapshot: snapshot(300, 2), hardState: hs(2, 0, 300) }), false);
        await s.saveSnapshot(snapshot(301, 2));
      });
      expect(seen).toEqual(['entries+meta readwrite strict', 'entries+meta readwrite relaxed', 'entries+meta readwrite strict', 'entries+meta readwrite strict']);
    });

    it('close() flushes relaxed commits with one strict one, and needs none when all were strict', async () => {
      const s = await open(freshMember());
      await s.save(batch({ entries: entries(1, 2, 1) }), false);
      expect(await recordTransactions(() => s.close())).toEqual(['entries+meta readwrite strict']);
      const t = await open(freshMember());
      await t.save(batch({ entries: entries(1, 2, 1) }), true);
      expect(await recordTransactions(() => t.close())).toEqual([]);
    });
  });

  describe('writes', () => {
    it('stores and reloads a batch of 10,000 entries in one save', async () => {
      const member = freshMember();
      let s = await open(member);
      const many = Array.from({ length: 10_000 }, (_, i) => entry(i + 1, 1, Uint8Array.from({ length: 64 }, (_, j) => (i + j) & 0xff)));
      await s.save(batch({ entries: many, hardState: hs(1, 1, 9_000) }), true);
      await s.close();
      s = await open(member);
      const loaded = await s.load();
      expect(loaded.entries.length).toBe(10_000);
      expect(loaded.entries[2_345]).toEqual(many[2_345]);
      expect(loaded.hardState).toEqual(hs(1, 1, 9_000));
      // A snapshot compacts the log down to what follows it.
      await s.saveSnapshot(snapshot(9_990, 1));
      await s.close();
      expect((await (await open(member)).load()).entries.map((e) => e.index)).toEqual(Array.from({ length: 10 }, (_, i) => 9_991 + i));
    });

    it('stores a view into a larger buffer as just its own bytes', async () => {
      const member = freshMember();
      const s = await open(member);
      const frame = new Uint8Array(64 * 1024).fill(7);
      await s.save(batch({ entries: [entry(1, 1, frame.subarray(100, 110))] }), true);
      await s.close();
      const db = await openDB(IndexedDbStorage.databaseName(member));
      const stored = (await db.get('entries', 1)) as { data: Uint8Array };
      db.close();
      expect(stored.data.buffer.byteLength).toBe(10);
    });

    it('keeps unsynced saves visible to load and across a clean close', async () => {
      const member = freshMember();
      const s = await open(member);
      await s.save(batch({ entries: entries(1, 3, 1), hardState: hs(1, 1, 0) }), false);
      await s.save(batch({ hardState: hs(1, 1, 3) }), false);
      expect((await s.load()).hardState).toEqual(hs(1, 1, 3));
      await s.close();
      const loaded = await (await open(member)).load();
      expect({ hardState: loaded.hardState, last: loaded.entries.at(-1)?.index }).toEqual({ hardState: hs(1, 1, 3), last: 3 });
    });

    it('stores nothing of a batch that fails midway, and refuses writes until reopened', async () => {
      const member = freshMember();
      let s = await open(member);
      await s.save(batch({ entries: entries(1, 3, 1), hardState: hs(1, 1, 1) }), true);
      // The third put of the next batch throws, as a value the browser cannot clone would.
      const original = IDBObjectStore.prototype.put;
      let puts = 0;
      IDBObjectStore.prototype.put = function (this: IDBObjectStore, ...args: Parameters<IDBObjectStore['put']>) {
        if (++puts === 3) throw new DOMException('injected', 'DataCloneError');
        return original.apply(this, args);
      };
      try {
        await expect(s.save(batch({ entries: [entry(2, 2), ...entries(3, 6, 2)], hardState: hs(2, 1, 1) }), true)).rejects.toThrow(
          `IndexedDB ${IndexedDbStorage.databaseName(member)}: write failed (DataCloneError: injected); nothing of this batch was stored`,
        );
      } finally {
        IDBObjectStore.prototype.put = original;
      }
      expect((await failure(s.save(batch({ entries: entries(4, 4, 1) }), true))).message).toMatch(/failed earlier .*close it and open it again/);
      await s.close();
      s = await open(member);
      expect(await s.load()).toEqual({ hardState: hs(1, 1, 1), snapshot: null, entries: entries(1, 3, 1) });
    });

    it('refuses concurrent calls and use after close', async () => {
      const s = await open(freshMember());
      const first = s.save(batch({ entries: entries(1, 1, 1) }), true);
      expect((await failure(s.save(batch({ entries: entries(2, 2, 1) }), true))).code).toBe('concurrent-call');
      await first;
      await s.close();
      expect((await failure(s.load())).message).toMatch(/used after close\(\)/);
    });

    it('stops writing when another context deletes its database, and lets the delete finish', async () => {
      const member = freshMember();
      const s = await open(member);
      await s.save(batch({ entries: entries(1, 1, 1) }), true);
      // Bypasses the lock on purpose, as devtools or "clear site data" would.
      await deleteWithoutLock(IndexedDbStorage.databaseName(member));
      const err = await failure(s.save(batch({ entries: entries(2, 2, 1) }), true));
      expect(err.code).toBe('closed');
      expect(err.message).toContain('another context asked to delete or upgrade the database');
    });
  });
});

function deleteWithoutLock(name: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const request = indexedDB.deleteDatabase(name);
    request.onsuccess = () => resolve();
    request.onerror = () => reject(request.error);
  });
}

function startCrashWorker() {
  const worker = new Worker(new URL('./indexeddb-crash.worker.ts', import.meta.url), { type: 'module' });
  return {
    run(request: CrashWorkerRequest): Promise<CrashWorkerReport> {
      return new Promise((resolve, reject) => {
        worker.onmessage = (event: MessageEvent<CrashWorkerReport>) => resolve(event.data);
        worker.onerror = (event) => reject(new Error(`crash worker failed: ${event.message}`));
        worker.postMessage(request);
      });
    },
    terminate: () => worker.terminate(),
  };
}
