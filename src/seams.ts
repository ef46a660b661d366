// The seams: the only interfaces adapters implement and the only module they import from
// the core besides plain types. Each is minimal; optional capabilities are separate small
// interfaces (see FaultSwitch).

import type { Entry, HardState, Message, MemberId, Snapshot } from './raft/types.ts';

/** Monotonic time and a repeating timer. Only the member driver turns milliseconds into ticks. */
export interface Clock {
  /** Monotonic milliseconds; never goes backwards. */
  now(): number;
  /** Calls `fn` every `intervalMs` until the returned function is called. */
  every(intervalMs: number, fn: () => void): () => void;
}

/** Everything a member had synced, handed back at boot. */
export interface PersistedState {
  hardState: HardState;
  /** The latest snapshot, or null if the member never made or received one. */
  snapshot: Snapshot | null;
  /** Entries after the snapshot's index, contiguous, in index order. */
  entries: Entry[];
}

export interface PersistBatch {
  hardState: HardState | null;
  /** Replaces any stored entries at the same or later indexes (a leader overwrote them). */
  entries: Entry[];
  /**
   * A snapshot received from the leader, stored first. Entries at or below its index are
   * dropped, and so are later ones unless the stored log holds the snapshot's own entry with
   * the same term (otherwise a tail that conflicts with the leader would survive).
   */
  snapshot: Snapshot | null;
}

/**
 * Durable storage for one member. The member calls one operation at a time and waits for
 * it; when a promise resolves, the data is on stable storage (or the adapter says it is
 * memory-only in its name).
 */
export interface Storage {
  load(): Promise<PersistedState>;
  /** Persist a Ready's snapshot, entries and hard state with one sync when `sync` is true. */
  save(batch: PersistBatch, sync: boolean): Promise<void>;
  /**
   * Store a snapshot the member made itself; entries at or below its index are dropped. It may
   * become durable only with the next synced save() (or close()): a crash before then loads the
   * state before it, whose log the adapter keeps until the snapshot is durable.
   */
  saveSnapshot(snapshot: Snapshot): Promise<void>;
  /** Makes any unsynced saves durable, then releases the storage (and its lock). */
  close(): Promise<void>;
}

/**
 * Optional, for a Storage whose saveSnapshot writes the snapshot's image apart from its log
 * (fs-wal: a file beside the WAL, synced with its directory). prepareSnapshot writes and syncs
 * that image *while the member goes on calling save()* — the one call allowed to overlap another,
 * and at most one at a time — so that the saveSnapshot of the same snapshot that follows only
 * records it in the log (fs-wal: one marker frame, synced with the next save) and the member's Ready loop
 * no longer waits for the image's syncs. Preparing changes nothing that load() returns: a crash
 * after it, or a prepared snapshot never saved (a newer one arrived from the leader), leaves the
 * state as it was; the adapter deletes what it wrote later. A saveSnapshot of any other snapshot
 * writes it in full, as without this capability. The member calls it only for its own snapshots,
 * never while a saveSnapshot runs, and awaits it before that saveSnapshot.
 */
export interface SnapshotPreparation {
  prepareSnapshot(snapshot: Snapshot): Promise<void>;
}

/** Best-effort, unordered delivery of Raft messages to members. */
export interface Transport {
  /** Start delivering incoming messages to `onMessage`. Called once. */
  start(onMessage: (message: Message) => void): void;
  /** Queue messages for delivery; never throws on an unreachable peer. */
  send(messages: readonly Message[]): void;
  addPeer(id: MemberId, address: string): void;
  removePeer(id: MemberId): void;
  close(): Promise<void>;
  /** Every transport has a fault switch; tests and the demo drive it. */
  readonly faults: FaultSwitch;
}

/**
 * Optional, for a transport that learns what became of its frames. `unreachable`: a peer it
 * could not reach (a link down, a connection refused); the member tells Raft, so a leader stops
 * streaming appends into it and probes instead (etcd's ReportUnreachable). `snapshot`: whether a
 * snapshot message reached its peer; the member tells Raft, so a leader resends a lost snapshot
 * without waiting to learn that the follower still lags (etcd's ReportSnapshot). A member whose
 * transport lacks this counts every snapshot as delivered once sent.
 */
export interface DeliveryReports {
  onDeliveryReport(fn: (report: DeliveryReport) => void): void;
  /**
   * Whether every whole snapshot sent gets a 'snapshot' report. False: the transport reports
   * only unreachable peers, and the member counts a whole snapshot as delivered once sent.
   */
  readonly reportsSnapshots: boolean;
}

