// The real member's seams (src/seams.ts), simulated: a disk, a clock and a transport per member,
// all on the simulation's virtual time. The member code that runs over them is the shipped one
// (src/server/member.ts, kv-member.ts); only what sits behind the seams is simulated.
//
// - SimDisk is a member's medium: it outlives crashes. It applies batches with the adapters'
//   own rules (adapters/storage/log-rules.ts) and keeps what was synced apart from what was only
//   written, so a crash may lose unsynced saves.
// - SimStorage is the Storage seam over a SimDisk for one incarnation of the member: a save
//   lands on the disk when the simulated write completes; a crash before that loses it, and the
//   promise of a crashed incarnation never settles (its process is gone). A Node member's
//   (SimPreparingStorage) also prepares its own snapshots beside its saves, as fs-wal does.
// - SimClock: virtual milliseconds and timers that the simulation fires as events (so a frozen
//   process holds them, a throttled one fires them at most once a second).
// - SimTransport: the Transport seam over the simulated network, with its fault switch.
// - SimBackend: the state machine's Backend seam, whose commits land at simulated times.

import type { Entry, HardState, MemberId, Message, Snapshot } from '../../src/raft/types.ts';
import { emptyHardState } from '../../src/raft/types.ts';
import type {
  Backend,
  BackendBatch,
  BackendBucket,
  BackendReadView,
  BackendStaging,
  Clock,
  DeliveryReport,
  DeliveryReports,
  FaultSwitch,
  PersistBatch,
  PersistedState,
  SnapshotPreparation,
  Storage,
  Transport,
} from '../../src/seams.ts';
import { MemoryBackend } from '../../src/backend/memory.ts';
import { checkOwnSnapshot, planBatch, type LogView } from '../../adapters/storage/log-rules.ts';
import { StorageError } from '../../adapters/storage/errors.ts';

interface DiskImage {
  hardState: HardState;
  snapshot: Snapshot | null;
  /** Contiguous, first index = snapshot index + 1. Never mutated in place, so images can share it. */
  entries: Entry[];
}

/** What a save did, for the checkers: the batch as it landed. */
export interface LandedSave {
  batch: PersistBatch | null;
  /** A snapshot the member made itself (saveSnapshot). */
  ownSnapshot: Snapshot | null;
}

export class SimDisk {
  private written: DiskImage = { hardState: emptyHardState(), snapshot: null, entries: [] };
  /** What a crash that loses unsynced writes leaves. */
  private synced: DiskImage = this.written;
  /** Sabotage for the checker self-test: a disk that acknowledges syncs it never does. */
  ignoresSync = false;

  /** Applies a Ready's batch; throws a StorageError (and changes nothing) when it breaks the rules. */
  applyBatch(batch: PersistBatch, sync: boolean): void {
    const w = this.written;
    const plan = planBatch(viewOf(w), batch);
    let snapshot = w.snapshot;
    let entries = w.entries;
    if (batch.snapshot !== null) {
      const dropped = batch.snapshot.metadata.index - snapshotIndexOf(w);
      entries = plan.snapshotReset ? [] : entries.slice(dropped);
      snapshot = copySnapshot(batch.snapshot);
    }
    if (batch.entries.length > 0) {
      const keep = plan.appendFromIndex - (snapshot?.metadata.index ?? 0) - 1;
      // Copies, as a disk keeps its own: the caller may reuse its buffers.
      entries = entries.slice(0, keep).concat(batch.entries.map((e) => ({ ...e, data: e.data.slice() })));
    }
    this.written = { hardState: batch.hardState !== null ? { ...batch.hardState } : w.hardState, snapshot, entries };
    if (sync) this.sync();
  }

  /** Throws the StorageError that applyBatch would, changing nothing. */
  checkBatch(batch: PersistBatch): void {
    planBatch(viewOf(this.written), batch);
  }

  /** A snapshot the member made itself: compacts the log, always synced. */
  applyOwnSnapshot(snap: Snapshot): void {
    const w = this.written;
    checkOwnSnapshot(viewOf(w), snap);
    const covered = snap.metadata.index - snapshotIndexOf(w);
    this.written = { hardState: w.hardState, snapshot: copySnapshot(snap), entries: w.entries.slice(Math.min(covered, w.entries.length)) };
    this.sync();
  }

  private sync(): void {
    if (!this.ignoresSync) this.synced = this.written;
  }

  /** The machine stops; with `loseUnsynced`, writes since the last sync never reached the disk. Returns whether any were lost. */
  crash(loseUnsynced: boolean): boolean {
    if (!loseUnsynced && !this.ignoresSync) return false;
    const lost = this.written !== this.synced;
    this.written = this.synced;
    return lost;
  }

