// fs-wal: a segmented write-ahead log plus snapshot files in one data directory (Node only).
//
// <dir>/LOCK                      pid of the owning process (see lock.ts)
// <dir>/<seq:16 hex>.wal          segments, preallocated with zeros, frames per records.ts; the
//                                 last may be an unused one prepared ahead (rule 6)
// <dir>/<term>-<index>.snap       snapshot files (16 hex digits each), the latest two kept
//
// Every save() is one batch frame. A synced one costs one write and one fdatasync (group
// commit); an unsynced one (a hard state only: a commit index moved) stays in memory, up to
// unsyncedBufferBytesMax, and goes out in the next write, as etcd's WAL page writer keeps it.
// A snapshot file is made durable (temp file, fsync, rename, fsync dir) before the WAL frame
// that names it, so a WAL never references a snapshot that is not on disk. Once a snapshot
// is durable, segments whose entries it covers are deleted; each segment's header repeats the
// hard state and snapshot in force when it was cut, so no deletion loses them.
//
// The marker frame and the purge (the deletions a snapshot allows) stay off the Ready loop's
// syncs. The rules that keep every crash readable:
//  1. A snapshot file is durable before any frame naming it is written (above).
//  2. saveSnapshot's marker frame is appended unsynced, like a hard state: it becomes durable
//     with the next fdatasync of the active segment (the next synced save(), a rollover, which
//     syncs the old segment before it cuts a new one, or close()). A crash before that loads the
//     previous snapshot and the log after it, all still on disk by rule 3: the state before the
//     saveSnapshot, which is what the member had then (its backend may be ahead of it, as after
//     any crash between a backend flush and a snapshot).
//  3. Nothing a marker makes redundant is deleted before the marker is durable: retention is
//     planned only when every frame appended so far has been fdatasync'ed (retentionDue waits for
//     that), against the marker in force then, and a file leaves `segments`/`snapshotFiles` when
//     it is queued, so no later plan counts it again.
//  4. Queued files are deleted in order by one background chain (purge), not on the Ready loop:
//     segments oldest first, each unlink made durable by a directory fsync before the next, so a
//     crash at any point leaves consecutive segments whose first header holds a marker at or
//     before every entry they lack. Superseded snapshot files are unlinked without a directory
//     fsync (one that comes back after a crash is superseded all the same). Only files older than
//     the marker in force are queued, and every later snapshot file has a higher index, so the
//     purge never meets a file being written.
//  5. The active segment is never queued; a rollover touches only the newest names. load() and
//     close() wait for the purge: readWal must not list a file the purge is deleting, and the
//     lock is released only once nothing of this process still changes the directory.
//
// The rollover keeps only the old segment's fdatasync and an open on the Ready loop:
//  6. The next segment is prepared in the background: a temporary file is zero-filled and
//     fsynced, renamed to its final name and the directory fsynced. The preparation starts only
//     once the active segment's header is durable (after its first fdatasync; open() syncs a
//     segment it read, which may be in the page cache only), and at most one segment is
//     prepared, so on disk at most one segment follows the last written one, and it holds only
//     zeros. readWal takes a trailing all-zero segment after a written one for that prepared
//     segment: the one before it is the last written segment, the one whose torn final write is
//     dropped. A header-less segment anywhere else, or one before a prepared segment, is
//     corruption. The rollover fdatasyncs the old segment, then opens the prepared one; a frame
//     goes into the new segment only after the old one is durable, so a new segment with any
//     non-zero byte means every segment before it is whole. Crash cases:
//     - between the rename and the directory fsync, or before the rename: the prepared file is
//       gone or still a .tmp (deleted at open) or present under its name with all its zeros
//       (fsynced before the rename); the log ends in the active segment either way.
//     - between the old segment's fdatasync and the new segment's first synced frame: the new
//       segment is all zeros, or holds a torn first frame; it is the last segment either way,
//       loaded as empty or its torn frame dropped; the old one is whole.
//     - a prepared segment never used (a crash, or close(), which leaves it): the next open()
//       appends to the last written segment and uses the prepared one at its rollover.
//     - a frame bigger than the prepared segment, or a preparation that failed or is not done:
//       the rollover prepares (or waits for) one itself, renaming it over the old one.
//  7. A marker saveSnapshot leaves unsynced (rule 2) is synced by the storage's own timer after
//     markerSyncDelayMs if no synced save() comes first, so an idle member's covered segments
//     go. The timer's sync runs only between calls; a call that starts meanwhile waits for it.

