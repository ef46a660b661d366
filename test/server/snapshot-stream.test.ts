// Snapshots streamed from the backend (src/server/snapshot-stream.ts): the chunk reader and
// the sender's window on their own, then KvMembers on the real Node parts (fs-wal, LMDB in temp
// directories) whose stream is cut in the middle — by a lossy link, and by a restart of the
// receiver — and which still end with the leader's data.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LmdbBackend } from '../../adapters/backend/lmdb.ts';
import { systemClock } from '../../adapters/clock/system.ts';
import { FsWalStorage } from '../../adapters/storage/fs-wal/index.ts';
import { MemoryHub } from '../../adapters/transport/memory.ts';
import { MemoryBackend } from '../../src/backend/memory.ts';
import { silentLogger } from '../../src/raft/config.ts';
import { MessageType, type Message } from '../../src/raft/types.ts';
import { KvMember } from '../../src/server/kv-member.ts';
import {
  SnapshotSender,
  SnapshotStreamError,
  decodeChunk,
  decodeStreamHead,
  readChunk,
  snapshotChunkBytesMax,
  snapshotChunksInflightMax,
  viewChunkProducer,
  type ChunkCursor,
} from '../../src/server/snapshot-stream.ts';
import { backendBuckets, type BackendOp, type Transport } from '../../src/seams.ts';
import { prng } from '../raft/prng.ts';
import { waitFor } from '../helpers/wait.ts';
import { dump } from '../backend/compliance.ts';
import { decodeU64 } from '../../src/backend/layout.ts';
import { crc32c } from '../../src/codec/crc32c.ts';

const b = (s: string) => new TextEncoder().encode(s);
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'meshkv-stream-'));
  dirs.push(dir);
  return dir;
}

