// Snapshots streamed from the backend. A member whose snapshots leave the store in a persistent
// backend does not send a lagging member one image: it pins a backend read view and sends its
// pairs in bounded chunks, each acknowledged by the receiver once written to its staging area,
// with at most `snapshotChunksInflightMax` unacknowledged (backpressure on any transport). Neither
// side holds more than a few chunks. Raft never sees the pieces; the receiver hands it the
// snapshot message only after the last chunk verified and the staged content became live.
//
// On the wire, three Raft-shaped messages (any transport carries them, src/codec/message.ts
// checks their fields; TCP carries chunks in a frame of their own that writes the pairs as they
// are, adapters/transport/README.md):
//   head   MsgSnap (the snapshot's metadata and its small image: the member table and the
//          marker that the store is in the backend) with `context` = the stream head:
//          [u8 0x53][u8 version 1][u64 stream id][u64 applied index of the view]
//   chunk  SnapChunk: index = stream id, commit = sequence (1, 2, …), context = pairs,
//          reject = last chunk, rejectHint = (last chunk only) CRC-32C of every chunk's pairs
//   ack    SnapChunkResp: index = stream id, commit = the sequence written (0: the head; one
//          past the last chunk: the content is adopted), reject = the receiver gave the stream
//          up, context = its reason (UTF-8) or null
//   query  SnapChunk with commit = 0 and no pairs, sent while the sender waits for the adopted
//          ack: a receiver that adopted the stream acks it again (the first may have been lost),
//          one still adopting stays silent, one that does not know the stream refuses it
// Pairs: ([u8 bucket][u32 key bytes][u32 value bytes][key][value])*, buckets as in
// `backendBuckets`, every bucket in order, each in key order.
//
// Chunks must arrive in order (TCP, WebRTC's ordered channel and the memory transport keep
// it): a gap or an unknown stream fails the stream, the sender reports the snapshot failed, and
// Raft sends it again later, which starts a fresh stream from a fresh view.

import { decodeU64, encodeU64 } from '../backend/layout.ts';
import { crc32c } from '../codec/crc32c.ts';
import { MessageType, type MemberId, type Message } from '../raft/types.ts';
import { backendBuckets, type BackendOp, type BackendReadView, type BackendStaging, type ChunkProducer, type ProducedChunk } from '../seams.ts';

/** Pair bytes per chunk (a chunk exceeds it by at most one pair): what either side holds per chunk. */
export const snapshotChunkBytesMax = 512 * 1024;
/** Chunks sent and not yet acknowledged. Sender and receiver hold at most this many. */
export const snapshotChunksInflightMax = 4;
/**
 * Once every chunk is written, the receiver rebuilds its key index from the adopted content
 * (O(records)) before its last acknowledgement: the sender waits this many idle periods for it.
 */
export const snapshotAdoptIdlePeriodsMax = 6;
/** Key bytes of one pair at most (etcd's keys are far shorter; revision keys are 18 bytes). */
const pairKeyBytesMax = 64 * 1024;
/** Value bytes of one pair at most: above etcd's 1.5 MiB request limit, below any frame limit. */
const pairValueBytesMax = 16 * 2 ** 20;
const pairHeaderBytes = 9;
const headTag = 0x53;
const headVersion = 1;
const headBytes = 18;

/** Why a stream failed; the message names the stream and the reason. */
export class SnapshotStreamError extends Error {}

export interface StreamHead {
  streamId: number;
  /** The applied index stored in the streamed content (the view's, at or after the snapshot's index). */
  appliedIndex: number;
}

export function encodeStreamHead(head: StreamHead): Uint8Array {
  const bytes = new Uint8Array(headBytes);
  bytes[0] = headTag;
  bytes[1] = headVersion;
  bytes.set(encodeU64(head.streamId), 2);
  bytes.set(encodeU64(head.appliedIndex), 10);
  return bytes;
}

/** Whether a Snap message is the head of a stream (its body follows as chunks). */
export function isStreamHead(m: Message): boolean {
  return m.type === MessageType.Snap && m.context !== null && m.context.length > 0 && m.context[0] === headTag;
}

