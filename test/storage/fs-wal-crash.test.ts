// Crash consistency of fs-wal on a simulated disk that keeps only what was synced: after a
// crash at any point, the WAL must load either the state after the last synced operation or
// the state after one of the unsynced operations that followed it — never anything else.
// saveSnapshot counts as unsynced (its marker frame rides on the next fdatasync), and the
// deletions a snapshot allows run in the background, so crashes also land in the middle of them.

import { describe, expect, it } from 'vitest';
import { FsWalStorage } from '../../adapters/storage/fs-wal/index.ts';
import type { FsWalOptions, WalFs } from '../../adapters/storage/fs-wal/index.ts';
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
        // The marker timer (rule 7) fires at the turns given below, between and during calls.
        markerSyncDelayMs: 0,
      });
      let model = new StorageModel();
      /** States a crash may legitimately leave: the last synced one, then each unsynced one after it. */
      let candidates = [model.clone()];
      let storage = await FsWalStorage.open(dir, options());
      await storage.load();
      let crashes = 0;
      for (let step = 0; step < 400; step++) {
        if (random() < 0.1) await new Promise((r) => setTimeout(r, 1));
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
  async function filled(fs: SimFs, extra: FsWalOptions = {}): Promise<{ storage: FsWalStorage; before: StorageModel; after: StorageModel }> {
    const storage = await FsWalStorage.open(dir, { ...options(fs), ...extra });
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

  it("an idle storage syncs saveSnapshot's marker on its own timer: the covered segments go without a write, and a crash after keeps the snapshot", async () => {
    const fs = new SimFs();
    await fs.mkdirp(dir);
    const { storage, after } = await filled(fs, { markerSyncDelayMs: 20 });
    const segmentsBefore = await segments(fs);
    const syncs = fs.syncs;
    // Nothing at once (rule 2)...
    await new Promise((r) => setTimeout(r, 5));
    expect(fs.syncs).toBe(syncs);
    expect(await segments(fs)).toEqual(segmentsBefore);
    // ...and no call after it: the storage's timer syncs the marker and the purge runs.
    for (let waited = 0; waited < 5000 && (await segments(fs)).length >= segmentsBefore.length; waited += 10) await new Promise((r) => setTimeout(r, 10));
    expect(fs.syncs).toBeGreaterThan(syncs);
    const segmentsAfter = await segments(fs);
    expect(segmentsAfter.length).toBeLessThan(segmentsBefore.length - 2);
    fs.crash(() => 0);
    expect(await reload(fs)).toEqual(plainState(after.state()));
    expect(await segments(fs)).toEqual(segmentsAfter);
    await expect(storage.save(batch({ hardState: hs(1, 1, 120) }), true)).rejects.toThrow();
  });

  it("a save() that comes while the timer's sync of a marker is under way waits for it, and both land", async () => {
    const fs = new SimFs();
    await fs.mkdirp(dir);
    const inner = fs.process();
    let hold: Promise<void> | null = null;
    let held = () => {};
    const gated: WalFs = {
      ...inner,
      async open(path, mode) {
        const file = await inner.open(path, mode);
        return {
          ...file,
          path,
          write: (data, position) => file.write(data, position),
          datasync: async () => {
            const h = hold;
            hold = null;
            if (h !== null) {
              held();
              await h;
            }
            return file.datasync();
          },
        };
      },
    };
    const storage = await FsWalStorage.open(dir, { fs: gated, logger: silentLogger, segmentBytes: 4096, pid: ++pid, isProcessAlive: (p) => p === pid, markerSyncDelayMs: 10 });
    await storage.load();
    const model = new StorageModel();
    for (let i = 1; i <= 120; i += 4) {
      const b = batch({ entries: [padded(i), padded(i + 1), padded(i + 2), padded(i + 3)], hardState: hs(1, 1, i + 3) });
      await storage.save(b, true);
      model.save(b);
    }
    const snap = snapshot(100, 1);
    let release = () => {};
    hold = new Promise<void>((r) => (release = r));
    const reached = new Promise<void>((r) => (held = r));
    await storage.saveSnapshot(snap);
    model.saveSnapshot(snap);
    // The timer's fdatasync starts and is held there.
    await reached;
    const next = batch({ entries: [padded(121)], hardState: hs(1, 1, 121) });
    let saved = false;
    const saving = storage.save(next, true).then(() => void (saved = true));
    model.save(next);
    for (let turn = 0; turn < 5; turn++) await new Promise((r) => setImmediate(r));
    expect(saved).toBe(false);
    release();
    await saving;
    fs.crash(() => 0);
    expect(await reload(fs)).toEqual(plainState(model.state()));
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

describe('fs-wal: the next segment prepared ahead of its rollover (simulated disk)', () => {
  let pid = 3000;
  const settle = async () => {
    for (let turn = 0; turn < 5; turn++) await new Promise((r) => setImmediate(r));
  };

  it('a rollover on the Ready loop renames nothing and fsyncs no directory: it opens a segment already durable under its name', async () => {
    const sim = new SimFs();
    const inner = sim.process();
    const ops: string[] = [];
    const name = (path: string) => path.slice(path.lastIndexOf('/') + 1);
    // The background preparation is held at its first step while a save runs, and let go between
    // saves: what a save's ops show is what the Ready loop waited for.
    let gate: Promise<void> = Promise.resolve();
    const fs: WalFs = {
      ...inner,
      async open(path, mode) {
        if (path.endsWith('.tmp')) await gate;
        ops.push(`open ${name(path)}`);
        const file = await inner.open(path, mode);
        return {
          path,
          write: (data, position) => file.write(data, position),
          datasync: () => (ops.push(`datasync ${name(path)}`), file.datasync()),
          sync: () => (ops.push(`sync ${name(path)}`), file.sync()),
          close: () => file.close(),
        };
      },
      rename: (from, to) => (ops.push(`rename ${name(from)} ${name(to)}`), inner.rename(from, to)),
      syncDir: (d) => (ops.push('syncDir'), inner.syncDir(d)),
    };
    const storage = await FsWalStorage.open(dir, { fs, logger: silentLogger, segmentBytes: 4096, pid: ++pid, isProcessAlive: (p) => p === pid });
    await storage.load();
    const rollovers: string[][] = [];
    for (let i = 1; i <= 160; i += 4) {
      let release = () => {};
      gate = new Promise<void>((r) => (release = r));
      const before = ops.length;
      await storage.save(batch({ entries: [padded(i), padded(i + 1), padded(i + 2), padded(i + 3)], hardState: hs(1, 1, i + 3) }), true);
      const during = ops.slice(before);
      if (during.some((op) => op.startsWith('open ') && op.endsWith('.wal'))) rollovers.push(during);
      release();
      await settle();
    }
    await storage.close();
    expect(rollovers.length).toBeGreaterThan(3);
    for (const [n, during] of rollovers.entries()) {
      const seg = during.find((op) => op.startsWith('open '))!.slice('open '.length);
      // The frames before it were synced by their own saves: the old segment needs no fdatasync.
      expect(during, `rollover ${n}`).toEqual([`open ${seg}`, `datasync ${seg}`]);
    }
  });

  it('after a crash at every filesystem operation of a run across rollovers, loads a synced-or-later state', async () => {
    /** Runs the same saves against `fs` (which may crash under it); the candidates a crash may leave, as of now. */
    async function run(fs: WalFs, random: () => number, candidates: { list: StorageModel[] }): Promise<void> {
      const storage = await FsWalStorage.open(dir, { fs, logger: silentLogger, segmentBytes: 4096, pid: ++pid, isProcessAlive: () => false });
      await storage.load();
      const model = new StorageModel();
      candidates.list = [model.clone()];
      for (let i = 1; i <= 150; i += 3) {
        // Over 512 bytes a batch, so a crash can land part of a segment's first write (its header and frame).
        const wide = (index: number) => ({ ...padded(index), data: new Uint8Array(200).fill(index & 0xff) });
        const b = batch({ entries: [wide(i), wide(i + 1), wide(i + 2)], hardState: hs(1, 1, i + 2) });
        const sync = i % 4 !== 3;
        model.save(b);
        candidates.list.push(model.clone());
        await storage.save(b, sync);
        if (sync) candidates.list = [model.clone()];
        if (i === 91) {
          const snap = snapshot(60, 1);
          model.saveSnapshot(snap);
          candidates.list.push(model.clone());
          await storage.saveSnapshot(snap);
        }
        // The background preparation (and purge) get a few turns, sometimes none.
        for (let n = Math.floor(random() * 30); n > 0; n--) await null;
      }
      await storage.close();
      candidates.list = [model.clone()];
    }

    // A run without a crash counts the operations, background ones included.
    let total = 0;
    const counting = (inner: WalFs, onOp: () => void): WalFs => ({
      ...inner,
      open: async (path, mode) => {
        onOp();
        const file = await inner.open(path, mode);
        const op =
          <A extends unknown[]>(call: (...args: A) => Promise<void>) =>
          (...args: A) => (onOp(), call(...args));
        return { path, write: op(file.write), datasync: op(file.datasync), sync: op(file.sync), close: op(file.close) };
      },
      readFile: (p) => (onOp(), inner.readFile(p)),
      readdir: (p) => (onOp(), inner.readdir(p)),
      rename: (a, b) => (onOp(), inner.rename(a, b)),
      unlink: (p) => (onOp(), inner.unlink(p)),
      syncDir: (d) => (onOp(), inner.syncDir(d)),
    });
    {
      const sim = new SimFs();
      await run(counting(sim.process(), () => void total++), prng(1), { list: [] });
    }
    expect(total).toBeGreaterThan(120);

    let tornBeforePrepared = 0;
    let preparedAtLoad = 0;
    let tornFirstFrame = 0;
    for (let crashAt = 0; crashAt < total; crashAt++) {
      const sim = new SimFs();
      const random = prng(1);
      const candidates = { list: [new StorageModel()] };
      let n = 0;
      let crashed = false;
      const fs = counting(sim.process(), () => {
        if (n++ === crashAt && !crashed) {
          crashed = true;
          sim.crash(prng(crashAt));
        }
      });
      await run(fs, random, candidates).catch(() => undefined);
      if (!crashed) sim.crash(prng(crashAt));
      const names = (await sim.readdir(dir)).filter((f) => f.endsWith('.wal')).sort();
      const last = names.length > 1 ? await sim.readFile(`${dir}/${names.at(-1)}`) : null;
      const prepared = last !== null && last.every((b) => b === 0);
      const warnings: string[] = [];
      const storage = await FsWalStorage.open(dir, {
        fs: sim.process(),
        logger: { ...silentLogger, warn: (m: string) => void warnings.push(m) },
        segmentBytes: 4096,
        pid: ++pid,
        isProcessAlive: () => false,
      });
      const loaded = plainState(await storage.load());
      await storage.close();
      const match = candidates.list.some((c) => JSON.stringify(plainState(c.state())) === JSON.stringify(loaded));
      if (!match) expect(loaded, `crash at operation ${crashAt} of ${total}`).toEqual(plainState(candidates.list[0].state()));
      if (prepared) preparedAtLoad++;
      const torn = warnings.find((w) => w.includes('dropping a torn final write'));
      if (torn !== undefined && prepared && torn.includes(names.at(-2)!)) tornBeforePrepared++;
      if (torn !== undefined && torn.includes('at byte 0 ')) tornFirstFrame++;
    }
    // The new crash cases all came up: a prepared segment at load, a torn write in the segment
    // before it, and a torn first frame in a fresh segment.
    expect({ preparedAtLoad: preparedAtLoad > 10, tornBeforePrepared: tornBeforePrepared > 0, tornFirstFrame: tornFirstFrame > 0 }).toEqual({
      preparedAtLoad: true,
      tornBeforePrepared: true,
      tornFirstFrame: true,
    });
  });
});