describe('chunks of a backend read view', () => {
  it('carry every pair once, bucket by bucket in key order, each chunk within its byte bound plus one pair', async () => {
    const backend = new MemoryBackend();
    const random = prng(18);
    const ops: BackendOp[] = [];
    for (let i = 0; i < 3000; i++) ops.push({ bucket: 'key', key: b(`k${String(i).padStart(5, '0')}`), value: new Uint8Array(Math.floor(random() * 700)) });
    for (let i = 0; i < 40; i++) ops.push({ bucket: 'lease', key: b(`l${i}`), value: b(`lease ${i}`) });
    await backend.commit({ clear: false, ops, appliedIndex: 9 });
    const view = backend.view();
    const bytesMax = 64 * 1024;
    const seen: string[] = [];
    let chunks = 0;
    for (let cursor: ChunkCursor | null = { bucket: 0, after: null }; cursor !== null; ) {
      const { pairs, next } = readChunk(view, cursor, bytesMax);
      expect(pairs.length).toBeLessThan(bytesMax + 9 + 6 + 700);
      for (const op of decodeChunk(pairs)) seen.push(`${op.bucket}/${new TextDecoder().decode(op.key)}/${op.value!.length}`);
      cursor = next;
      chunks++;
    }
    view.release();
    const expected: string[] = [];
    for (const bucket of backendBuckets) backend.range(bucket, new Uint8Array(0), null, (k, v) => void expected.push(`${bucket}/${new TextDecoder().decode(k)}/${v.length}`));
    expect(seen).toEqual(expected);
    // About a megabyte of pairs in 64 KiB chunks: the chunk count follows the bytes.
    expect(chunks).toBeGreaterThan(15);
    expect(chunks).toBeLessThan(25);
  });

  it('refuses malformed chunk bytes with the reason', () => {
    const bad = Uint8Array.of(99, 0, 0, 0, 1, 0, 0, 0, 0, 0x61);
    expect(() => decodeChunk(bad)).toThrow(SnapshotStreamError);
    expect(() => decodeChunk(bad)).toThrow(/unknown bucket 99 at byte 0/);
    expect(() => decodeChunk(Uint8Array.of(0, 0, 0, 0, 5, 0, 0, 0, 0, 0x61))).toThrow(/overruns the 10-byte chunk/);
  });

  for (const producerKind of ['view', 'worker'] as const) {
    it(`the sender holds at most its window of chunks, however large the store (chunks read ${producerKind === 'view' ? 'on this thread' : 'by a worker thread'})`, async () => {
      const dir = tempDir();
      const backend = LmdbBackend.open(dir);
      try {
        // 32 MiB of values: 64 chunks' worth.
        const value = new Uint8Array(32 * 1024).fill(7);
        for (let batch = 0; batch < 8; batch++) {
          const ops: BackendOp[] = [];
          for (let i = 0; i < 128; i++) ops.push({ bucket: 'key', key: b(`k${batch}-${String(i).padStart(4, '0')}`), value });
          await backend.commit({ clear: false, ops, appliedIndex: batch + 1 });
        }
        const producer = producerKind === 'view' ? viewChunkProducer(backend.view(), backend.appliedIndex) : backend.chunkProducer(snapshotChunkBytesMax);
        const snap: Message = { type: MessageType.Snap, to: 2, from: 1, term: 1, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0, snapshot: null, context: null };
        let changes = 0;
        const sender = new SnapshotSender(2, 1, snap, producer, { now: () => 0 }, () => changes++);
        // The head goes out once the producer pinned its snapshot, naming its applied index.
        await waitFor('the producer opened', () => sender.appliedIndex !== null, 20_000);
        expect(sender.appliedIndex).toBe(8);
        const [head] = sender.pump(1);
        expect(decodeStreamHead(head.context!)).toEqual({ streamId: 1, appliedIndex: 8 });
        expect(sender.pump(1)).toEqual([]);
        const ack = (seq: number): Message => ({ ...snap, type: MessageType.SnapChunkResp, to: 1, from: 2, index: 1, commit: seq });
        expect(sender.onAck(ack(0), 1).kind).toBe('pending');
        /** Waits until `count` more chunks can be sent, then briefly for any beyond them. */
        const sendable = async (count: number): Promise<Message[]> => {
          const out: Message[] = [];
          await waitFor(`${count} chunks produced`, () => (out.push(...sender.pump(1)), out.length >= count || out.at(-1)?.reject === true), 20_000);
          await new Promise((r) => setTimeout(r, 50));
          out.push(...sender.pump(1));
          return out;
        };
        let sent = await sendable(snapshotChunksInflightMax);
        // Without acknowledgements nothing more is read, so nothing more is held.
        expect(sent.length).toBe(snapshotChunksInflightMax);
        let chunks = sent.length;
        let last = sent[sent.length - 1];
        const pairs: BackendOp[] = [];
        for (const m of sent) pairs.push(...decodeChunk(m.context!));
        for (let seq = 1; !last.reject; seq++) {
          expect(sender.onAck(ack(seq), 2).kind).toBe('pending');
          sent = await sendable(1);
          expect(sent.length).toBe(1);
          last = sent[0];
          expect(last.commit).toBe(chunks + 1);
          for (const m of sent) pairs.push(...decodeChunk(m.context!));
          chunks += sent.length;
        }
        // Every pair once, in order (the worker read the same content as this thread).
        const expected = dump(backend, 'key').length + dump(backend, 'meta').length;
        expect(pairs.length).toBe(expected);
        for (let seq = chunks - snapshotChunksInflightMax + 1; seq <= chunks; seq++) expect(sender.onAck(ack(seq), 3).kind).toBe('pending');
        // Every chunk written: the receiver adopts, then acknowledges one past the last chunk.
        expect(sender.stalled(3 + 5_000, 1_000)).toBe(false);
        expect(sender.onAck(ack(chunks + 1), 3).kind).toBe('done');
        expect(chunks).toBeGreaterThanOrEqual(64);
        expect(sender.bytesSent).toBeGreaterThan(32 * 2 ** 20);
        expect(changes).toBeGreaterThan(chunks);
        sender.release();
      } finally {
        await backend.close();
      }
    }, 60_000);
  }
});