import { join } from 'node:path';
import type { Logger } from '../../../src/raft/config.ts';
import type { HardState, Snapshot } from '../../../src/raft/types.ts';
import type { PersistBatch, PersistedState, SnapshotPreparation, Storage } from '../../../src/seams.ts';
import { StorageError } from '../errors.ts';
import { LogShape, checkOwnSnapshot, planBatch } from '../log-rules.ts';
import type { WalFile, WalFs } from './fs.ts';
import { nodeWalFs } from './fs.ts';
import { acquireLock, isProcessAlive } from './lock.ts';
import type { BatchRecord, SnapshotMarker } from './records.ts';
import { batchFrameBytes, encodeBatch, encodeSegmentHeader, encodeSnapshotFile, frameHeaderBytes } from './records.ts';
import type { SegmentInfo } from './replay.ts';
import { readWal, segmentName, snapshotName } from './replay.ts';

export const segmentBytesDefault = 64 * 1024 * 1024;
export const segmentBytesMin = 4096;
export const frameBytesMaxDefault = 512 * 1024 * 1024;
/** The frame length field is a u32. */
export const frameBytesMaxLimit = 0xffff_ffff - frameHeaderBytes;
export const snapshotFilesKept = 2;
const zeroChunkBytes = 1024 * 1024;
/**
 * Unsynced frames kept in memory before they are written anyway. Each write of a frame costs a
 * file-time update, which on ext4 starts a journal handle (75–130 µs measured under load, more
 * while the journal commits); a hard-state frame is 38 bytes and needs no write of its own.
 */
export const unsyncedBufferBytesMax = 4096;

export interface FsWalOptions {
  /** Size each segment is preallocated to; a frame larger than this gets a segment of its own. */
  segmentBytes?: number;
  /** Largest batch frame accepted, in bytes. */
  frameBytesMax?: number;
  fs?: WalFs;
  logger?: Logger;
  /** Recorded in the lock file; defaults to process.pid. */
  pid?: number;
  /** Decides whether a lock's holder still runs; defaults to a signal-0 probe. For tests. */
  isProcessAlive?: (pid: number) => boolean;
  /**
   * How long a saveSnapshot marker may stay unsynced before the storage syncs it on its own
   * timer, so an idle member's covered segments go without waiting for its next write (rule 7).
   */
  markerSyncDelayMs?: number;
}

export const markerSyncDelayMsDefault = 1000;

/** A zero-filled segment, durable under its final name (rule 6). */
interface Prepared {
  seq: number;
  path: string;
  bytes: number;
}

export class FsWalStorage implements Storage, SnapshotPreparation {
  readonly dir: string;
  private readonly fs: WalFs;
  private readonly logger: Logger;
  private readonly segmentBytes: number;
  private readonly frameBytesMax: number;
  private readonly releaseLock: () => Promise<void>;

  /** Oldest first; the last one is being written. Invariant: consecutive seqs. */
  private segments: SegmentInfo[];
  private active: WalFile;
  /** Next frame position in the active segment, buffered frames included; 0 means its header is not written yet. */
  private activeOffset: number;
  /** Invariant: activeOffset <= activeBytes. */
  private activeBytes: number;
  /** Bytes written to the active segment, or buffered for it, but not yet fdatasync'ed. */
  private unsynced = false;
  /**
   * Unsynced frames not yet written: they belong at activeOffset - bufferedBytes. Invariant:
   * bufferedBytes is the sum of their lengths and at most unsyncedBufferBytesMax; written before
   * every other write, sync, read-back, rollover and close.
   */
  private buffered: Uint8Array[] = [];
  private bufferedBytes = 0;
  /**
   * The next segment, zero-filled, renamed to its final name and the directory fsynced in the
   * background, so a rollover only opens it (rule 6). Started once the active segment's header is
   * durable; null until then.
   */
  private preparing: Promise<Prepared | null> | null = null;
  private readonly markerSyncDelayMs: number;
  /** Armed while a saveSnapshot marker waits unsynced (rule 7); its sync runs as `idleSyncing`. */
  private markerTimer: ReturnType<typeof setTimeout> | null = null;
  private idleSyncing: Promise<void> | null = null;

