// The MVCC state machine on the LMDB backend: the same model-based run as test/mvcc/model.test.ts,
// with the event loop turned between steps so commits land while applies go on and reads come
// from the backend, the write buffer, or both.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LmdbBackend } from '../../adapters/backend/lmdb.ts';
import { MvccStateMachine } from '../../src/mvcc/index.ts';
import { runSeed } from '../mvcc/model-run.ts';

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