describe('chunks from a worker thread (LMDB)', () => {
  it('come from one snapshot whose applied index the head names, while commits go on', async () => {
    const backend = LmdbBackend.open(tempDir());
    let writing = true;
    try {
      // Batch i puts key "b<i>" and records i as the applied index: the snapshot at index A holds exactly b1..bA.
      // Values of two sizes (one on LMDB's overflow pages), checked byte for byte: the worker reads them as views, not copies.
      let index = 0;
      const valueOf = (i: number) => new Uint8Array(i % 2 === 1 ? 100 : 2048).fill(i % 251);
      const commitOne = () => {
        index++;
        return backend.commit({ clear: false, ops: [{ bucket: 'key', key: b(`b${String(index).padStart(6, '0')}`), value: valueOf(index) }], appliedIndex: index });
      };
      for (let i = 0; i < 500; i++) await commitOne();
      const writer = (async () => {
        while (writing) await commitOne();
      })();
      const producer = backend.chunkProducer(64 * 1024);
      const applied = await producer.open();
      expect(applied).toBeGreaterThanOrEqual(500);
      const keys: string[] = [];
      let metaIndex = -1;
      let crc = 0;
      for (let chunk = await producer.next(); chunk !== null; chunk = chunk.last ? null : await producer.next()) {
        crc = crc32c(chunk.pairs, crc);
        expect(chunk.crc).toBe(crc);
        for (const op of decodeChunk(chunk.pairs)) {
          if (op.bucket === 'key') {
            keys.push(new TextDecoder().decode(op.key));
            expect(op.value).toEqual(valueOf(Number(keys.at(-1)!.slice(1))));
          }
          if (op.bucket === 'meta' && new TextDecoder().decode(op.key) === 'consistent_index') metaIndex = decodeU64(op.value!);
        }
      }
      producer.release();
      writing = false;
      await writer;
      // Writes went on past the snapshot, which did not see them.
      expect(index).toBeGreaterThan(applied);
      expect(metaIndex).toBe(applied);
      expect(keys).toEqual(Array.from({ length: applied }, (_, i) => `b${String(i + 1).padStart(6, '0')}`));
    } finally {
      writing = false;
      await backend.close();
    }
  }, 60_000);
});

/** Passes a member's incoming messages through `incoming` (false drops one) and shows it the outgoing ones. */
function tapped(inner: Transport, incoming: (m: Message) => boolean, outgoing: (m: Message) => void = () => {}): Transport {
  return {
    start: (onMessage) => inner.start((m) => incoming(m) && onMessage(m)),
    send: (ms) => {
      for (const m of ms) outgoing(m);
      inner.send(ms);
    },
    addPeer: (id, address) => inner.addPeer(id, address),
    removePeer: (id) => inner.removePeer(id),
    close: () => inner.close(),
    faults: inner.faults,
  };
}

interface Running {
  kv: KvMember;
  backend: LmdbBackend | MemoryBackend;
}

/** A member on fs-wal, with LMDB in `dir` (or, `memory`, a memory-only backend, as a tab has). */
async function startMember(dir: string, id: number, peers: number[], transport: Transport, memory = false): Promise<Running> {
  const storage = await FsWalStorage.open(join(dir, 'wal'), { logger: silentLogger });
  const backend = memory ? new MemoryBackend() : LmdbBackend.open(join(dir, 'backend'));
  const kv = await KvMember.start({
    id,
    peers,
    clock: systemClock,
    storage,
    transport,
    random: prng(7 + id),
    tickMs: 5,
    electionTicks: 10,
    snapshotEntries: 50,
    snapshotKeepEntries: 10,
    snapshotStreamIdleMs: 1_000,
    mvcc: { backend },
    log: process.env.STREAM_LOG ? (level, msg) => console.error(`${level} ${msg}`) : undefined,
  });
  return { kv, backend };
}

async function stop(m: Running): Promise<void> {
  await m.kv.stop();
  await m.backend.close();
}

/** `count` puts of 1 KiB values, 100 at a time. */
async function fill(kv: KvMember, prefix: string, count: number): Promise<void> {
  const value = new Uint8Array(1024).fill(0x61);
  for (let i = 0; i < count; i += 100) {
    const puts = [];
    for (let j = i; j < Math.min(count, i + 100); j++) puts.push(kv.put({ key: b(`${prefix}/${j}`), value }));
    await Promise.all(puts);
  }
}

async function caughtUp(joiner: KvMember, leader: KvMember): Promise<void> {
  await waitFor('the joiner caught up', () => joiner.currentRevision === leader.currentRevision, 30_000);
  expect(joiner.hashKV(0)).toEqual(leader.hashKV(0));
  joiner.mvcc.checkValid();
}