  private hardState: HardState;
  /** The snapshot marker and the terms of the entries after it: enough to plan every batch. */
  private readonly log: LogShape;
  private snapshotFiles: SnapshotMarker[];
  /** A snapshot file prepareSnapshot is writing (beside save()), and the last one it wrote and synced. */
  private snapshotPreparing: Promise<void> | null = null;
  private snapshotPrepared: Snapshot | null = null;
  /** A marker was applied after the last fdatasync: retention waits for the next (rule 3). */
  private retentionDue = false;
  /** Files a durable snapshot made redundant, deleted in order by `purging` (rule 4). */
  private purgeQueue: Array<{ path: string; syncDir: boolean }> = [];
  private purging: Promise<void> | null = null;

  /** What open() read, handed out by the first load() so boot reads the disk once. */
  private bootState: PersistedState | null;
  private busy = false;
  private closed = false;
  /** A write failed midway: memory and disk may disagree, so refuse further writes. */
  private failure: Error | null = null;

  private constructor(init: {
    dir: string;
    fs: WalFs;
    logger: Logger;
    segmentBytes: number;
    frameBytesMax: number;
    markerSyncDelayMs: number;
    releaseLock: () => Promise<void>;
    segments: SegmentInfo[];
    active: WalFile;
    activeOffset: number;
    activeBytes: number;
    hardState: HardState;
    marker: SnapshotMarker | null;
    terms: number[];
    snapshotFiles: SnapshotMarker[];
    bootState: PersistedState;
  }) {
    this.dir = init.dir;
    this.fs = init.fs;
    this.logger = init.logger;
    this.segmentBytes = init.segmentBytes;
    this.frameBytesMax = init.frameBytesMax;
    this.markerSyncDelayMs = init.markerSyncDelayMs;
    this.releaseLock = init.releaseLock;
    this.segments = init.segments;
    this.active = init.active;
    this.activeOffset = init.activeOffset;
    this.activeBytes = init.activeBytes;
    this.hardState = init.hardState;
    this.log = new LogShape(init.marker, init.terms);
    this.snapshotFiles = init.snapshotFiles;
    this.bootState = init.bootState;
  }