export function decodeStreamHead(context: Uint8Array): StreamHead {
  if (context.length !== headBytes || context[0] !== headTag) throw new SnapshotStreamError(`snapshot stream: a head of ${context.length} bytes is not one`);
  if (context[1] !== headVersion) throw new SnapshotStreamError(`snapshot stream: head version ${context[1]}, expected ${headVersion}`);
  return { streamId: decodeU64(context.subarray(2, 10)), appliedIndex: decodeU64(context.subarray(10, 18)) };
}

/** Where the next chunk starts: a bucket, and the last key sent from it (null: its beginning). */
export interface ChunkCursor {
  bucket: number;
  after: Uint8Array | null;
}

/**
 * Reads the next chunk from `view`: pairs from `cursor` on, in bucket then key order, until
 * `bytesMax` pair bytes are reached. Holds only the chunk. Returns the cursor after it, or null
 * when the view is exhausted. O(chunk bytes) plus one seek.
 */
export function readChunk(view: BackendReadView, cursor: ChunkCursor, bytesMax = snapshotChunkBytesMax): { pairs: Uint8Array; next: ChunkCursor | null } {
  // Pairs are copied once, straight into the chunk; it grows only for a pair past the bound.
  let buffer = new Uint8Array(bytesMax + 4096);
  let dv = new DataView(buffer.buffer);
  let bytes = 0;
  let bucket = cursor.bucket;
  let after = cursor.after;
  while (bucket < backendBuckets.length && bytes < bytesMax) {
    let lastKey: Uint8Array | null = null;
    view.range(backendBuckets[bucket], after === null ? new Uint8Array(0) : successor(after), null, (key, value) => {
      const pairBytes = pairHeaderBytes + key.length + value.length;
      if (bytes + pairBytes > buffer.length) {
        const grown = new Uint8Array(bytes + pairBytes);
        grown.set(buffer.subarray(0, bytes));
        buffer = grown;
        dv = new DataView(buffer.buffer);
      }
      buffer[bytes] = bucket;
      dv.setUint32(bytes + 1, key.length);
      dv.setUint32(bytes + 5, value.length);
      buffer.set(key, bytes + pairHeaderBytes);
      buffer.set(value, bytes + pairHeaderBytes + key.length);
      lastKey = buffer.subarray(bytes + pairHeaderBytes, bytes + pairHeaderBytes + key.length);
      bytes += pairBytes;
      return bytes < bytesMax;
    });
    if (bytes < bytesMax) {
      bucket++;
      after = null;
    } else after = lastKey === null ? null : (lastKey as Uint8Array).slice();
  }
  return { pairs: buffer.subarray(0, bytes), next: bucket < backendBuckets.length ? { bucket, after } : null };
}

/**
 * Chunks read from `view` on the calling thread (backends without a `chunkProducer`: memory in
 * tests and the simulator). Owns the view until `release`.
 */
export function viewChunkProducer(view: BackendReadView, appliedIndex: number, chunkBytesMax = snapshotChunkBytesMax): ChunkProducer {
  let cursor: ChunkCursor | null = { bucket: 0, after: null };
  let crc = 0;
  let released = false;
  return {
    open: () => Promise.resolve(appliedIndex),
    next: () => {
      if (released) return new Promise<never>(() => {});
      if (cursor === null) return Promise.resolve(null);
      const { pairs, next } = readChunk(view, cursor, chunkBytesMax);
      cursor = next;
      crc = crc32c(pairs, crc);
      return Promise.resolve({ pairs, crc, last: next === null });
    },
    release: () => {
      if (released) return;
      released = true;
      view.release();
    },
  };
}

/** The smallest key after `key`: `key` followed by a zero byte. */
function successor(key: Uint8Array): Uint8Array {
  const next = new Uint8Array(key.length + 1);
  next.set(key);
  return next;
}

