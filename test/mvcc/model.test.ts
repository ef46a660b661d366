import { describe, it } from 'vitest';
import { runSeed } from './model-run.ts';

describe('model-based: MvccStateMachine against a naive reference', () => {
  // MVCC_MODEL_SEEDS=n adds seeds 1000..1000+n-1 for a longer soak; a failing seed is replayable.
  const extra = Number(process.env.MVCC_MODEL_SEEDS ?? 0);
  const seeds = [1, 2, 3, 42, 2026, 31337, ...Array.from({ length: extra }, (_, i) => 1000 + i)];
  for (const seed of seeds) {
    it(`seed ${seed}: 3000 random requests give identical responses; the watcher sees every write once`, async () => {
      await runSeed(seed, 3000);
    });
  }
});
