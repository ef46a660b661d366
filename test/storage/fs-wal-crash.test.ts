// Crash consistency of fs-wal on a simulated disk that keeps only what was synced: after a
// crash at any point, the WAL must load either the state after the last synced operation or
// the state after one of the unsynced operations that followed it — never anything else.

import { describe, expect, it } from 'vitest';
import { FsWalStorage } from '../../adapters/storage/fs-wal/index.ts';
import type { FsWalOptions } from '../../adapters/storage/fs-wal/index.ts';
import { silentLogger } from '../../src/raft/config.ts';
import { StorageModel, nextRandomOp, plainState, prng } from './compliance.ts';
import { SimFs } from './sim-fs.ts';

const dir = '/data';

describe('fs-wal crash consistency (simulated disk)', () => {
  for (const seed of [11, 12, 13, 14, 15, 16, 17, 18]) {
    it(`recovers a synced-or-later state after every crash (seed ${seed})`, async () => {
      const random = prng(seed);
      const fs = new SimFs();
      let pid = 1000;
      const options = (): FsWalOptions => ({
        fs,
        logger: silentLogger,
        segmentBytes: 4096,
        pid: ++pid,
        isProcessAlive: (p) => p === pid,
      });
      let model = new StorageModel();
      /** States a crash may legitimately leave: the last synced one, then each unsynced one after it. */
      let candidates = [model.clone()];
      let storage = await FsWalStorage.open(dir, options());
      await storage.load();
      let crashes = 0;
      for (let step = 0; step < 400; step++) {
        if (random() < 0.06) {
          fs.crash(random);
          crashes++;
          storage = await FsWalStorage.open(dir, options());
          const loaded = plainState(await storage.load());
          const match = candidates.findIndex((c) => JSON.stringify(plainState(c.state())) === JSON.stringify(loaded));
          if (match < 0) expect(loaded, `seed ${seed} step ${step}: state after crash ${crashes}`).toEqual(plainState(candidates[0].state()));
          model = candidates[match].clone();
          candidates = [model.clone()];
          continue;
        }
        const op = nextRandomOp(model, random, `seed${seed}step${step}`);
        if (op.kind === 'restart') {
          await storage.close();
          storage = await FsWalStorage.open(dir, options());
          expect(plainState(await storage.load())).toEqual(plainState(model.state()));
          candidates = [model.clone()];
          continue;
        }
        if (op.kind === 'save') await storage.save(op.batch, op.sync);
        else await storage.saveSnapshot(op.snapshot);
        const synced = op.kind === 'saveSnapshot' || op.sync || op.batch.snapshot !== null;
        if (synced) candidates = [model.clone()];
        else candidates.push(model.clone());
      }
      expect(crashes).toBeGreaterThan(5);
    });
  }
});