/** The puts a chunk's pairs stand for; throws SnapshotStreamError on malformed bytes. */
export function decodeChunk(pairs: Uint8Array): BackendOp[] {
  const ops: BackendOp[] = [];
  const dv = new DataView(pairs.buffer, pairs.byteOffset, pairs.byteLength);
  let offset = 0;
  while (offset < pairs.length) {
    if (offset + pairHeaderBytes > pairs.length) throw new SnapshotStreamError(`snapshot stream: truncated pair header at byte ${offset}`);
    const bucket = backendBuckets[pairs[offset]];
    if (bucket === undefined) throw new SnapshotStreamError(`snapshot stream: unknown bucket ${pairs[offset]} at byte ${offset}`);
    const keyBytes = dv.getUint32(offset + 1);
    const valueBytes = dv.getUint32(offset + 5);
    if (keyBytes === 0 || keyBytes > pairKeyBytesMax || valueBytes > pairValueBytesMax) {
      throw new SnapshotStreamError(`snapshot stream: pair at byte ${offset} has a ${keyBytes}-byte key and a ${valueBytes}-byte value`);
    }
    const start = offset + pairHeaderBytes;
    const end = start + keyBytes + valueBytes;
    if (end > pairs.length) throw new SnapshotStreamError(`snapshot stream: pair at byte ${offset} overruns the ${pairs.length}-byte chunk`);
    ops.push({ bucket, key: pairs.subarray(start, start + keyBytes), value: pairs.subarray(start + keyBytes, end) });
    offset = end;
  }
  return ops;
}

function streamMessage(type: MessageType, to: MemberId, from: MemberId, term: number): Message {
  return { type, to, from, term, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0, snapshot: null, context: null };
}

/** The receiver's answer: chunk `seq` is written (0: the head is accepted), or, with a reason, the stream is given up. */
export function streamAck(to: MemberId, from: MemberId, term: number, streamId: number, seq: number, refusal: string | null): Message {
  const m = streamMessage(MessageType.SnapChunkResp, to, from, term);
  m.index = streamId;
  m.commit = seq;
  m.reject = refusal !== null;
  m.context = refusal === null ? null : new TextEncoder().encode(refusal);
  return m;
}

export type SenderProgress = { kind: 'pending' } | { kind: 'done' } | { kind: 'failed'; reason: string };

/**
 * One stream to one peer, from a chunk producer it owns until `release`. Once the producer has
 * pinned its read snapshot, sends the head (which names that snapshot's applied index), then
 * chunks as they are produced, with at most `snapshotChunksInflightMax` chunks produced, being
 * produced or sent and not yet acknowledged. `announce` is called when there is something new
 * to `pump` or the stream failed (`failure`).
 */
export class SnapshotSender {
  /** Invariant: acked <= sent <= produced; produced + requested - max(acked, 0) <= snapshotChunksInflightMax. */
  private produced = 0;
  private sent = 0;
  /** -1 until the head is acknowledged. */
  private acked = -1;
  /** `next()` calls not yet answered. */
  private requested = 0;
  /** Produced chunks not yet sent, in order. */
  private readonly ready: Message[] = [];
  private head: Message | null = null;
  private headSent = false;
  /** Set once the last chunk is produced: its sequence. */
  private lastSeq = 0;
  private released = false;
  private queriedMs = 0;
  /** Set when the producer failed: the member ends the stream with it. */
  failure: string | null = null;
  /** The applied index of the streamed content, once the producer pinned it. */
  appliedIndex: number | null = null;
  /** Pair bytes produced so far, for logs and tests. */
  bytesSent = 0;
  lastProgressMs: number;

  constructor(
    readonly to: MemberId,
    readonly streamId: number,
    /** The Snap message the stream stands for; its context becomes the stream head. */
    private readonly snap: Message,
    private readonly producer: ChunkProducer,
    private readonly clock: { now(): number },
    private readonly announce: () => void,
  ) {
    this.lastProgressMs = clock.now();
    producer.open().then(
      (appliedIndex) => {
        if (this.released) return;
        if (appliedIndex < this.snapshotIndex) return this.fail(`the backend holds index ${appliedIndex}, below the snapshot at ${this.snapshotIndex}`);
        this.appliedIndex = appliedIndex;
        this.head = { ...snap, context: encodeStreamHead({ streamId, appliedIndex }) };
        this.lastProgressMs = clock.now();
        this.refill();
        this.announce();
      },
      (err: unknown) => this.fail(`reading the backend: ${err instanceof Error ? err.message : String(err)}`),
    );
  }

