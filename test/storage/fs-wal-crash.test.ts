// Crash consistency of fs-wal on a simulated disk that keeps only what was synced: after a
// crash at any point, the WAL must load either the state after the last synced operation or
// the state after one of the unsynced operations that followed it — never anything else.
// saveSnapshot counts as unsynced (its marker frame rides on the next fdatasync), and the
// deletions a snapshot allows run in the background, so crashes also land in the middle of them.

import { describe, expect, it } from 'vitest';
import { FsWalStorage } from '../../adapters/storage/fs-wal/index.ts';
import type { FsWalOptions } from '../../adapters/storage/fs-wal/index.ts';
import { silentLogger } from '../../src/raft/config.ts';
import type { Entry } from '../../src/raft/types.ts';
import { EntryType } from '../../src/raft/types.ts';
import { StorageModel, batch, hs, nextRandomOp, plainState, prng, snapshot } from './compliance.ts';
import { SimFs } from './sim-fs.ts';

const dir = '/data';

describe('fs-wal crash consistency (simulated disk)', () => {
  for (const seed of [11, 12, 13, 14, 15, 16, 17, 18]) {
    it(`recovers a synced-or-later state after every crash (seed ${seed})`, async () => {
      const random = prng(seed);
      const fs = new SimFs();
      let pid = 1000;
      // Each unlink and directory fsync waits a few microtask turns, so the background purge is
      // still running at some of the crashes.
      fs.beforeDirOp = async () => {
        for (let n = Math.floor(random() * 12); n > 0; n--) await null;
      };
      const options = (): FsWalOptions => ({
        fs: fs.process(),
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
        else {
          // Half of them prepared first (SnapshotPreparation), as the member does.
          if (random() < 0.5) await storage.prepareSnapshot(op.snapshot);
          await storage.saveSnapshot(op.snapshot);
        }
        const synced = op.kind === 'save' && (op.sync || op.batch.snapshot !== null);
        if (synced) candidates = [model.clone()];
        else candidates.push(model.clone());
      }
      expect(crashes).toBeGreaterThan(5);
    });
  }
});

/** An entry with 100 bytes of data, so that 4 KiB segments fill after a few dozen. */
function padded(index: number): Entry {
  return { index, term: 1, type: EntryType.Normal, data: new Uint8Array(100).fill(index & 0xff) };
}

describe('fs-wal: the marker and the purge off the Ready loop, crashed at every step (simulated disk)', () => {
  let pid = 2000;
  const options = (fs: SimFs): FsWalOptions => ({ fs: fs.process(), logger: silentLogger, segmentBytes: 4096, pid: ++pid, isProcessAlive: (p) => p === pid });
  const segments = (fs: SimFs) => fs.readdir(dir).then((names) => names.filter((n) => n.endsWith('.wal')).sort());

  /** 120 entries in batches of 4 over several segments, then a snapshot at 100: the model after each. */
  async function filled(fs: SimFs): Promise<{ storage: FsWalStorage; before: StorageModel; after: StorageModel }> {
    const storage = await FsWalStorage.open(dir, options(fs));
    await storage.load();
    const model = new StorageModel();
    for (let i = 1; i <= 120; i += 4) {
      const b = batch({ entries: [padded(i), padded(i + 1), padded(i + 2), padded(i + 3)], hardState: hs(1, 1, i + 3) });
      await storage.save(b, true);
      model.save(b);
    }
    const before = model.clone();
    const snap = snapshot(100, 1);
    await storage.prepareSnapshot(snap);
    await storage.saveSnapshot(snap);
    model.saveSnapshot(snap);
    return { storage, before, after: model };
  }

  async function reload(fs: SimFs): Promise<unknown> {
    const storage = await FsWalStorage.open(dir, options(fs));
    const state = plainState(await storage.load());
    await storage.close();
    return state;
  }

  it('saveSnapshot syncs nothing and deletes nothing; a crash before the next fdatasync loads the state before it', async () => {
    const fs = new SimFs();
    await fs.mkdirp(dir);
    let dirOps = 0;
    fs.beforeDirOp = async () => void dirOps++;
    const { storage, before } = await filled(fs);
    const segmentsBefore = await segments(fs);
    expect(segmentsBefore.length).toBeGreaterThan(3);
    const syncs = fs.syncs;
    const ops = dirOps;
    // An unsynced hard state after it does not make the marker durable either.
    await storage.save(batch({ hardState: hs(1, 1, 120) }), false);
    expect(fs.syncs - syncs).toBe(0);
    expect(dirOps - ops).toBe(0);
    expect(await segments(fs)).toEqual(segmentsBefore);
    fs.crash(() => 0);
    expect(await reload(fs)).toEqual(plainState(before.state()));
  });

  it('the Ready loop goes on while the purge is held; a crash at every step of the purge loads the state after the snapshot', async () => {
    const next = batch({ entries: [padded(121)], hardState: hs(1, 1, 121) });
    const steps: number[] = [];
    for (let allowed = 0; ; allowed++) {
      const fs = new SimFs();
      await fs.mkdirp(dir);
      const { storage, after } = await filled(fs);
      after.save(next);
      const segmentsBefore = await segments(fs);
      let passed = 0;
      let held = false;
      let afterUnlink = false;
      // The purge's steps: unlinks of segments and snapshot files, and the directory fsync after
      // each segment's. A rollover's fsync and the unlink of a temporary file pass.
      fs.beforeDirOp = (op, path) => {
        const step = op === 'unlink' ? /\.(wal|snap)$/.test(path) : afterUnlink;
        afterUnlink = op === 'unlink' && path.endsWith('.wal');
        if (!step) return Promise.resolve();
        if (passed < allowed) {
          passed++;
          return Promise.resolve();
        }
        held = true;
        return new Promise<void>(() => {});
      };
      // The synced save makes the marker durable and starts the purge; neither it nor the saves
      // after it wait for the held deletion.
      await storage.save(next, true);
      await storage.save(batch({ hardState: hs(1, 1, 121) }), true);
      for (let turn = 0; turn < 20; turn++) await new Promise((r) => setImmediate(r));
      const segmentsHeld = await segments(fs);
      fs.crash(() => 0);
      const loaded = await reload(fs);
      expect(loaded, `crash after ${allowed} directory operations of the purge`).toEqual(plainState(after.state()));
      steps.push(segmentsBefore.length - segmentsHeld.length);
      if (!held) {
        // The purge ran to its end: the covered segments are gone, the rest consecutive.
        expect(segmentsHeld.length).toBeLessThan(segmentsBefore.length);
        expect(segmentsHeld).toEqual(segmentsBefore.slice(segmentsBefore.length - segmentsHeld.length));
        break;
      }
      expect(allowed).toBeLessThan(50);
    }
    // Crashes landed with none, some and all of the covered segments deleted.
    expect(steps[0]).toBe(0);
    expect(new Set(steps).size).toBeGreaterThan(2);
  });
});