/**
 * `linkLost` (optional) on an unreachable report: a link that was up went down, so frames
 * already handed over may be lost — a snapshot stream's chunks among them, which are never sent
 * twice: the member fails such a stream at once. Without it, frames sent to a peer not yet
 * reachable may still be delivered once the link comes up.
 */
export type DeliveryReport = { kind: 'unreachable'; peer: MemberId; linkLost?: boolean } | { kind: 'snapshot'; peer: MemberId; delivered: boolean };

export function reportsDelivery(transport: Transport): transport is Transport & DeliveryReports {
  return typeof (transport as Partial<DeliveryReports>).onDeliveryReport === 'function';
}

/** Cut and heal links, per peer and direction. */
export interface FaultSwitch {
  /** Drop frames to (`out`), from (`in`) or both ways to `peer`. */
  block(peer: MemberId, direction?: 'in' | 'out' | 'both'): void;
  /** Heal one peer, or every peer when none is given. */
  heal(peer?: MemberId): void;
  isBlocked(peer: MemberId, direction: 'in' | 'out'): boolean;
}

/**
 * The state machine's durable home: etcd's bbolt buckets. Keys and values are bytes, ordered
 * bytewise within a bucket. See docs/architecture.md, "The state-machine backend".
 */
export type BackendBucket = 'key' | 'meta' | 'lease' | 'members' | 'members_removed' | 'cluster' | 'alarm';

export const backendBuckets: readonly BackendBucket[] = ['key', 'meta', 'lease', 'members', 'members_removed', 'cluster', 'alarm'];

/** One write of a batch: a put, or a delete when `value` is null. */
export interface BackendOp {
  bucket: BackendBucket;
  key: Uint8Array;
  value: Uint8Array | null;
}

/** One batched write transaction. Atomic: a crash leaves all of it or none of it. */
export interface BackendBatch {
  /** Empty every bucket before the ops (a snapshot restore replaces the whole state). */
  clear: boolean;
  /** Applied in order. */
  ops: readonly BackendOp[];
  /**
   * The Raft index of the last entry whose effects this batch completes, stored with the data
   * in the same transaction (etcd's meta/consistent_index). Never below the stored one unless
   * `clear` is set.
   */
  appliedIndex: number;
}

/** Synchronous reads. Keys and values handed to `visit` are valid only during the call. */
export interface BackendReader {
  get(bucket: BackendBucket, key: Uint8Array): Uint8Array | undefined;
  /** Pairs with start <= key < end (end null: to the bucket's end), in key order, until visit returns false. */
  range(bucket: BackendBucket, start: Uint8Array, end: Uint8Array | null, visit: (key: Uint8Array, value: Uint8Array) => boolean | void): void;
}

/** A consistent read view pinned at one committed batch; O(1) to take. Release it when done. */
export interface BackendReadView extends BackendReader {
  release(): void;
}

/** One chunk of a snapshot stream's pairs (src/server/snapshot-stream.ts). */
export interface ProducedChunk {
  pairs: Uint8Array;
  /** CRC-32C of every pair byte of the stream so far, this chunk's included. */
  crc: number;
  last: boolean;
}

/**
 * A snapshot stream's chunks from one read snapshot of the whole backend, possibly produced
 * off the caller's thread (on Node: a worker over the same LMDB environment), so that a member
 * serving clients does not read, frame and checksum a store of gigabytes itself.
 */
export interface ChunkProducer {
  /** Pins the read snapshot; resolves with the applied index stored in it. Call once, first. */
  open(): Promise<number>;
  /** The next chunk, or null after the last. Calls may overlap; they resolve in call order. */
  next(): Promise<ProducedChunk | null>;
  /** Ends the pin and whatever produces the chunks; idempotent. Calls pending then never resolve. */
  release(): void;
}

/**
 * The state machine's storage. Reads (`get`, `range`) see every committed batch. One writer;
 * `commit` may be called again before an earlier commit resolved, and batches commit in call
 * order.
 */