  /** A clean close: the page cache is written back. */
  flush(): void {
    this.sync();
  }

  load(): PersistedState {
    const w = this.written;
    return { hardState: { ...w.hardState }, snapshot: w.snapshot, entries: w.entries.slice() };
  }

  snapshotIndex(): number {
    return snapshotIndexOf(this.written);
  }

  lastIndex(): number {
    return this.snapshotIndex() + this.written.entries.length;
  }

  persistedHardState(): HardState {
    return this.written.hardState;
  }

  /** The stored entry at `index`, or null when compacted or beyond the end. */
  entry(index: number): Entry | null {
    const e = this.written.entries[index - this.snapshotIndex() - 1];
    if (e === undefined) return null;
    if (e.index !== index) throw new Error(`sim disk: entry at slot ${index - this.snapshotIndex() - 1} has index ${e.index}, expected ${index}`);
    return e;
  }

  /** The term at `index` if known (an entry or the snapshot's own index), else null. */
  term(index: number): number | null {
    if (index === 0) return 0;
    return viewOf(this.written).termAt(index) ?? null;
  }

  /** Sabotage for the checker self-test: replace a stored entry's data, durably. */
  corruptEntry(index: number, data: Uint8Array): boolean {
    const e = this.entry(index);
    if (!e) return false;
    const entries = this.written.entries.slice();
    entries[index - this.snapshotIndex() - 1] = { ...e, data };
    this.written = { ...this.written, entries };
    this.synced = this.written;
    return true;
  }
}

function copySnapshot(s: Snapshot): Snapshot {
  const c = s.metadata.confState;
  const confState = { ...c, voters: [...c.voters], learners: [...c.learners], votersOutgoing: [...c.votersOutgoing], learnersNext: [...c.learnersNext] };
  return { metadata: { ...s.metadata, confState }, data: s.data.slice() };
}

function snapshotIndexOf(image: DiskImage): number {
  return image.snapshot?.metadata.index ?? 0;
}

function viewOf(image: DiskImage): LogView {
  const snapshotIndex = snapshotIndexOf(image);
  return {
    snapshotIndex,
    lastIndex: snapshotIndex + image.entries.length,
    termAt(index) {
      if (index === snapshotIndex && image.snapshot !== null) return image.snapshot.metadata.term;
      return image.entries[index - snapshotIndex - 1]?.term;
    },
  };
}

/** How the simulation runs one incarnation's writes. */
export interface DiskTiming {
  /** How long the next write takes, in virtual ms; 0 completes it before the promise's reactions run. */
  writeLatencyMs(): number;
  /** Resolves `ms` virtual milliseconds from now, or never if the process crashes first. */
  after(ms: number): Promise<void>;
  /** Called as each write lands, before the member hears of it. */
  landed?(save: LandedSave): void;
}

const immediate: DiskTiming = { writeLatencyMs: () => 0, after: () => Promise.resolve() };

/** The Storage seam over a SimDisk, for one incarnation of a member. */
export class SimStorage implements Storage {
  private closed = false;

  constructor(
    readonly disk: SimDisk,
    private readonly timing: DiskTiming = immediate,
  ) {}

  async load(): Promise<PersistedState> {
    this.assertOpen();
    return this.disk.load();
  }

  async save(batch: PersistBatch, sync: boolean): Promise<void> {
    this.assertOpen();
    // Checked now, so a bad batch is refused before any time passes and nothing lands (the
    // disk cannot change meanwhile: the member makes one call at a time).
    this.disk.checkBatch(batch);
    await this.wait();
    this.disk.applyBatch(batch, sync || batch.snapshot !== null);
    this.timing.landed?.({ batch, ownSnapshot: null });
  }

  async saveSnapshot(snapshot: Snapshot): Promise<void> {
    this.assertOpen();
    await this.wait();
    this.disk.applyOwnSnapshot(snapshot);
    this.timing.landed?.({ batch: null, ownSnapshot: snapshot });
  }

  async close(): Promise<void> {
    if (!this.closed) this.disk.flush();
    this.closed = true;
  }

  protected wait(): Promise<void> {
    const ms = this.timing.writeLatencyMs();
    return ms > 0 ? this.timing.after(ms) : Promise.resolve();
  }

  protected assertOpen(): void {
    if (this.closed) throw new StorageError('closed', 'sim storage used after close()');
  }
}

