// The IndexedDB backend in real Chromium: the shared backend compliance suite, plus what only
// an asynchronous backend has (bounded chunks, failures that stop every later call).
import { deleteDB, openDB } from 'idb';
import { describe, expect, it } from 'vitest';
import { IndexedDbBackend } from '../../adapters/storage/indexeddb/backend.ts';
import { encodeU64, metaKeys } from '../../src/backend/layout.ts';
import { backendBuckets } from '../../src/seams.ts';
import { backendCompliance, batch, bytes, put, text } from './compliance.ts';

/** A member no other test uses, so every test starts from an empty database. */
const freshMember = () => ({ cluster: `test-${crypto.randomUUID()}`, memberId: 1 });

backendCompliance(
  'IndexedDbBackend',
  async () => {
    const member = freshMember();
    return {
      open: () => IndexedDbBackend.open(member),
      cleanup: () => IndexedDbBackend.destroy(member),
    };
  },
  // No read views: reads are plan/fetch/execute (see docs/architecture.md).
  { views: false, staging: true },
);

describe('IndexedDbBackend', () => {
  it('returns at most pairsMax pairs per chunk and refuses a chunk bound below 1', async () => {
    const member = freshMember();
    const backend = await IndexedDbBackend.open(member);
    try {
      await backend.commit(batch(1, Array.from({ length: 10 }, (_, i) => put('key', `k${i}`, `v${i}`))));
      const chunk = await backend.rangeChunk('key', bytes('k2'), null, 4);
      expect(chunk.map(([k, v]) => [text(k), text(v)])).toEqual([['k2', 'v2'], ['k3', 'v3'], ['k4', 'v4'], ['k5', 'v5']]);
      await expect(backend.rangeChunk('key', bytes(''), null, 0)).rejects.toThrow(/pairsMax 0 is not a positive integer/);
      expect((await backend.getMany('key', [bytes('k9'), bytes('nope'), bytes('k0')])).map(text)).toEqual(['v9', undefined, 'v0']);
    } finally {
      await backend.close();
      await IndexedDbBackend.destroy(member);
    }
  });

  it('after another context deletes the database, every commit and read fails with the reason', async () => {
    const member = freshMember();
    const backend = await IndexedDbBackend.open(member);
    await backend.commit(batch(1, [put('key', 'a', '1')]));
    // Blocked means the open connection was told (versionchange) and did not close at once.
    let blocked!: () => void;
    const told = new Promise<void>((resolve) => (blocked = resolve));
    const deleting = deleteDB(IndexedDbBackend.databaseName(member), { blocked: () => blocked() });
    await told;
    await expect(backend.commit(batch(2, [put('key', 'b', '2')]))).rejects.toThrow(/another context asked to delete or upgrade the database/);
    await expect(backend.getMany('key', [bytes('a')])).rejects.toThrow(/another context asked to delete/);
    await backend.close();
    await deleting;
  });
});

describe('IndexedDbBackend schema', () => {
  it('upgrades a version 1 database (no staging store) in place: its data stays and it stages', async () => {
    const member = freshMember();
    const name = IndexedDbBackend.databaseName(member);
    // What meshkv before the staging store created: one object store per bucket.
    const v1 = await openDB(name, 1, {
      upgrade(db) {
        for (const bucket of backendBuckets) db.createObjectStore(bucket);
      },
    });
    await v1.put('key', bytes('kept'), bytes('k') as Uint8Array<ArrayBuffer>);
    await v1.put('meta', encodeU64(4), metaKeys.consistentIndex);
    v1.close();
    const backend = await IndexedDbBackend.open(member);
    try {
      expect(backend.appliedIndex).toBe(4);
      expect((await backend.getMany('key', [bytes('k')])).map(text)).toEqual(['kept']);
      const staging = backend.stage();
      await staging.write([put('key', 'n', 'new')]);
      await staging.adopt(9);
      expect((await backend.getMany('key', [bytes('k'), bytes('n')])).map(text)).toEqual([undefined, 'new']);
    } finally {
      await backend.close();
      await IndexedDbBackend.destroy(member);
    }
  });
});