  /**
   * Locks `dir` (creating it if needed), reads it back, truncates a torn final write, and
   * returns a storage ready to load() and append. Throws StorageError 'locked' or 'corrupt'.
   */
  static async open(dir: string, options: FsWalOptions = {}): Promise<FsWalStorage> {
    const fs = options.fs ?? nodeWalFs;
    const logger = options.logger ?? consoleLogger;
    const segmentBytes = options.segmentBytes ?? segmentBytesDefault;
    const frameBytesMax = options.frameBytesMax ?? frameBytesMaxDefault;
    const markerSyncDelayMs = options.markerSyncDelayMs ?? markerSyncDelayMsDefault;
    if (!Number.isSafeInteger(segmentBytes) || segmentBytes < segmentBytesMin) {
      throw new RangeError(`segmentBytes ${segmentBytes} must be an integer >= segmentBytesMin ${segmentBytesMin}`);
    }
    if (!Number.isSafeInteger(frameBytesMax) || frameBytesMax < 1 || frameBytesMax > frameBytesMaxLimit) {
      throw new RangeError(`frameBytesMax ${frameBytesMax} must be an integer in [1, ${frameBytesMaxLimit}]`);
    }
    await fs.mkdirp(dir);
    const releaseLock = await acquireLock(dir, {
      fs,
      logger,
      pid: options.pid ?? process.pid,
      isProcessAlive: options.isProcessAlive ?? isProcessAlive,
    });
    try {
      const wal = await readWal(fs, dir, frameBytesMax);
      for (const name of wal.tmpFiles) await fs.unlink(join(dir, name));
      let segments = wal.segments;
      let activeOffset = wal.writeOffset;
      let activeBytes = wal.lastSegmentBytes;
      if (wal.torn !== null) {
        const { name, offset, reason, nonZeroEnd } = wal.torn;
        logger.warn(
          `${join(dir, name)}: dropping a torn final write at byte ${offset} (${reason}); ` +
            `${nonZeroEnd - offset} bytes zeroed. It was never acknowledged as synced.`,
        );
        const file = await fs.open(join(dir, name), 'update');
        try {
          await writeZeros(file, offset, nonZeroEnd);
          await file.datasync();
        } finally {
          await file.close();
        }
      }
      if (segments.length === 0) {
        const prepared = await prepareSegment(fs, dir, 1, segmentBytes);
        segments = [{ seq: 1, name: segmentName(1), maxEntryIndex: 0 }];
        activeOffset = 0;
        activeBytes = prepared.bytes;
      }
      const active = await fs.open(join(dir, segments[segments.length - 1].name), 'update');
      // What was read may be in the page cache only (the last process was killed): its header is
      // made durable before a segment is prepared after it (rule 6).
      if (wal.prepared === null && activeOffset > 0) await active.datasync();
      const storage = new FsWalStorage({
        dir,
        fs,
        logger,
        segmentBytes,
        frameBytesMax,
        markerSyncDelayMs,
        releaseLock,
        segments,
        active,
        activeOffset,
        activeBytes,
        hardState: wal.hardState,
        marker: wal.marker,
        terms: wal.entries.map((e) => e.term),
        snapshotFiles: wal.snapshotFiles,
        bootState: { hardState: wal.hardState, snapshot: wal.snapshot, entries: wal.entries },
      });
      const { prepared } = wal;
      if (prepared !== null) storage.preparing = Promise.resolve({ seq: prepared.seq, path: join(dir, prepared.name), bytes: prepared.bytes });
      else if (activeOffset > 0) storage.prepareNext();
      return storage;
    } catch (err) {
      await releaseLock();
      throw err;
    }
  }

  async load(): Promise<PersistedState> {
    return this.exclusive(async () => {
      const boot = this.bootState;
      this.bootState = null;
      if (boot !== null) return boot;
      await this.guard(() => this.writeBuffered());
      await this.purging;
      this.throwIfFailed();
      const wal = await readWal(this.fs, this.dir, this.frameBytesMax);
      return { hardState: wal.hardState, snapshot: wal.snapshot, entries: wal.entries };
    });
  }

  async save(batch: PersistBatch, sync: boolean): Promise<void> {
    return this.exclusive(async () => {
      const plan = planBatch(this.log, batch);
      if (batch.snapshot === null && batch.entries.length === 0 && batch.hardState === null) {
        if (sync && this.unsynced) await this.guard(() => this.syncActive());
        return;
      }
      const snapshot = batch.snapshot;
      if (snapshot !== null) this.forgetPrepared();
      const marker = snapshot && { index: snapshot.metadata.index, term: snapshot.metadata.term };
      const record: BatchRecord = { marker, snapshotReset: plan.snapshotReset, entries: batch.entries, hardState: batch.hardState };
      const frame = this.encodeChecked(record);
      this.bootState = null;
      await this.guard(async () => {
        if (snapshot !== null) await this.writeSnapshotFile(snapshot);
        // A snapshot frame is always synced: the retention below deletes what it replaces.
        await this.append(frame, sync || snapshot !== null);
        if (marker !== null) this.applyMarker(marker, plan.snapshotReset);
        if (batch.entries.length > 0) {
          this.log.appended(plan.appendFromIndex, batch.entries);
          const seg = this.segments[this.segments.length - 1];
          seg.maxEntryIndex = Math.max(seg.maxEntryIndex, batch.entries[batch.entries.length - 1].index);
        }
        if (batch.hardState !== null) this.hardState = { ...batch.hardState };
        // Synced with its frame: retention is planned now.
        if (marker !== null) this.markerApplied();
      });
    });
  }