describe('a snapshot stream to a member whose backend is memory-only (a tab)', () => {
  it('ends with the leader\'s data, and its own snapshot holds the whole store so that a restart finds it', async () => {
    const hub = new MemoryHub();
    const leader = await startMember(tempDir(), 1, [1], hub.connect(1));
    await waitFor('leadership', () => leader.kv.isLeader());
    const joinerDir = tempDir();
    let joiner = await startMember(joinerDir, 2, [], hub.connect(2), true);
    try {
      await fill(leader.kv, 'k', 1000);
      await leader.kv.addMember(2, ['webrtc://tab'], true);
      await caughtUp(joiner.kv, leader.kv);
      await waitFor('the leader saw the stream done', () => leader.kv.member.snapshotStreams.sent === 1, 10_000);
      // The leader keeps only the marker; the memory-only joiner stored the whole image.
      expect(leader.kv.member.snapshotBytes()).toBeLessThan(200);
      expect(joiner.kv.member.snapshotBytes()).toBeGreaterThan(1_000_000);
      const revision = joiner.kv.currentRevision;
      const hash = joiner.kv.hashKV(0);
      await stop(joiner);
      // Restarted with a fresh memory backend, it rebuilds the store from its own snapshot.
      joiner = await startMember(joinerDir, 2, [], hub.connect(2), true);
      expect(joiner.kv.currentRevision).toBeGreaterThanOrEqual(revision);
      await waitFor('the joiner is back at the revision', () => joiner.kv.currentRevision === leader.kv.currentRevision, 20_000);
      expect(joiner.kv.hashKV(revision)).toEqual(hash);
    } finally {
      await stop(joiner);
      await stop(leader);
    }
  }, 90_000);
});

describe('a snapshot stream cut in the middle', () => {
  it('fails on the leader, which reports it to Raft and streams again; the retry completes with equal data', async () => {
    const hub = new MemoryHub();
    const leader = await startMember(tempDir(), 1, [1], hub.connect(1));
    await waitFor('leadership', () => leader.kv.isLeader());
    let cut = true;
    let chunksSeen = 0;
    // The first stream loses everything after its second chunk, as a link that goes dark would.
    const joiner = await startMember(tempDir(), 2, [], tapped(hub.connect(2), (m) => {
      if (m.type !== MessageType.SnapChunk) return true;
      chunksSeen++;
      return !cut || m.commit <= 2;
    }));
    try {
      await fill(leader.kv, 'k', 3000);
      await leader.kv.compact({ revision: 1500 });
      await leader.kv.addMember(2, ['http://joiner'], true);
      await waitFor('the leader gave the cut stream up', () => leader.kv.member.snapshotStreams.sendFailed >= 1, 20_000);
      expect(chunksSeen).toBeGreaterThan(2);
      expect(joiner.kv.member.snapshotStreams.received).toBe(0);
      expect(joiner.kv.currentRevision).toBe(1);
      cut = false;
      await caughtUp(joiner.kv, leader.kv);
      // The final acknowledgement follows the adoption.
      await waitFor('the leader saw the stream done', () => leader.kv.member.snapshotStreams.sent === 1, 10_000);
      expect(joiner.kv.member.snapshotStreams.received).toBe(1);
      expect(joiner.kv.compactRevision).toBe(1500);
      // Writes after the snapshot reach the joiner with the same revisions.
      const put = await leader.kv.put({ key: b('after'), value: b('stream') });
      await waitFor('the joiner applied the put', () => joiner.kv.currentRevision === put.header.revision);
      expect(joiner.kv.hashKV(0)).toEqual(leader.kv.hashKV(0));
    } finally {
      await stop(joiner);
      await stop(leader);
    }
  }, 90_000);

  it('a receiver restarted mid-stream comes back with its old state intact, and the next stream completes', async () => {
    const hub = new MemoryHub();
    const leader = await startMember(tempDir(), 1, [1], hub.connect(1));
    await waitFor('leadership', () => leader.kv.isLeader());
    const joinerDir = tempDir();
    let joiner = await startMember(joinerDir, 2, [], hub.connect(2));
    await fill(leader.kv, 'old', 200);
    await leader.kv.addMember(2, ['http://joiner'], true);
    await caughtUp(joiner.kv, leader.kv);
    const oldState = { revision: joiner.kv.currentRevision, hash: joiner.kv.hashKV(0).hash, applied: joiner.kv.mvcc.appliedIndex };
    await stop(joiner);
    try {
      // The joiner falls behind past the leader's log: it can only catch up from a snapshot.
      await fill(leader.kv, 'new', 3000);
      // Chunks past the third never arrive; the joiner is stopped (as a crash would stop it)
      // once it has staged and acknowledged the first three.
      let staged = 0;
      joiner = await startMember(
        joinerDir,
        2,
        [],
        tapped(
          hub.connect(2),
          (m) => m.type !== MessageType.SnapChunk || m.commit <= 3,
          (m) => {
            if (m.type === MessageType.SnapChunkResp && !m.reject && m.commit > 0) staged = Math.max(staged, m.commit);
          },
        ),
      );
      await waitFor('three chunks staged', () => staged >= 3, 20_000);
      await stop(joiner);
      // The staged chunks are not the state: the backend holds exactly what it held before.
      const reopened = LmdbBackend.open(join(joinerDir, 'backend'));
      expect(reopened.appliedIndex).toBe(oldState.applied);
      await reopened.close();
      joiner = await startMember(joinerDir, 2, [], hub.connect(2));
      expect(joiner.kv.currentRevision).toBe(oldState.revision);
      expect(joiner.kv.hashKV(0).hash).toBe(oldState.hash);
      await caughtUp(joiner.kv, leader.kv);
      expect(joiner.kv.member.snapshotStreams.received).toBe(1);
    } finally {
      await stop(joiner);
      await stop(leader);
    }
  }, 90_000);
});