export interface Backend extends BackendReader {
  /** The applied index of the last committed batch (0 for an empty backend). */
  readonly appliedIndex: number;
  /**
   * Whether committed batches outlive the process (LMDB: yes; memory: no). Only then may a
   * member cut its log at the backend's durable index instead of at a full snapshot image.
   */
  readonly persistent: boolean;
  /**
   * Commits a batch. Resolves once it is visible to reads and survives a crash of this process;
   * rejects if the backend failed, after which every later commit rejects too.
   */
  commit(batch: BackendBatch): Promise<void>;
  /** Resolves with the highest applied index on stable storage (survives power loss). */
  durable(): Promise<number>;
  view(): BackendReadView;
  /**
   * Optional: `range` for a scan that consumes each pair before the next and reads nothing else
   * meanwhile (the key-index rebuild at open): key and value may be views of the backend's own
   * buffers, valid only until `visit` returns or reads the backend, so a scan of millions of
   * records copies none of them. Without it, the scan uses `range`.
   */
  rangeViews?(bucket: BackendBucket, start: Uint8Array, end: Uint8Array | null, visit: (key: Uint8Array, value: Uint8Array) => boolean | void): void;
  /**
   * Optional: chunks of pairs of `chunkBytesMax` for a snapshot stream, produced elsewhere than
   * on the calling thread, from a read snapshot at or after the last committed batch. Without
   * it, the stream reads `view()` on the caller's thread.
   */
  chunkProducer?(chunkBytesMax: number): ChunkProducer;
  /**
   * A staging area beside the live content, emptied first, for a whole new state that arrives
   * in pieces (a snapshot streamed from the leader). Staged writes are invisible to reads and
   * commits until `adopt`; one staging area at a time (a new one abandons the previous).
   * Optional: a member whose backend lacks it cannot take a streamed snapshot (it says so).
   */
  stage?(): BackendStaging;
  /** Optional: the bytes the backend occupies on disk (what etcd reports as its db size). */
  sizeBytes?(): number;
  /** Waits for committed batches to be durable, then releases the backend. */
  close(): Promise<void>;
}

/**
 * A whole new backend content, written in batches beside the live one. A crash or an abandoned
 * staging area leaves the live content as it was (the next `stage()` discards what was staged).
 */
export interface BackendStaging {
  /** Puts pairs into the staging area (null values are refused: it starts empty). Resolves once written. */
  write(ops: readonly BackendOp[]): Promise<void>;
  /**
   * Makes the staged content the live one in one atomic step, with `appliedIndex` (any value:
   * it replaces the state, as a `clear` batch does), after every commit called before it. Resolves
   * once the switch is on stable storage; reads and commits see the new content from then on.
   * Read views taken before keep reading the old content.
   */
  adopt(appliedIndex: number): Promise<void>;
  /** Drops what was staged; the live content is untouched. */
  abandon(): void;
  /**
   * Optional: takes one chunk of a snapshot stream's framed pairs (src/server/snapshot-stream.ts)
   * and checks, splits and writes it elsewhere than on the calling thread (on Node: a worker over
   * the same LMDB environment), so that the receiving member's thread only passes bytes on.
   * Calls may overlap; chunks are written in call order. Resolves once the chunk is written, with
   * the CRC-32C of every chunk taken so far; rejects on malformed pairs (none of that chunk is
   * written) or a failed write, and every later call and `adopt` then reject too. A staging area
   * is written either through `write` or through this, not both. Without it, the receiver checks
   * and splits chunks itself and calls `write`. When `pairs` spans its whole ArrayBuffer (the
   * TCP transport hands chunks over so), it may take that buffer instead of copying it: the
   * caller must not read `pairs` afterwards.
   */
  writeChunk?(pairs: Uint8Array): Promise<number>;
}

/**
 * A backend whose reads are asynchronous (IndexedDB in a tab). The same batches, ordering,
 * atomicity and durable() contract as Backend; reads are bounded requests, each one consistent
 * read transaction. The synchronous store cannot read it while it runs, so requests plan which
 * values they need, fetch them, then execute (src/backend/prefetched.ts, docs/architecture.md).
 */
export interface AsyncBackend {
  readonly appliedIndex: number;
  readonly persistent: boolean;
  /** As Backend.commit: resolves once later reads see the batch and it survives a tab crash. */
  commit(batch: BackendBatch): Promise<void>;
  durable(): Promise<number>;
  /** The values of `keys` (undefined where absent), in order, from one read transaction. */
  getMany(bucket: BackendBucket, keys: readonly Uint8Array[]): Promise<(Uint8Array | undefined)[]>;
  /** At most `pairsMax` pairs with start <= key < end (end null: to the bucket's end), in key order, from one read transaction. */
  rangeChunk(bucket: BackendBucket, start: Uint8Array, end: Uint8Array | null, pairsMax: number): Promise<[Uint8Array, Uint8Array][]>;
  /** As Backend.stage: the same BackendStaging contract. */
  stage?(): BackendStaging;
  close(): Promise<void>;
}
