import { spawn } from 'node:child_process';
import * as fsp from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StorageError } from '../../adapters/storage/errors.ts';
import type { FsWalOptions, WalFs } from '../../adapters/storage/fs-wal/index.ts';
import { FsWalStorage, nodeWalFs, unsyncedBufferBytesMax } from '../../adapters/storage/fs-wal/index.ts';
import type { Logger } from '../../src/raft/config.ts';
import { silentLogger } from '../../src/raft/config.ts';
import type { Entry } from '../../src/raft/types.ts';
import { EntryType } from '../../src/raft/types.ts';
import { batch, entries, hs, prng, snapshot, storageCompliance } from './compliance.ts';

function harness(options: FsWalOptions) {
  return async () => {
    const dir = await fsp.mkdtemp(join(tmpdir(), 'meshkv-fswal-'));
    return {
      open: () => FsWalStorage.open(dir, { logger: silentLogger, ...options }),
      cleanup: () => fsp.rm(dir, { recursive: true, force: true }),
    };
  };
}

storageCompliance('fs-wal (1 MiB segments)', harness({ segmentBytes: 1024 * 1024 }), { preparesSnapshots: true });
storageCompliance('fs-wal (4 KiB segments: rollover and segment deletion everywhere)', harness({ segmentBytes: 4096 }), { preparesSnapshots: true });

/** Logs warnings into an array so tests can assert on them. */
function recordingLogger(): Logger & { warnings: string[] } {
  const warnings: string[] = [];
  return { ...silentLogger, warnings, warn: (msg: string) => void warnings.push(msg) };
}

/** Offsets of the frames in a segment: [start, end) each, walking the length fields. */
function frameOffsets(bytes: Uint8Array): Array<[number, number]> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Array<[number, number]> = [];
  let pos = 0;
  while (pos + 9 <= bytes.length && bytes[pos + 8] !== 0) {
    const end = pos + 9 + view.getUint32(pos, true);
    out.push([pos, end]);
    pos = end;
  }
  return out;
}

/** An entry at term 1 with 100 bytes of data, so that tiny segments fill quickly. */
function padded(index: number): Entry {
  return { index, term: 1, type: EntryType.Normal, data: new Uint8Array(100).fill(index & 0xff) };
}

async function segmentFiles(dir: string): Promise<string[]> {
  return (await fsp.readdir(dir)).filter((n) => n.endsWith('.wal')).sort();
}

async function runningChild(): Promise<{ pid: number; stop: () => Promise<void> }> {
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
  await new Promise((resolve) => child.once('spawn', resolve));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  return {
    pid: child.pid!,
    stop: async () => {
      child.kill();
      await exited;
    },
  };
}

async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  await new Promise((resolve) => child.once('exit', resolve));
  return child.pid!;
}

