// The MVCC state machine on the LMDB backend: the same model-based run as test/mvcc/model.test.ts,
// with the event loop turned between steps so commits land while applies go on and reads come
// from the backend, the write buffer, or both.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LmdbBackend } from '../../adapters/backend/lmdb.ts';
import { MvccStateMachine } from '../../src/mvcc/index.ts';
import { KvStore } from '../../src/mvcc/kv-store.ts';
import { toBinaryString } from '../../src/mvcc/bytes.ts';
import { RequestGenerator } from '../mvcc/generator.ts';
import { runSeed } from '../mvcc/model-run.ts';
import { Prng } from '../mvcc/prng.ts';

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('MvccStateMachine on LmdbBackend', () => {
  for (const seed of [1, 42, 2026]) {
    it(`seed ${seed}: matches the model while commits land between applies`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'meshkv-store-lmdb-'));
      const backend = LmdbBackend.open(dir);
      let sm: MvccStateMachine | undefined;
      try {
        await runSeed(seed, 3000, {
          stateMachine: () => (sm = new MvccStateMachine({ backend })),
          // Seeded, so a failure replays: sometimes every step, sometimes bursts without a turn.
          pause: async (step) => {
            if ((step * 7919) % 5 < 3) await turn();
          },
        });
        await backend.durable();
        expect(backend.appliedIndex).toBe(sm!.appliedIndex);
        sm!.checkValid();
      } finally {
        await backend.close();
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});

describe('MvccStateMachine restarted from LmdbBackend', () => {
  for (const seed of [7, 99]) {
    it(`seed ${seed}: a reopened backend gives back the same keys, history, leases and answers`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'meshkv-store-restart-'));
      const rng = new Prng(seed);
      const twin = new MvccStateMachine();
      let backend = LmdbBackend.open(dir);
      let sm = new MvccStateMachine({ backend });
      const gen = new RequestGenerator(rng, () => ({ revision: twin.currentRevision, compacted: twin.compactRevision }));
      let restarts = 0;
      try {
        for (let step = 1; step <= 2500; step++) {
          const request = gen.request();
          const expected = twin.apply(request, { nowMs: 0, index: step });
          const actual = sm.apply(request, { nowMs: 0, index: step });
          expect(show(actual), `seed ${seed} step ${step}`).toBe(show(expected));
          if (step % 400 === 0) {
            // Restart: everything committed so far is durable, then a new state machine opens it.
            expect(await backend.durable()).toBe(step);
            await backend.close();
            backend = LmdbBackend.open(dir);
            expect(backend.appliedIndex).toBe(step);
            sm = new MvccStateMachine({ backend });
            restarts++;
            sm.checkValid();
            expect(sm.currentRevision).toBe(twin.currentRevision);
            expect(sm.compactRevision).toBe(twin.compactRevision);
            expect(sm.hash(), 'hash covers records, revisions and leases').toBe(twin.hash());
            expect(show(sm.range({ key: new Uint8Array([0]), rangeEnd: new Uint8Array([0]) }))).toBe(show(twin.range({ key: new Uint8Array([0]), rangeEnd: new Uint8Array([0]) })));
            expect(show(sm.leaseLeases())).toBe(show(twin.leaseLeases()));
          }
          if (step % 3 === 0) await turn();
        }
        expect(restarts).toBe(6);
      } finally {
        await backend.close();
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});

function show(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('hex') : typeof v === 'bigint' ? `${v}n` : v));
}

describe('KvStore over LmdbBackend: the write buffer', () => {
  it('lets every applied write go once the coalesced transaction holding it commits, and reads it from LMDB after', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'meshkv-store-buffer-'));
    // A long batch interval: all 300 entries go into one LMDB transaction, one commit promise.
    const backend = LmdbBackend.open(dir, { batchIntervalMs: 50 });
    try {
      const store = new KvStore(null, backend);
      const value = (i: number) => new TextEncoder().encode(`value ${i}`);
      for (let i = 1; i <= 300; i++) {
        const txn = store.write();
        txn.put(toBinaryString(new TextEncoder().encode(`k${i % 100}`)), value(i), 0n);
        txn.end();
        store.commit(i);
      }
      expect(store.history.buffer.revisions.size).toBe(300);
      expect(await backend.durable()).toBe(300);
      await turn();
      expect(store.history.buffer.revisions.size).toBe(0);
      // Now from LMDB: the latest of each key, and an older revision of one.
      expect(new TextDecoder().decode(store.valueBytes(store.live(toBinaryString(new TextEncoder().encode('k7')))!))).toBe('value 207');
      let older = '';
      store.history.forEach(8, 8, (record) => void (older = new TextDecoder().decode(record.value)));
      expect(older).toBe('value 7');
      // Batches after that transaction form a group of their own, which leaves the buffer too.
      const txn = store.write();
      txn.put(toBinaryString(new TextEncoder().encode('k1')), value(301), 0n);
      txn.end();
      store.commit(301);
      expect(store.history.buffer.revisions.size).toBe(1);
      expect(await backend.durable()).toBe(301);
      await turn();
      expect(store.history.buffer.revisions.size).toBe(0);
    } finally {
      await backend.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