/**
 * SimStorage with SnapshotPreparation, as fs-wal has it (a Node member's storage): preparing takes
 * a simulated write and changes nothing load() returns, so a crash meanwhile leaves the disk as it
 * was. It holds the member to the contract in src/seams.ts: one preparation at a time, and no
 * saveSnapshot while one runs.
 */
export class SimPreparingStorage extends SimStorage implements SnapshotPreparation {
  private preparing = false;

  async prepareSnapshot(snapshot: Snapshot): Promise<void> {
    this.assertOpen();
    if (this.preparing) throw new Error(`sim storage: prepareSnapshot at ${snapshot.metadata.index} while another preparation runs`);
    this.preparing = true;
    try {
      await this.wait();
    } finally {
      this.preparing = false;
    }
  }

  override async saveSnapshot(snapshot: Snapshot): Promise<void> {
    if (this.preparing) throw new Error(`sim storage: saveSnapshot at ${snapshot.metadata.index} while a preparation runs`);
    return super.saveSnapshot(snapshot);
  }
}

/** A timer of a SimClock; the simulation fires it as an event. */
export interface SimTimer {
  readonly clock: SimClock;
  readonly intervalMs: number;
  readonly fn: () => void;
  cancelled: boolean;
}

/** What a SimClock needs from the simulation. */
export interface ClockHost {
  nowMs(): number;
  /** Fire `timer` at virtual time `atMs` (the simulation holds it while the process is frozen). */
  scheduleTimer(atMs: number, timer: SimTimer): void;
  /** The period a timer of `intervalMs` fires at now: later while the process is throttled, longer or shorter with drift. */
  periodMs(intervalMs: number): number;
}

/** The Clock seam on virtual time. `stop()` cancels every timer (the process is gone). */
export class SimClock implements Clock {
  private readonly timers = new Set<SimTimer>();

  constructor(private readonly host: ClockHost) {}

  now(): number {
    return this.host.nowMs();
  }

  every(intervalMs: number, fn: () => void): () => void {
    if (!(intervalMs > 0)) throw new Error(`sim clock: interval must be positive, got ${intervalMs}`);
    const timer: SimTimer = { clock: this, intervalMs, fn, cancelled: false };
    this.timers.add(timer);
    this.host.scheduleTimer(this.host.nowMs() + this.host.periodMs(intervalMs), timer);
    return () => {
      timer.cancelled = true;
      this.timers.delete(timer);
    };
  }

  /** Runs a due timer and schedules its next firing. */
  fire(timer: SimTimer): void {
    if (timer.cancelled) return;
    timer.fn();
    if (!timer.cancelled) this.host.scheduleTimer(this.host.nowMs() + this.host.periodMs(timer.intervalMs), timer);
  }

  stop(): void {
    for (const t of this.timers) t.cancelled = true;
    this.timers.clear();
  }
}

/** What a SimTransport needs from the simulation. */
export interface TransportHost {
  send(from: MemberId, messages: readonly Message[]): void;
  block(from: MemberId, to: MemberId): void;
  heal(from: MemberId, to: MemberId): void;
  healAll(member: MemberId): void;
  isBlocked(from: MemberId, to: MemberId): boolean;
}

/**
 * The Transport seam over the simulated network, for one incarnation of a member. It reports
 * deliveries (DeliveryReports) as a connection-oriented transport can: appends that could not
 * go out over a cut link or to a peer that is down, and whether each snapshot arrived.
 */
export class SimTransport implements Transport, DeliveryReports {
  private onMessage: ((m: Message) => void) | null = null;
  private onReport: ((r: DeliveryReport) => void) | null = null;
  private closed = false;
  readonly peers = new Map<MemberId, string>();
  readonly faults: FaultSwitch;

  constructor(
    readonly id: MemberId,
    private readonly host: TransportHost,
  ) {
    const self = id;
    this.faults = {
      block(peer, direction = 'both') {
        if (direction !== 'in') host.block(self, peer);
        if (direction !== 'out') host.block(peer, self);
      },
      heal(peer) {
        if (peer === undefined) host.healAll(self);
        else {
          host.heal(self, peer);
          host.heal(peer, self);
        }
      },
      isBlocked: (peer, direction) => (direction === 'out' ? host.isBlocked(self, peer) : host.isBlocked(peer, self)),
    };
  }

  start(onMessage: (message: Message) => void): void {
    if (this.onMessage !== null) throw new Error('sim transport: started twice');
    this.onMessage = onMessage;
  }

  send(messages: readonly Message[]): void {
    if (!this.closed && messages.length > 0) this.host.send(this.id, messages);
  }

  readonly reportsSnapshots = true;

  onDeliveryReport(fn: (report: DeliveryReport) => void): void {
    this.onReport = fn;
  }