  /**
   * SnapshotPreparation: writes, fsyncs and renames the snapshot's file and fsyncs the directory
   * while save() calls go on (none of them touches that file), so that saveSnapshot(snapshot)
   * only appends its marker frame. Without the marker the file is an orphan that load() ignores
   * and a later snapshot's retention deletes. A failure here fails only the preparation: the
   * saveSnapshot after it writes the file itself.
   */
  async prepareSnapshot(snapshot: Snapshot): Promise<void> {
    if (this.closed || this.failure !== null) throw new StorageError('closed', `fs-wal ${this.dir}: prepareSnapshot after close or a failure`);
    if (this.snapshotPreparing !== null) throw new StorageError('concurrent-call', `fs-wal ${this.dir}: a snapshot is already being prepared`);
    checkOwnSnapshot(this.log, snapshot);
    this.snapshotPrepared = null;
    const preparing = this.writeSnapshotFile(snapshot, '.prep');
    this.snapshotPreparing = preparing;
    try {
      await preparing;
      this.snapshotPrepared = snapshot;
    } finally {
      this.snapshotPreparing = null;
    }
  }

  async saveSnapshot(snapshot: Snapshot): Promise<void> {
    return this.exclusive(async () => {
      checkOwnSnapshot(this.log, snapshot);
      if (this.snapshotPreparing !== null) throw new StorageError('concurrent-call', `fs-wal ${this.dir}: saveSnapshot while its file is being prepared`);
      this.bootState = null;
      // The same snapshot: its point and the very image bytes that were prepared.
      const p = this.snapshotPrepared;
      const prepared = p !== null && p.data === snapshot.data && p.metadata.index === snapshot.metadata.index && p.metadata.term === snapshot.metadata.term;
      if (!prepared) this.forgetPrepared();
      this.snapshotPrepared = null;
      await this.guard(async () => {
        if (prepared) this.listSnapshotFile(snapshot);
        else await this.writeSnapshotFile(snapshot);
        const marker = { index: snapshot.metadata.index, term: snapshot.metadata.term };
        // Unsynced (rule 2): the next synced save() carries it, and only then does retention run,
        // or the storage's own timer syncs it if none comes (rule 7).
        await this.append(encodeBatch({ marker, snapshotReset: false, entries: [], hardState: null }), false);
        this.applyMarker(marker, false);
        this.markerApplied();
        if (this.retentionDue) this.armMarkerSync();
      });
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (this.busy) throw new StorageError('concurrent-call', `fs-wal ${this.dir}: close() while another operation runs`);
    this.closed = true;
    try {
      this.clearMarkerTimer();
      await this.idleSyncing;
      await this.snapshotPreparing?.catch(() => undefined);
      // A prepared segment stays: it is durable under its name, and the next open() uses it.
      await this.preparing;
      if (this.unsynced && this.failure === null) await this.syncActive();
      await this.purging;
      await this.active.close();
    } finally {
      await this.releaseLock();
    }
  }

  private applyMarker(marker: SnapshotMarker, reset: boolean): void {
    assert(marker.index > this.log.snapshotIndex, () => `snapshot index ${marker.index} is not after ${this.log.snapshotIndex}`);
    this.log.snapshotStored(marker, reset);
  }

  /** One operation at a time, as the Storage contract says; a second concurrent call is a bug. */
  private async exclusive<T>(op: () => Promise<T>): Promise<T> {
    if (this.closed) throw new StorageError('closed', `fs-wal ${this.dir} used after close()`);
    this.throwIfFailed();
    if (this.busy) throw new StorageError('concurrent-call', `fs-wal ${this.dir}: concurrent calls; the member must await each one`);
    this.busy = true;
    try {
      if (this.idleSyncing !== null) {
        await this.idleSyncing;
        this.throwIfFailed();
      }
      return await op();
    } finally {
      this.busy = false;
    }
  }

  private throwIfFailed(): void {
    if (this.failure !== null) {
      throw new StorageError('closed', `fs-wal ${this.dir} failed earlier (${this.failure.message}); close it and open the dir again`);
    }
  }

  private async guard(op: () => Promise<void>): Promise<void> {
    try {
      await op();
    } catch (err) {
      this.failure = err instanceof Error ? err : new Error(String(err));
      throw err;
    }
  }

  /** Encodes a batch frame, refusing one over frameBytesMax before any I/O happens. */
  private encodeChecked(record: BatchRecord): Uint8Array {
    const frameBytes = batchFrameBytes(record);
    if (frameBytes - frameHeaderBytes > this.frameBytesMax) {
      throw new StorageError(
        'invalid-batch',
        `batch of ${record.entries.length} entries encodes to ${frameBytes} bytes, over frameBytesMax ${this.frameBytesMax}: split it`,
      );
    }
    return encodeBatch(record);
  }

  private async append(frame: Uint8Array, sync: boolean): Promise<void> {
    let header = this.activeOffset === 0 ? this.segmentHeader() : null;
    if (this.activeOffset + (header?.length ?? 0) + frame.length > this.activeBytes) {
      await this.rollover(frame.length);
      header = this.segmentHeader();
    }
    const parts = header === null ? [frame] : [header, frame];
    const bytes = (header?.length ?? 0) + frame.length;
    assert(this.activeOffset + bytes <= this.activeBytes, () => `frame past the end of segment ${this.active.path}: offset ${this.activeOffset + bytes} > ${this.activeBytes} bytes`);
    this.buffered.push(...parts);
    this.bufferedBytes += bytes;
    this.activeOffset += bytes;
    this.unsynced = true;
    if (sync) await this.syncActive();
    else if (this.bufferedBytes > unsyncedBufferBytesMax) await this.writeBuffered();
  }

  /** Writes the buffered frames, in one write, where they belong. */
  private async writeBuffered(): Promise<void> {
    if (this.bufferedBytes === 0) return;
    let data = this.buffered[0];
    if (this.buffered.length > 1) {
      data = new Uint8Array(this.bufferedBytes);
      let at = 0;
      for (const part of this.buffered) {
        data.set(part, at);
        at += part.length;
      }
    }
    await this.active.write(data, this.activeOffset - this.bufferedBytes);
    this.buffered = [];
    this.bufferedBytes = 0;
  }

  private async syncActive(): Promise<void> {
    await this.writeBuffered();
    await this.active.datasync();
    this.unsynced = false;
    this.clearMarkerTimer();
    // The active segment's header is durable now: the next segment may be prepared (rule 6).
    if (this.preparing === null && !this.closed) this.prepareNext();
    if (this.retentionDue) this.planRetention();
  }

  /** Rule 7: a marker that saveSnapshot left unsynced is synced by this timer if no save() does it first. */
  private armMarkerSync(): void {
    if (this.markerTimer !== null || this.closed) return;
    this.markerTimer = setTimeout(() => {
      this.markerTimer = null;
      if (this.closed || this.failure !== null || !this.unsynced || !this.retentionDue) return;
      // A call is running: it may sync; if it does not, look again later.
      if (this.busy) return this.armMarkerSync();
      this.idleSyncing = this.guard(() => this.syncActive())
        .catch((err: unknown) => this.logger.warn(`fs-wal ${this.dir}: syncing a snapshot marker in the background failed (${String(err)}); the next call fails`))
        .finally(() => {
          this.idleSyncing = null;
        });
    }, this.markerSyncDelayMs);
    this.markerTimer.unref?.();
  }

  private clearMarkerTimer(): void {
    if (this.markerTimer === null) return;
    clearTimeout(this.markerTimer);
    this.markerTimer = null;
  }

  private segmentHeader(): Uint8Array {
    const seq = this.segments[this.segments.length - 1].seq;
    return encodeSegmentHeader({ seq, hardState: this.hardState, marker: this.log.marker });
  }

  /**
   * Makes a fresh segment active, big enough for a header and `frameBytes`. On the Ready loop:
   * the old segment's fdatasync and the open of the prepared one (rule 6); the preparation itself
   * only when it is not done yet, failed, or is too small for `frameBytes`.
   */
  private async rollover(frameBytes: number): Promise<void> {
    if (this.unsynced) await this.syncActive();
    await this.active.close();
    const current = this.segments[this.segments.length - 1];
    let seq = current.seq + 1;
    let prepared = await this.preparing;
    this.preparing = null;
    if (this.activeOffset === 0) {
      // Never written (a fresh directory's first segment): replace it rather than leave a
      // header-less segment behind. Nothing was prepared after it (rule 6).
      if (prepared !== null) await this.fs.unlink(prepared.path);
      prepared = null;
      await this.fs.unlink(join(this.dir, current.name));
      this.segments.pop();
      seq = current.seq;
    }
    const bytesNeeded = encodeSegmentHeader({ seq, hardState: this.hardState, marker: this.log.marker }).length + frameBytes;
    // Not ready, or too small for this frame: a big enough one is renamed over it.
    if (prepared === null || prepared.seq !== seq || prepared.bytes < bytesNeeded) {
      prepared = await prepareSegment(this.fs, this.dir, seq, Math.max(this.segmentBytes, bytesNeeded));
    }
    const name = segmentName(seq);
    const previous = this.segments.at(-1);
    assert(previous === undefined || previous.seq + 1 === seq, () => `segment ${seq} does not follow segment ${previous?.seq}`);
    this.segments.push({ seq, name, maxEntryIndex: 0 });
    this.active = await this.fs.open(join(this.dir, name), 'update');
    this.activeOffset = 0;
    this.activeBytes = prepared.bytes;
  }

  private prepareNext(): void {
    const seq = this.segments[this.segments.length - 1].seq + 1;
    this.preparing = prepareSegment(this.fs, this.dir, seq, this.segmentBytes).catch((err: unknown) => {
      this.logger.warn(`fs-wal ${this.dir}: preparing segment ${seq} in the background failed (${String(err)}); will retry at rollover`);
      return null;
    });
  }

  /** `tmpTag` keeps a prepared file's temporary name apart from one save() may write for the same snapshot meanwhile. */
  private async writeSnapshotFile(snapshot: Snapshot, tmpTag = ''): Promise<void> {
    const marker = { index: snapshot.metadata.index, term: snapshot.metadata.term };
    const path = join(this.dir, snapshotName(marker));
    const tmpPath = `${path.slice(0, -'.snap'.length)}${tmpTag}.snap.tmp`;
    await this.fs.unlink(tmpPath).catch(ignoreNotFound);
    const file = await this.fs.open(tmpPath, 'create');
    try {
      await file.write(encodeSnapshotFile(snapshot), 0);
      await file.sync();
    } finally {
      await file.close();
    }
    await this.fs.rename(tmpPath, path);
    await this.fs.syncDir(this.dir);
    if (tmpTag === '') this.listSnapshotFile(snapshot);
  }

  /** A prepared snapshot file that will not be saved: listed, so that retention deletes it. */
  private forgetPrepared(): void {
    if (this.snapshotPrepared !== null) this.listSnapshotFile(this.snapshotPrepared);
    this.snapshotPrepared = null;
  }

  /** Counts a durable snapshot file among those retention keeps or deletes. */
  private listSnapshotFile(snapshot: Snapshot): void {
    const { index, term } = snapshot.metadata;
    if (!this.snapshotFiles.some((m) => m.index === index && m.term === term)) this.snapshotFiles.push({ index, term });
  }

  /** A marker was applied: plan retention now if its frame is durable, else after the next fdatasync (rule 3). */
  private markerApplied(): void {
    this.retentionDue = true;
    if (!this.unsynced) this.planRetention();
  }

  /**
   * With every appended frame durable: queues the segments the marker in force wholly covers
   * (oldest first, never the active one) and all but the latest snapshot files older than it,
   * and starts the purge if it is not running. Runs on the caller's turn; deletes nothing itself.
   */
  private planRetention(): void {
    assert(!this.unsynced, () => 'retention planned before the marker frame was synced');
    this.retentionDue = false;
    const covered = this.log.snapshotIndex;
    while (this.segments.length > 1 && this.segments[0].maxEntryIndex <= covered) {
      this.purgeQueue.push({ path: join(this.dir, this.segments[0].name), syncDir: true });
      this.segments.shift();
    }
    const current = this.log.marker;
    if (current !== null) {
      const older = this.snapshotFiles
        .filter((m) => m.index < current.index)
        .sort((a, b) => b.index - a.index)
        .slice(0, snapshotFilesKept - 1);
      // Files after the marker in force (a prepared snapshot superseded by the leader's) stay
      // until a later marker passes them: a snapshot at that point may be written again (rule 4).
      const keep = this.snapshotFiles.filter((m) => m.index >= current.index || older.includes(m));
      for (const m of this.snapshotFiles) if (!keep.includes(m)) this.purgeQueue.push({ path: join(this.dir, snapshotName(m)), syncDir: false });
      this.snapshotFiles = keep;
    }
    if (this.purging === null && this.purgeQueue.length > 0) this.purging = this.purge();
  }

  /** Deletes the queued files in order beside the Ready loop; a failure fails the storage's next call. */
  private async purge(): Promise<void> {
    try {
      while (this.purgeQueue.length > 0) {
        const { path, syncDir } = this.purgeQueue[0];
        if (syncDir) {
          // A segment: each deletion durable before the next, so a crash never leaves a hole.
          await this.fs.unlink(path);
          await this.fs.syncDir(this.dir);
        } else {
          // A superseded snapshot file: no directory fsync (a crash that undoes the unlink leaves
          // a superseded file, as a crash just before it would; the next retention drops it).
          await this.fs.unlink(path).catch(ignoreNotFound);
        }
        this.purgeQueue.shift();
      }
    } catch (err) {
      this.failure ??= err instanceof Error ? err : new Error(String(err));
      this.logger.warn(`fs-wal ${this.dir}: deleting files a snapshot made redundant failed (${String(err)}); the next call fails`);
    } finally {
      this.purging = null;
    }
  }
}

/**
 * A zero-filled segment, fsynced so its size is durable, then renamed to its final name (over
 * any segment of zeros there) and the directory fsynced (rule 6).
 */
async function prepareSegment(fs: WalFs, dir: string, seq: number, bytes: number): Promise<Prepared> {
  const path = join(dir, segmentName(seq));
  const tmpPath = `${path}.tmp`;
  await fs.unlink(tmpPath).catch(ignoreNotFound);
  const file = await fs.open(tmpPath, 'create');
  try {
    await writeZeros(file, 0, bytes);
    await file.sync();
  } finally {
    await file.close();
  }
  await fs.rename(tmpPath, path);
  await fs.syncDir(dir);
  return { seq, path, bytes };
}

const zeros = new Uint8Array(zeroChunkBytes);

async function writeZeros(file: WalFile, from: number, to: number): Promise<void> {
  for (let pos = from; pos < to; pos += zeroChunkBytes) {
    await file.write(zeros.subarray(0, Math.min(zeroChunkBytes, to - pos)), pos);
  }
}

function assert(condition: boolean, message: () => string): asserts condition {
  if (!condition) throw new Error(`fs-wal invariant violated: ${message()}`);
}

function ignoreNotFound(err: unknown): void {
  if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
}

const consoleLogger: Logger = {
  debug() {},
  info: (msg) => console.info(msg),
  warn: (msg) => console.warn(msg),
};