describe('a lost "adopted" acknowledgement', () => {
  /**
   * A leader whose link drops the first adopted ack of its stream to member 2 and, with
   * `deaf`, also every append answer from member 2 from its last chunk until the stream ends.
   */
  async function lossyLeader(deaf: boolean) {
    const hub = new MemoryHub();
    let lastSeq = 0;
    let ackDropped = false;
    let streamEnded = false;
    const leader = await startMember(
      tempDir(),
      1,
      [1],
      tapped(
        hub.connect(1),
        (m) => {
          if (m.from !== 2 || lastSeq === 0) return true;
          if (m.type === MessageType.SnapChunkResp && m.commit === lastSeq + 1 && !ackDropped) return !(ackDropped = true);
          return !(deaf && !streamEnded && m.type === MessageType.AppResp);
        },
        (m) => {
          if (m.type === MessageType.SnapChunk && m.reject) lastSeq = m.commit;
        },
      ),
    );
    await waitFor('leadership', () => leader.kv.isLeader());
    const joiner = await startMember(tempDir(), 2, [], hub.connect(2));
    return { leader, joiner, dropped: () => ackDropped, endStream: () => (streamEnded = true) };
  }

  it('the stream is done once Raft shows the follower has the snapshot, not failed after the adoption allowance', async () => {
    const { leader, joiner, dropped } = await lossyLeader(false);
    try {
      await fill(leader.kv, 'k', 3000);
      await leader.kv.addMember(2, ['http://joiner'], true);
      await caughtUp(joiner.kv, leader.kv);
      await waitFor('the adopted ack was dropped', dropped, 10_000);
      // Without the progress check this waited six idle periods (6 s) and then failed.
      await waitFor('the leader saw the stream done', () => leader.kv.member.snapshotStreams.sent === 1, 20_000);
      expect(leader.kv.member.snapshotStreams.sendFailed).toBe(0);
    } finally {
      await stop(joiner);
      await stop(leader);
    }
  }, 90_000);

  it('with the follower\'s append answers lost too, the sender asks again and the receiver acknowledges the adopted stream again', async () => {
    const { leader, joiner, dropped, endStream } = await lossyLeader(true);
    try {
      await fill(leader.kv, 'k', 3000);
      await leader.kv.addMember(2, ['http://joiner'], true);
      await waitFor('the joiner adopted the stream', () => joiner.kv.member.snapshotStreams.received === 1, 30_000);
      await waitFor('the adopted ack was dropped', dropped, 10_000);
      await waitFor('the leader saw the stream done', () => leader.kv.member.snapshotStreams.sent + leader.kv.member.snapshotStreams.sendFailed > 0, 20_000);
      expect(leader.kv.member.snapshotStreams.sent).toBe(1);
      expect(leader.kv.member.snapshotStreams.sendFailed).toBe(0);
      endStream();
      await caughtUp(joiner.kv, leader.kv);
      expect(joiner.kv.member.snapshotStreams.received).toBe(1);
    } finally {
      await stop(joiner);
      await stop(leader);
    }
  }, 90_000);
});