  /** The index of the snapshot the stream carries (its store may be newer). */
  get snapshotIndex(): number {
    return this.snap.snapshot?.metadata.index ?? 0;
  }

  /** The messages to send now: the head at first, then the chunks produced, once the head is acknowledged. */
  pump(term: number): Message[] {
    if (this.released || this.failure !== null || this.head === null) return [];
    if (!this.headSent) {
      this.headSent = true;
      return [this.head];
    }
    if (this.acked < 0) return [];
    const out = this.ready.splice(0);
    for (const m of out) m.term = term;
    this.sent += out.length;
    return out;
  }

  /** Asks the producer for more while fewer than snapshotChunksInflightMax chunks are out; each chunk produced calls `announce`. */
  private refill(): void {
    while (!this.released && this.failure === null && this.lastSeq === 0 && this.produced + this.requested - Math.max(this.acked, 0) < snapshotChunksInflightMax) {
      this.requested++;
      this.producer.next().then(
        (chunk) => {
          this.requested--;
          if (this.released || chunk === null || this.lastSeq !== 0) return;
          this.take(chunk);
          this.announce();
        },
        (err: unknown) => this.fail(`reading the backend: ${err instanceof Error ? err.message : String(err)}`),
      );
    }
  }

  private take(chunk: ProducedChunk): void {
    const m = streamMessage(MessageType.SnapChunk, this.to, this.snap.from, 0);
    m.index = this.streamId;
    m.commit = ++this.produced;
    m.context = chunk.pairs;
    if (chunk.last) {
      m.reject = true;
      m.rejectHint = chunk.crc;
      this.lastSeq = m.commit;
    }
    this.bytesSent += chunk.pairs.length;
    this.lastProgressMs = this.clock.now();
    this.ready.push(m);
  }

  private fail(reason: string): void {
    if (this.released || this.failure !== null) return;
    this.failure = reason;
    this.announce();
  }

  /** An acknowledgement from the receiver. */
  onAck(m: Message, nowMs: number): SenderProgress {
    if (m.index !== this.streamId) return { kind: 'pending' };
    if (m.reject) return { kind: 'failed', reason: m.context === null ? 'refused' : new TextDecoder().decode(m.context) };
    if (this.lastSeq !== 0 && m.commit === this.lastSeq + 1 && this.acked === this.lastSeq) return { kind: 'done' };
    if (!this.headSent || m.commit <= this.acked || m.commit > this.sent) return { kind: 'pending' };
    this.acked = m.commit;
    this.lastProgressMs = nowMs;
    this.refill();
    return { kind: 'pending' };
  }

  /**
   * While every chunk is written and the adopted acknowledgement is awaited, a query each
   * `idleMs` (see the header): a lost acknowledgement costs one idle period, not the whole
   * adoption allowance.
   */
  query(nowMs: number, idleMs: number, term: number): Message | null {
    if (this.released || this.lastSeq === 0 || this.acked !== this.lastSeq) return null;
    if (nowMs - Math.max(this.lastProgressMs, this.queriedMs) < idleMs) return null;
    this.queriedMs = nowMs;
    const m = streamMessage(MessageType.SnapChunk, this.to, this.snap.from, term);
    m.index = this.streamId;
    return m;
  }

  /**
   * Whether the stream made no progress for too long: `idleMs`, or several of them while the
   * producer or the receiver's chunk writer starts (a worker thread loading its code on a busy
   * machine) or the receiver adopts.
   */
  stalled(nowMs: number, idleMs: number): boolean {
    const written = this.lastSeq !== 0 && this.acked === this.lastSeq;
    // Before the first chunk is acknowledged, the receiver's chunk writer may be starting a thread.
    const starting = this.head === null || this.acked < 1;
    return nowMs - this.lastProgressMs > (written || starting ? idleMs * snapshotAdoptIdlePeriodsMax : idleMs);
  }

