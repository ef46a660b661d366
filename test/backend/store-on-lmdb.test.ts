// The MVCC state machine on the LMDB backend: the same model-based run as test/mvcc/model.test.ts,
// with the event loop turned between steps so commits land while applies go on and reads come
// from the backend, the write buffer, or both.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LmdbBackend } from '../../adapters/backend/lmdb.ts';
import { MvccStateMachine } from '../../src/mvcc/index.ts';
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