  /** The network learned what became of a frame this incarnation sent. */
  report(r: DeliveryReport): void {
    if (!this.closed) this.onReport?.(r);
  }

  addPeer(id: MemberId, address: string): void {
    this.peers.set(id, address);
  }

  removePeer(id: MemberId): void {
    this.peers.delete(id);
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  /** Whether a message for this incarnation can be handed over (started, not closed). */
  get open(): boolean {
    return !this.closed && this.onMessage !== null;
  }

  /** The network delivers a message. */
  deliver(m: Message): void {
    if (this.open) this.onMessage!(m);
  }

  /** The process died: nothing goes out or comes in any more. */
  kill(): void {
    this.closed = true;
  }
}

/** How the simulation lands one incarnation's backend commits. */
export interface BackendTiming {
  nowMs(): number;
  /** How long the next commit takes to land, in virtual ms (0: at once). */
  commitLatencyMs(): number;
  /** Resolves `ms` virtual milliseconds from now, or never if the process crashes first. */
  after(ms: number): Promise<void>;
}

/**
 * The state machine's Backend seam with commits that land at simulated times, in call order,
 * over a MemoryBackend that holds what landed. Until a batch lands, reads do not see it (the
 * MVCC store answers from its write buffer meanwhile), and a crash loses it: its `after` never
 * resolves. A persistent one is the LMDB case: what landed survives the crash (the next
 * incarnation opens it), so a member may cut its log at the backend's durable index, and a
 * crash can fall between a backend commit and the WAL write of the same entries, either way.
 */
export class SimBackend implements Backend {
  private tail: Promise<void> = Promise.resolve();
  /** When the last commit lands: a later one lands no earlier (group commit: their syncs overlap). */
  private lastLandsAtMs = 0;
  private failed: Error | null = null;

  constructor(
    /** What landed: shared with the next incarnation when persistent. */
    readonly landed: MemoryBackend,
    readonly persistent: boolean,
    private readonly timing: BackendTiming,
  ) {}

  get appliedIndex(): number {
    return this.landed.appliedIndex;
  }

  get(bucket: BackendBucket, key: Uint8Array): Uint8Array | undefined {
    return this.landed.get(bucket, key);
  }

  range(bucket: BackendBucket, start: Uint8Array, end: Uint8Array | null, visit: (key: Uint8Array, value: Uint8Array) => boolean | void): void {
    this.landed.range(bucket, start, end, visit);
  }

  commit(batch: BackendBatch): Promise<void> {
    if (this.failed) return Promise.reject(this.failed);
    const now = this.timing.nowMs();
    const landsAtMs = Math.max(this.lastLandsAtMs, now + this.timing.commitLatencyMs());
    this.lastLandsAtMs = landsAtMs;
    const due = landsAtMs > now ? this.timing.after(landsAtMs - now) : undefined;
    // Copied now: the caller may reuse its arrays once commit returns.
    const copy: BackendBatch = { clear: batch.clear, appliedIndex: batch.appliedIndex, ops: batch.ops.map((op) => ({ ...op })) };
    this.tail = this.tail
      .then(() => due)
      .then(() => this.landed.commit(copy))
      .catch((err: Error) => {
        this.failed ??= err;
        throw err;
      });
    return this.tail;
  }

  async durable(): Promise<number> {
    await this.tail;
    return this.landed.appliedIndex;
  }

  view(): BackendReadView {
    return this.landed.view();
  }

  /**
   * A staging area for a streamed snapshot: its writes go straight into the landed backend's
   * staging area (what a crash leaves of it, the next stage() discards anyway); the switch lands
   * like a commit, after every commit called before it, and a crash before then loses it.
   */
  stage(): BackendStaging {
    const inner = this.landed.stage();
    return {
      write: (ops) => inner.write(ops.map((op) => ({ ...op }))),
      adopt: (appliedIndex) => {
        if (this.failed) return Promise.reject(this.failed);
        const now = this.timing.nowMs();
        const landsAtMs = Math.max(this.lastLandsAtMs, now + this.timing.commitLatencyMs());
        this.lastLandsAtMs = landsAtMs;
        const due = landsAtMs > now ? this.timing.after(landsAtMs - now) : undefined;
        this.tail = this.tail
          .then(() => due)
          .then(() => inner.adopt(appliedIndex))
          .catch((err: Error) => {
            this.failed ??= err;
            throw err;
          });
        return this.tail;
      },
      abandon: () => inner.abandon(),
    };
  }

  async close(): Promise<void> {
    await this.tail;
  }
}