describe('fs-wal', () => {
  let dir: string;
  let open: (options?: FsWalOptions) => Promise<FsWalStorage>;
  const opened: FsWalStorage[] = [];

  beforeEach(async () => {
    dir = await fsp.mkdtemp(join(tmpdir(), 'meshkv-fswal-'));
    open = async (options = {}) => {
      const s = await FsWalStorage.open(dir, { logger: silentLogger, segmentBytes: 64 * 1024, ...options });
      opened.push(s);
      return s;
    };
  });

  afterEach(async () => {
    for (const s of opened.splice(0)) await s.close().catch(() => {});
    await fsp.rm(dir, { recursive: true, force: true });
  });

  /** Three synced batches: entries 1..3, 4..6, 7..9 at term 1. */
  async function threeBatches(): Promise<void> {
    const s = await open();
    for (let b = 0; b < 3; b++) await s.save(batch({ hardState: hs(1, 1, 3 * b), entries: entries(3 * b + 1, 3 * b + 3, 1) }), true);
    await s.close();
  }

  describe('recovery', () => {
    it('truncates a torn final write and keeps appending after it', async () => {
      await threeBatches();
      const path = join(dir, '0000000000000001.wal');
      const bytes = await fsp.readFile(path);
      const [, lastEnd] = frameOffsets(bytes).at(-1)!;
      // A half-written copy of the last frame: its length promises more than is there.
      const [lastStart] = frameOffsets(bytes).at(-1)!;
      const half = bytes.subarray(lastStart, lastStart + Math.floor((lastEnd - lastStart) / 2));
      const fh = await fsp.open(path, 'r+');
      await fh.write(half, 0, half.length, lastEnd);
      await fh.close();

      const logger = recordingLogger();
      const s = await open({ logger });
      const loaded = await s.load();
      expect(loaded.entries.map((e) => e.index)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
      expect(logger.warnings.join('\n')).toMatch(new RegExp(`0000000000000001\\.wal: dropping a torn final write at byte ${lastEnd}`));
      await s.save(batch({ entries: entries(10, 10, 1) }), true);
      await s.close();
      const again = await open();
      expect((await again.load()).entries.map((e) => e.index)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    });

    it('drops a final frame whose checksum fails when only zeros follow it', async () => {
      await threeBatches();
      const path = join(dir, '0000000000000001.wal');
      const bytes = await fsp.readFile(path);
      const [lastStart, lastEnd] = frameOffsets(bytes).at(-1)!;
      bytes[lastEnd - 1] ^= 0x40;
      await fsp.writeFile(path, bytes);
      const logger = recordingLogger();
      const s = await open({ logger });
      expect((await s.load()).entries.map((e) => e.index)).toEqual([1, 2, 3, 4, 5, 6]);
      expect(logger.warnings.join('\n')).toMatch(new RegExp(`torn final write at byte ${lastStart} \\(checksum mismatch`));
    });

    it('treats random garbage at the tail of the last segment as a torn write', async () => {
      await threeBatches();
      const path = join(dir, '0000000000000001.wal');
      const bytes = await fsp.readFile(path);
      const [, lastEnd] = frameOffsets(bytes).at(-1)!;
      for (let i = 0; i < 37; i++) bytes[lastEnd + i] = (i * 97 + 5) & 0xff;
      await fsp.writeFile(path, bytes);
      const s = await open({ logger: recordingLogger() });
      expect((await s.load()).entries.length).toBe(9);
    });

    it('after a crash anywhere inside the final write, loads exactly the state before it', async () => {
      const s = await open();
      await s.save(batch({ hardState: hs(1, 1, 0), entries: entries(1, 20, 1) }), true);
      await s.save(batch({ hardState: hs(2, 2, 10), entries: [...entries(15, 16, 2), { ...padded(17), term: 2 }] }), true);
      await s.close();
      const path = join(dir, '0000000000000001.wal');
      const intact = await fsp.readFile(path);
      const [lastStart, lastEnd] = frameOffsets(intact).at(-1)!;
      const random = prng(7);
      const cuts = [lastStart, lastStart + 1, lastStart + 8, lastStart + 9, lastEnd - 1];
      while (cuts.length < 25) cuts.push(lastStart + Math.floor(random() * (lastEnd - lastStart)));
      for (const cut of cuts) {
        const torn = Uint8Array.from(intact);
        torn.fill(0, cut, lastEnd);
        // Some later sectors of the write may have landed even though earlier ones did not.
        if (cut + 200 < lastEnd) torn.set(intact.subarray(cut + 100, cut + 200), cut + 100);
        await fsp.writeFile(path, torn);
        const reopened = await open({ logger: recordingLogger() });
        const loaded = await reopened.load();
        expect({ cut, hardState: loaded.hardState, last: loaded.entries.at(-1)?.index }).toEqual({ cut, hardState: hs(1, 1, 0), last: 20 });
        await reopened.close();
      }
    });

    it('refuses to load past a flipped byte in a middle frame, naming the file and byte offset', async () => {
      await threeBatches();
      const path = join(dir, '0000000000000001.wal');
      const bytes = await fsp.readFile(path);
      const frames = frameOffsets(bytes);
      expect(frames.length).toBe(4); // segment header + three batches
      const [midStart, midEnd] = frames[2];
      bytes[midStart + Math.floor((midEnd - midStart) / 2)] ^= 0x01;
      await fsp.writeFile(path, bytes);
      const err = await open().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StorageError);
      expect((err as StorageError).code).toBe('corrupt');
      expect((err as Error).message).toContain(`${path}: corrupt frame at byte ${midStart}: checksum mismatch`);
      expect((err as Error).message).toContain('valid frames follow it');
    });

    it('refuses a corrupt length field in a middle frame too', async () => {
      await threeBatches();
      const path = join(dir, '0000000000000001.wal');
      const bytes = await fsp.readFile(path);
      const [midStart] = frameOffsets(bytes)[2];
      bytes[midStart + 2] ^= 0x10; // length now runs far past the remaining frames
      await fsp.writeFile(path, bytes);
      await expect(open()).rejects.toThrow(`${path}: corrupt frame at byte ${midStart}`);
    });

    it('refuses corruption in a segment that is not the last one', async () => {
      const s = await open({ segmentBytes: 4096 });
      for (let i = 1; i <= 60; i++) await s.save(batch({ entries: [padded(i)], hardState: hs(1, 1, i) }), true);
      await s.close();
      expect((await segmentFiles(dir)).length).toBeGreaterThan(1);
      const path = join(dir, '0000000000000001.wal');
      const bytes = await fsp.readFile(path);
      const frames = frameOffsets(bytes);
      const [lastStart] = frames.at(-1)!;
      bytes[lastStart + 12] ^= 0x80;
      await fsp.writeFile(path, bytes);
      await expect(open({ segmentBytes: 4096 })).rejects.toThrow(
        `${path}: corrupt frame at byte ${lastStart}: checksum mismatch`,
      );
      await expect(open({ segmentBytes: 4096 })).rejects.toThrow('this is not the last segment');
    });

    it('refuses a WAL with a missing segment in the middle', async () => {
      const s = await open({ segmentBytes: 4096 });
      for (let i = 1; i <= 100; i++) await s.save(batch({ entries: [padded(i)] }), true);
      await s.close();
      const files = await segmentFiles(dir);
      expect(files.length).toBeGreaterThan(2);
      await fsp.unlink(join(dir, files[1]));
      await expect(open({ segmentBytes: 4096 })).rejects.toThrow(`${join(dir, files[1])} is missing`);
    });

    it('loads an all-zero last segment (crash right after a rollover) as empty', async () => {
      await threeBatches();
      await fsp.writeFile(join(dir, '0000000000000002.wal'), new Uint8Array(4096));
      const s = await open();
      const loaded = await s.load();
      expect(loaded.entries.length).toBe(9);
      expect(loaded.hardState).toEqual(hs(1, 1, 6));
      await s.save(batch({ entries: entries(10, 10, 1) }), true);
      await s.close();
      expect((await (await open()).load()).entries.length).toBe(10);
    });

    it('drops a torn final write in the segment before a prepared all-zero segment, and uses that segment at the next rollover', async () => {
      await threeBatches();
      // The next segment, prepared ahead of its rollover under its final name (wal.ts, rule 6).
      await fsp.writeFile(join(dir, '0000000000000002.wal'), new Uint8Array(64 * 1024));
      const path = join(dir, '0000000000000001.wal');
      const bytes = await fsp.readFile(path);
      const [lastStart, lastEnd] = frameOffsets(bytes).at(-1)!;
      bytes[lastEnd - 1] ^= 0x40;
      await fsp.writeFile(path, bytes);
      const logger = recordingLogger();
      const s = await open({ logger });
      const loaded = await s.load();
      expect(loaded.entries.map((e) => e.index)).toEqual([1, 2, 3, 4, 5, 6]);
      expect(logger.warnings.join('\n')).toMatch(new RegExp(`0000000000000001\\.wal: dropping a torn final write at byte ${lastStart}`));
      // Appends go on in segment 1; a frame that does not fit there goes into segment 2.
      await s.save(batch({ entries: entries(7, 7, 1) }), true);
      expect(frameOffsets(await fsp.readFile(path)).at(-1)![0]).toBe(lastStart);
      for (let i = 8; i <= 11; i++) {
        const big = { index: i, term: 1, type: EntryType.Normal, data: new Uint8Array(20 * 1024).fill(i) };
        await s.save(batch({ entries: [big], hardState: hs(1, 1, i) }), true);
      }
      expect(frameOffsets(await fsp.readFile(join(dir, '0000000000000002.wal'))).length).toBe(2);
      await s.close();
      const again = await (await open()).load();
      expect(again.entries.map((e) => e.index)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
      expect(again.hardState).toEqual(hs(1, 1, 11));
    });

    it('refuses an all-zero segment before the last one, prepared or not', async () => {
      await threeBatches();
      await fsp.writeFile(join(dir, '0000000000000002.wal'), new Uint8Array(4096));
      await fsp.writeFile(join(dir, '0000000000000003.wal'), new Uint8Array(4096));
      await expect(open()).rejects.toThrow(`${join(dir, '0000000000000002.wal')}: segment has no header but is not the last segment`);
    });

    it('loads a directory written by the previous layout (a38ac5c: no segment prepared under its final name) and goes on from it', async () => {
      const fixture = join(import.meta.dirname, 'fixtures', 'fs-wal-a38ac5c');
      for (const name of await fsp.readdir(fixture)) await fsp.copyFile(join(fixture, name), join(dir, name));
      const expected = Array.from({ length: 71 }, (_, i) => 51 + i);
      const s = await open({ segmentBytes: 4096 });
      const loaded = await s.load();
      expect(loaded.snapshot?.metadata.index).toBe(50);
      expect(loaded.hardState).toEqual(hs(1, 1, 121));
      expect(loaded.entries.map((e) => e.index)).toEqual(expected);
      expect(loaded.entries.at(-1)?.data).toEqual(padded(121).data);
      // Past two more rollovers, into segments this build prepared.
      for (let i = 122; i <= 200; i++) await s.save(batch({ entries: [padded(i)], hardState: hs(1, 1, i) }), true);
      await s.close();
      // close() leaves the segment prepared after the last written one: zeros under its final name.
      const files = await segmentFiles(dir);
      expect(files.length).toBeGreaterThan(2);
      expect(files.at(-1)).toBe(`${(parseInt(files[0], 16) + files.length - 1).toString(16).padStart(16, '0')}.wal`);
      expect((await fsp.readFile(join(dir, files.at(-1)!))).every((b) => b === 0)).toBe(true);
      expect(frameOffsets(await fsp.readFile(join(dir, files.at(-2)!))).length).toBeGreaterThan(1);
      const again = await (await open({ segmentBytes: 4096 })).load();
      expect(again.entries.map((e) => e.index)).toEqual([...expected, ...Array.from({ length: 79 }, (_, i) => 122 + i)]);
    });
  });

  describe('snapshots', () => {
    it('detects a corrupt snapshot file and names it', async () => {
      const s = await open();
      await s.save(batch({ entries: entries(1, 5, 1), hardState: hs(1, 1, 5) }), true);
      await s.saveSnapshot(snapshot(4, 1, 'x'.repeat(100)));
      await s.close();
      const path = join(dir, '0000000000000001-0000000000000004.snap');
      const bytes = await fsp.readFile(path);
      bytes[bytes.length - 10] ^= 0x02;
      await fsp.writeFile(path, bytes);
      await expect(open()).rejects.toThrow(`snapshot file ${path} is corrupt: checksum mismatch`);
    });

    it('reports a snapshot file that the WAL references but that is gone', async () => {
      const s = await open();
      await s.save(batch({ entries: entries(1, 5, 1) }), true);
      await s.saveSnapshot(snapshot(4, 1));
      await s.close();
      const path = join(dir, '0000000000000001-0000000000000004.snap');
      await fsp.unlink(path);
      await expect(open()).rejects.toThrow(`snapshot file ${path} is missing`);
    });

    it('keeps at most the two latest snapshot files and ignores an orphan one', async () => {
      const s = await open();
      await s.save(batch({ entries: entries(1, 10, 1) }), true);
      for (const index of [2, 4, 6, 8]) await s.saveSnapshot(snapshot(index, 1));
      // close() syncs the markers, and the purge they allow ends before it returns.
      await s.close();
      const snaps = (await fsp.readdir(dir)).filter((n) => n.endsWith('.snap')).sort();
      expect(snaps).toEqual(['0000000000000001-0000000000000006.snap', '0000000000000001-0000000000000008.snap']);
      // A snapshot file written just before a crash, never named by the WAL, is not used.
      await fsp.writeFile(join(dir, '0000000000000001-0000000000000009.snap'), new Uint8Array([1, 2, 3]));
      const loaded = await (await open()).load();
      expect(loaded.snapshot?.metadata.index).toBe(8);
      expect(loaded.entries.map((e) => e.index)).toEqual([9, 10]);
    });

    it('deletes the segments a snapshot covers and keeps the rest loadable', async () => {
      const s = await open({ segmentBytes: 4096 });
      for (let i = 1; i <= 200; i++) await s.save(batch({ entries: [padded(i)], hardState: hs(1, 1, i) }), true);
      const before = await segmentFiles(dir);
      expect(before.length).toBeGreaterThan(4);
      await s.saveSnapshot(snapshot(190, 1));
      // Nothing goes before the marker is durable: the next synced save makes it so.
      expect(await segmentFiles(dir)).toEqual(before);
      // (An empty batch with sync set only syncs.)
      await s.save(batch({}), true);
      await s.close();
      const after = await segmentFiles(dir);
      expect(after.length).toBeLessThan(3);
      expect(after.at(-1)).toBe(before.at(-1));
      const loaded = await (await open({ segmentBytes: 4096 })).load();
      expect(loaded.hardState).toEqual(hs(1, 1, 200));
      expect(loaded.snapshot?.metadata.index).toBe(190);
      expect(loaded.entries.map((e) => e.index)).toEqual([191, 192, 193, 194, 195, 196, 197, 198, 199, 200]);
    });
  });

  describe('segments', () => {
    it('rolls over to new segments when one fills, and reloads across all of them', async () => {
      const s = await open({ segmentBytes: 4096 });
      const data = new Uint8Array(100).fill(7);
      for (let i = 1; i <= 150; i++) await s.save(batch({ entries: [{ index: i, term: 1, type: 0, data }] }), i % 3 === 0);
      await s.close();
      const files = await segmentFiles(dir);
      expect(files.length).toBeGreaterThanOrEqual(4);
      for (const f of files.slice(0, -1)) expect((await fsp.stat(join(dir, f))).size).toBe(4096);
      const loaded = await (await open({ segmentBytes: 4096 })).load();
      expect(loaded.entries.map((e) => e.index)).toEqual(Array.from({ length: 150 }, (_, i) => i + 1));
    });

    it('gives a frame larger than a segment a segment of its own', async () => {
      const s = await open({ segmentBytes: 4096 });
      await s.save(batch({ entries: entries(1, 1, 1) }), true);
      await s.save(batch({ entries: [{ index: 2, term: 1, type: 0, data: new Uint8Array(10_000).fill(3) }] }), true);
      await s.save(batch({ entries: entries(3, 3, 1) }), true);
      await s.close();
      const loaded = await (await open({ segmentBytes: 4096 })).load();
      expect(loaded.entries.map((e) => e.data.length)).toEqual([4, 10_000, 4]);
    });

    it('preallocates segments to the configured size', async () => {
      const s = await open({ segmentBytes: 128 * 1024 });
      await s.save(batch({ entries: entries(1, 1, 1) }), true);
      expect((await fsp.stat(join(dir, '0000000000000001.wal'))).size).toBe(128 * 1024);
    });
  });

  describe('durability', () => {
    /** Real node fs, counting calls per operation, except on the background-prepared segment. */
    function countingFs() {
      const counts = { datasync: 0, sync: 0, write: 0, syncDir: 0 };
      const fs: WalFs = {
        ...nodeWalFs,
        async open(path, mode) {
          const file = await nodeWalFs.open(path, mode);
          const count = (op: keyof typeof counts) => void (path.endsWith('.wal.tmp') || counts[op]++);
          return {
            path,
            write: (data, position) => (count('write'), file.write(data, position)),
            datasync: () => (count('datasync'), file.datasync()),
            sync: () => (count('sync'), file.sync()),
            close: () => file.close(),
          };
        },
        syncDir: (d) => (counts.syncDir++, nodeWalFs.syncDir(d)),
      };
      return { fs, counts };
    }

    it('makes one write and one fdatasync per synced batch; an unsynced one waits for the next write', async () => {
      const { fs, counts } = countingFs();
      const s = await open({ fs });
      await s.load();
      const base = { ...counts };
      const done = () => ({ write: counts.write - base.write, datasync: counts.datasync - base.datasync });
      const many = Array.from({ length: 256 }, (_, i) => ({ index: i + 1, term: 1, type: 0, data: new Uint8Array(128) }));
      await s.save(batch({ entries: many, hardState: hs(1, 1, 0) }), true);
      expect(done()).toEqual({ write: 1, datasync: 1 });
      // A commit index that moved needs no write of its own (etcd's WAL buffers it the same way).
      await s.save(batch({ hardState: hs(1, 1, 200) }), false);
      expect(done()).toEqual({ write: 1, datasync: 1 });
      // The next synced batch carries it, in the same write.
      await s.save(batch({ entries: entries(257, 257, 1), hardState: hs(1, 1, 256) }), true);
      expect(done()).toEqual({ write: 2, datasync: 2 });
      await s.save(batch({ hardState: hs(1, 1, 257) }), false);
      expect(done()).toEqual({ write: 2, datasync: 2 });
      await s.close();
      expect(done()).toEqual({ write: 3, datasync: 3 }); // close writes and syncs the unsynced batch
      const loaded = await (await open()).load();
      expect(loaded.hardState).toEqual(hs(1, 1, 257));
      expect(loaded.entries.at(-1)?.index).toBe(257);
    });

    it('writes unsynced batches once they pass unsyncedBufferBytesMax, and before reading the log back', async () => {
      const { fs, counts } = countingFs();
      const s = await open({ fs });
      await s.load();
      await s.save(batch({ entries: entries(1, 1, 1), hardState: hs(1, 1, 0) }), true);
      const base = counts.write;
      let commit = 0;
      while (counts.write === base) {
        commit++;
        expect(commit).toBeLessThanOrEqual(unsyncedBufferBytesMax);
        await s.save(batch({ hardState: hs(1, 1, commit % 2) }), false);
      }
      // Every frame is tens of bytes: the buffer held many, then went out in one write.
      expect(commit).toBeGreaterThan(unsyncedBufferBytesMax / 100);
      expect(counts.datasync).toBe(1);
      await s.save(batch({ hardState: hs(1, 1, 1) }), false);
      await s.save(batch({ hardState: hs(1, 1, 0) }), false);
      const writes = counts.write;
      expect((await s.load()).hardState).toEqual(hs(1, 1, 0));
      expect(counts.write).toBe(writes + 1);
    });

    it('fsyncs a snapshot file and its directory before the WAL frame that names it, which the next synced save carries', async () => {
      const { fs, counts } = countingFs();
      const s = await open({ fs });
      await s.save(batch({ entries: entries(1, 3, 1) }), true);
      const base = { ...counts };
      await s.saveSnapshot(snapshot(2, 1));
      expect(counts.sync - base.sync).toBe(1);
      expect(counts.syncDir - base.syncDir).toBeGreaterThanOrEqual(1);
      expect(counts.datasync - base.datasync).toBe(0);
      await s.save(batch({ entries: entries(4, 4, 1) }), true);
      expect(counts.datasync - base.datasync).toBe(1);
      await s.close();
      expect((await (await open()).load()).snapshot?.metadata.index).toBe(2);
    });

    it('drops a superseded snapshot file without a directory fsync of its own, and a reopen still loads the latest snapshot', async () => {
      const { fs, counts } = countingFs();
      let s = await open({ fs });
      await s.save(batch({ entries: entries(1, 6, 1) }), true);
      await s.saveSnapshot(snapshot(2, 1));
      await s.saveSnapshot(snapshot(3, 1));
      const base = { ...counts };
      // Keeps the snapshot at 3 beside the new one and deletes the one at 2, once the synced save
      // after it has made its marker durable.
      await s.saveSnapshot(snapshot(4, 1));
      await s.save(batch({ entries: entries(7, 7, 1) }), true);
      await s.close();
      expect({ sync: counts.sync - base.sync, syncDir: counts.syncDir - base.syncDir, datasync: counts.datasync - base.datasync }).toEqual({ sync: 1, syncDir: 1, datasync: 1 });
      expect((await fsp.readdir(dir)).filter((f) => f.endsWith('.snap')).length).toBe(2);
      s = await open({ fs });
      expect((await s.load()).snapshot?.metadata.index).toBe(4);
      await s.close();
    });

    it('prepares a snapshot file beside save(), leaving its saveSnapshot no sync at all', async () => {
      const { fs, counts } = countingFs();
      let s = await open({ fs });
      await s.save(batch({ entries: entries(1, 3, 1) }), true);
      const snap = snapshot(2, 1);
      const preparing = s.prepareSnapshot(snap);
      // save() goes on while the file is written and synced.
      await s.save(batch({ entries: entries(4, 5, 1) }), true);
      await preparing;
      const base = { ...counts };
      await s.saveSnapshot({ metadata: snap.metadata, data: snap.data });
      expect({ sync: counts.sync - base.sync, syncDir: counts.syncDir - base.syncDir, datasync: counts.datasync - base.datasync }).toEqual({ sync: 0, syncDir: 0, datasync: 0 });
      await s.close();
      s = await open({ fs });
      const loaded = await s.load();
      expect(loaded.snapshot).toEqual(snap);
      expect(loaded.entries.map((e) => e.index)).toEqual([3, 4, 5]);
      await s.close();
    });

    it('loads the state before a prepared snapshot that was never saved, and deletes its file with a later snapshot', async () => {
      let s = await open({});
      await s.save(batch({ entries: entries(1, 6, 1) }), true);
      await s.prepareSnapshot(snapshot(3, 1));
      // A restart before saveSnapshot: the prepared file is not the stored snapshot.
      await s.close();
      s = await open({});
      let loaded = await s.load();
      expect(loaded.snapshot).toBeNull();
      expect(loaded.entries.map((e) => e.index)).toEqual([1, 2, 3, 4, 5, 6]);
      // Prepared again, then superseded by a snapshot saved without it.
      await s.prepareSnapshot(snapshot(4, 1));
      await s.saveSnapshot(snapshot(5, 1));
      await s.saveSnapshot(snapshot(6, 1));
      await s.close();
      expect((await fsp.readdir(dir)).filter((f) => f.endsWith('.snap')).sort()).toEqual(['0000000000000001-0000000000000005.snap', '0000000000000001-0000000000000006.snap']);
      s = await open({});
      loaded = await s.load();
      expect(loaded.snapshot).toEqual(snapshot(6, 1));
      await s.close();
    });

    it('refuses a second preparation while one runs, and a saveSnapshot during one', async () => {
      const s = await open({});
      await s.save(batch({ entries: entries(1, 3, 1) }), true);
      const preparing = s.prepareSnapshot(snapshot(2, 1));
      await expect(s.prepareSnapshot(snapshot(3, 1))).rejects.toThrow(/already being prepared/);
      await expect(s.saveSnapshot(snapshot(2, 1))).rejects.toThrow(/while its file is being prepared/);
      await preparing;
      await s.saveSnapshot(snapshot(2, 1));
      await s.close();
    });

    it('rejects a batch over frameBytesMax before writing anything, and stays usable', async () => {
      const s = await open({ frameBytesMax: 1000 });
      await expect(s.save(batch({ entries: [{ ...padded(1), data: new Uint8Array(2000) }] }), true)).rejects.toThrow(
        /batch of 1 entries encodes to \d+ bytes, over frameBytesMax 1000: split it/,
      );
      await s.save(batch({ entries: [padded(1)] }), true);
      await s.close();
      expect((await (await open()).load()).entries.length).toBe(1);
    });

    it('refuses a call made while another is still running', async () => {
      const s = await open();
      const first = s.save(batch({ entries: entries(1, 1, 1) }), true);
      await expect(s.save(batch({ entries: entries(2, 2, 1) }), true)).rejects.toThrow(/concurrent calls; the member must await each one/);
      await first;
      expect((await s.load()).entries.length).toBe(1);
    });

    it('refuses further writes after a failed write, and recovers on reopen', async () => {
      let failWrites = false;
      const fs: WalFs = {
        ...nodeWalFs,
        async open(path, mode) {
          const file = await nodeWalFs.open(path, mode);
          return {
            ...file,
            path,
            write: (data, position) => (failWrites && path.endsWith('.wal') ? Promise.reject(new Error('EIO: injected')) : file.write(data, position)),
            datasync: () => file.datasync(),
            sync: () => file.sync(),
            close: () => file.close(),
          };
        },
      };
      const s = await open({ fs });
      await s.save(batch({ entries: entries(1, 2, 1) }), true);
      failWrites = true;
      await expect(s.save(batch({ entries: entries(3, 3, 1) }), true)).rejects.toThrow('EIO: injected');
      failWrites = false;
      await expect(s.save(batch({ entries: entries(3, 3, 1) }), true)).rejects.toThrow(/failed earlier \(EIO: injected\); close it and open the dir again/);
      await s.close();
      expect((await (await open()).load()).entries.map((e) => e.index)).toEqual([1, 2]);
    });
  });

  describe('lock', () => {
    it('refuses a data dir locked by a live process, naming the dir and the pid', async () => {
      const child = await runningChild();
      try {
        await fsp.writeFile(join(dir, 'LOCK'), `${child.pid}\n`);
        const err = await open().catch((e: unknown) => e);
        expect((err as StorageError).code).toBe('locked');
        expect((err as Error).message).toContain(`data dir ${dir} is locked by process ${child.pid}`);
      } finally {
        await child.stop();
      }
    });

    it('refuses a second open of the same dir in this process', async () => {
      await open();
      await expect(open()).rejects.toThrow(`data dir ${dir} is locked by process ${process.pid} (this process)`);
    });

    it('takes over a stale lock with a warning', async () => {
      const pid = await deadPid();
      await fsp.writeFile(join(dir, 'LOCK'), `${pid}\n`);
      await fsp.writeFile(join(dir, `LOCK.${pid}.tmp`), `${pid}\n`);
      const logger = recordingLogger();
      const s = await open({ logger });
      expect(logger.warnings.join('\n')).toContain(`taking over stale lock ${join(dir, 'LOCK')}: process ${pid} is not running`);
      expect((await fsp.readFile(join(dir, 'LOCK'), 'utf8')).trim()).toBe(String(process.pid));
      expect((await fsp.readdir(dir)).filter((n) => n.startsWith('LOCK'))).toEqual(['LOCK']);
      await s.close();
      await expect(fsp.stat(join(dir, 'LOCK'))).rejects.toThrow(/ENOENT/);
    });

    it('takes over a lock naming our own pid that this process does not hold (container restart)', async () => {
      await fsp.writeFile(join(dir, 'LOCK'), `${process.pid}\n`);
      const logger = recordingLogger();
      await open({ logger });
      expect(logger.warnings.join('\n')).toContain(`it names this process's pid ${process.pid}, left by an earlier process with the same pid`);
    });

    it('takes over a lock file holding no pid', async () => {
      await fsp.writeFile(join(dir, 'LOCK'), '');
      const logger = recordingLogger();
      await open({ logger });
      expect(logger.warnings.join('\n')).toContain('it holds no valid pid');
    });

    it('releases the lock on close so the dir can be opened again', async () => {
      const s = await open();
      await s.close();
      await (await open()).close();
    });
  });
});