  /** Ends the producer (and its read snapshot); idempotent. */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.ready.length = 0;
    this.producer.release();
  }
}

/**
 * One incoming stream: writes chunks into `staging` in order (through its `writeChunk` when it
 * has one, so the checks and puts run off this thread), acknowledging each once written.
 * `complete` once the last chunk is written and the checksum matched; the member then adopts
 * the staging area and hands `head` to Raft.
 */
export class SnapshotReceiver {
  private expected = 1;
  private crc = 0;
  /** Chunks written so far, in order; a failure stops the chain. */
  private writes: Promise<void> = Promise.resolve();
  /** Chunks taken and not yet written. */
  private writing = 0;
  /** Set once the last chunk is written and verified: its sequence. */
  complete = false;
  lastSeq = 0;
  failure: string | null = null;
  lastProgressMs: number;

  constructor(
    readonly from: MemberId,
    readonly streamId: number,
    /** The Snap message to hand Raft, its context cleared. */
    readonly head: Message,
    readonly appliedIndex: number,
    readonly staging: BackendStaging,
    private readonly clock: { now(): number },
  ) {
    this.lastProgressMs = clock.now();
  }

  /**
   * Whether the stream made no progress (a chunk taken or written) for `idleMs`, or for several
   * of them while chunks are being written (a chunk writer may be starting a thread).
   */
  stalled(nowMs: number, idleMs: number): boolean {
    return !this.complete && nowMs - this.lastProgressMs > (this.writing > 0 ? idleMs * snapshotAdoptIdlePeriodsMax : idleMs);
  }

  /**
   * Takes the next chunk. `ack(seq)` is called once it is written; `done()` after the last one
   * verified; `fail(reason)` once if anything goes wrong (the staging area is then abandoned).
   */
  onChunk(m: Message, ack: (seq: number) => void, done: () => void, fail: (reason: string) => void): void {
    if (this.failure !== null || this.complete || m.commit < this.expected) return;
    const failWith = (reason: string): void => {
      if (this.failure !== null) return;
      this.failure = `snapshot stream ${this.streamId} from member ${this.from}: ${reason}`;
      this.staging.abandon();
      fail(this.failure);
    };
    if (m.commit > this.expected) return failWith(`chunk ${m.commit} arrived, expected ${this.expected}`);
    const pairs = m.context ?? new Uint8Array(0);
    const seq = m.commit;
    const last = m.reject;
    this.expected++;
    this.lastProgressMs = this.clock.now();
    // With a chunk writer of its own (a worker), the staging area checks, splits and checksums the
    // chunk: it is handed over at once and written while the next ones arrive. Otherwise it is
    // checked here and its puts are written one chunk at a time.
    let written: Promise<number>;
    if (this.staging.writeChunk !== undefined) {
      try {
        written = this.staging.writeChunk(pairs);
      } catch (err) {
        return failWith(`writing chunk ${seq}: ${(err as Error).message}`);
      }
    } else {
      let ops: BackendOp[];
      try {
        ops = decodeChunk(pairs);
      } catch (err) {
        return failWith((err as Error).message);
      }
      this.crc = crc32c(pairs, this.crc);
      const crc = this.crc;
      written = this.writes.then(() => (this.failure === null ? this.staging.write(ops).then(() => crc) : crc));
    }
    this.writing++;
    this.writes = this.writes.then(async () => {
      let crc: number;
      try {
        crc = await written;
      } catch (err) {
        return failWith(`writing chunk ${seq}: ${(err as Error).message}`);
      } finally {
        this.writing--;
      }
      if (this.failure !== null) return;
      this.lastProgressMs = this.clock.now();
      if (last && m.rejectHint !== crc) return failWith(`checksum mismatch after chunk ${seq} (sent ${m.rejectHint}, computed ${crc})`);
      ack(seq);
      if (last) {
        this.complete = true;
        this.lastSeq = seq;
        done();
      }
    });
  }

  /** Gives the stream up (a newer one, a timeout, a stop); the staging area is dropped. */
  abandon(): void {
    if (this.failure === null) this.failure = 'abandoned';
    this.staging.abandon();
  }
}
