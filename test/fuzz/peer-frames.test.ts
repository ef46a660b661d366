// Fuzzing the peer wire: the Raft message codec, the TCP frame reader and a live TCP transport
// fed mutated byte streams before and after the handshake. test/codec/message.test.ts already
// fuzzes single messages with flips, truncation and insertions; this adds splices, lying
// length fields and whole connections.

import net from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  FrameReader,
  FrameType,
  FramingError,
  encodeFrame,
  encodeHello,
  encodeSnapshotHead,
  frameBytesMax,
  frameHeaderBytes,
  protocolVersion,
  snapshotBytesMax,
} from '../../adapters/transport/tcp/frame.ts';
import { TcpTransport } from '../../adapters/transport/tcp/index.ts';
import { helloProof } from '../../adapters/transport/tcp/admission.ts';
import { MessageDecodeError, decodeMessage, encodeMessage } from '../../src/codec/message.ts';
import { EntryType, MessageType, isLocalMessage, newMessage, type Message } from '../../src/raft/types.ts';
import { waitFor } from '../helpers/wait.ts';
import { fuzzParams, fuzzTimeoutMs } from './fuzz-config.ts';
import { concat } from '../../src/client/bytes.ts';
import { mutateAll, mutationArb } from './mutations.ts';

const selfId = 2;
const fuzzPeerId = 1;
const goodPeerId = 3;
const clusterToken = 'fuzz-cluster';
const admissionSecret = 'fuzz-admission-secret';

const networkTypes = Object.values(MessageType).filter((v): v is MessageType => typeof v === 'number' && !isLocalMessage(v));

const messageArb: fc.Arbitrary<Message> = fc
  .record({
    type: fc.constantFrom(...networkTypes.filter((t) => t !== MessageType.Snap)),
    term: fc.nat({ max: 1000 }),
    index: fc.nat({ max: 1000 }),
    commit: fc.nat({ max: 1000 }),
    entries: fc.array(
      fc.record({ term: fc.nat({ max: 9 }), index: fc.nat({ max: 1000 }), type: fc.constantFrom(EntryType.Normal, EntryType.ConfChange), data: fc.uint8Array({ maxLength: 40 }) }),
      { maxLength: 3 },
    ),
    reject: fc.boolean(),
  })
  .map((r) => ({ ...newMessage(r.type, selfId, fuzzPeerId, r.term), index: r.index, commit: r.commit, entries: r.entries, reject: r.reject }));

const snapMessageArb: fc.Arbitrary<Message> = fc.record({ term: fc.nat({ max: 9 }), index: fc.nat({ max: 1000 }), data: fc.uint8Array({ maxLength: 300 }) }).map((r) => ({
  ...newMessage(MessageType.Snap, selfId, fuzzPeerId, r.term),
  snapshot: { metadata: { index: r.index, term: r.term, confState: { voters: [1, 2, 3], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false } }, data: r.data },
}));

/** A well-formed message survives encoding unchanged: the codec's own definition of valid. */
function expectWellFormed(m: Message): void {
  expect(decodeMessage(encodeMessage(m))).toEqual(m);
}

function decodeOrTypedError(bytes: Uint8Array): void {
  try {
    expectWellFormed(decodeMessage(bytes));
  } catch (err) {
    if (!(err instanceof MessageDecodeError)) throw err;
  }
}

describe('fuzz: raft message codec', () => {
  it('splices of two messages, and mutations of them, decode to a well-formed message or a MessageDecodeError', () => {
    fc.assert(
      fc.property(messageArb, messageArb, fc.nat(), fc.nat(), fc.array(mutationArb, { maxLength: 3 }), (a, b, cutA, cutB, mutations) => {
        const ea = encodeMessage(a);
        const eb = encodeMessage(b);
        const spliced = concat([ea.subarray(0, cutA % (ea.length + 1)), eb.subarray(cutB % (eb.length + 1))]);
        decodeOrTypedError(mutateAll(spliced, mutations));
        decodeOrTypedError(concat([ea, eb]));
      }),
      fuzzParams(3000),
    );
  }, fuzzTimeoutMs(3000, 1));

  it('msgpack length fields that lie (up to 4 GiB) are refused at once, without allocating', () => {
    const lies = fc.record({
      // array32, map32, bin32, str32, ext32 headers: each announces `length` items or bytes.
      tag: fc.constantFrom(0xdd, 0xdf, 0xc6, 0xdb, 0xc9),
      length: fc.oneof(fc.constant(0xffffffff), fc.integer({ min: 1 << 20, max: 0xffffffff })),
      // Where in a valid message the lie goes: a field's position, 0 for the whole message.
      field: fc.integer({ min: 0, max: 12 }),
      message: messageArb,
    });
    const arrayBuffersBefore = process.memoryUsage().arrayBuffers;
    fc.assert(
      fc.property(lies, ({ tag, length, field, message }) => {
        const valid = encodeMessage(message);
        const lie = new Uint8Array([tag, length >>> 24, (length >>> 16) & 0xff, (length >>> 8) & 0xff, length & 0xff, 1, 2, 3]);
        // Byte 1 is the header of the 12-field array; the lie replaces it or the byte a field starts near.
        const at = field === 0 ? 1 : 1 + field;
        const bytes = concat([valid.subarray(0, at), lie, valid.subarray(at + 1)]);
        expect(() => decodeMessage(bytes)).toThrow(MessageDecodeError);
      }),
      fuzzParams(1000),
    );
    expect(process.memoryUsage().arrayBuffers - arrayBuffersBefore).toBeLessThan(64 * 1024 * 1024);
  }, fuzzTimeoutMs(1000, 1));
});

describe('fuzz: frame reader', () => {
  it('a frame length that lies buffers only the bytes actually received', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: frameBytesMax }), fc.uint8Array({ maxLength: 4096 }), (frameBytes, body) => {
        const reader = new FrameReader();
        reader.frameBytesLimit = frameBytesMax;
        const header = new Uint8Array([frameBytes >>> 24, (frameBytes >>> 16) & 0xff, (frameBytes >>> 8) & 0xff, frameBytes & 0xff, FrameType.Message]);
        const sent = body.subarray(0, frameBytes - 1);
        const frames = [...reader.push(header), ...reader.push(sent)];
        if (sent.length < frameBytes - 1) {
          expect(frames).toEqual([]);
          expect(reader.pendingBytes).toBe(frameHeaderBytes + sent.length);
        } else {
          expect(frames.map((f) => f.payload)).toEqual([sent]);
        }
      }),
      fuzzParams(2000),
    );
    const reader = new FrameReader();
    reader.frameBytesLimit = frameBytesMax;
    expect(() => [...reader.push(new Uint8Array([0xff, 0xff, 0xff, 0xff, FrameType.Message]))]).toThrow(
      new FramingError(`frame of ${0xffffffff} bytes exceeds the limit of ${frameBytesMax}`),
    );
  }, fuzzTimeoutMs(2000, 1));
});

describe('fuzz: a live TCP transport', () => {
  let server: TcpTransport;
  let goodPeer: TcpTransport;
  const inbox: Message[] = [];
  const logs: string[] = [];

  beforeAll(async () => {
    server = await TcpTransport.listen({ id: selfId, clusterToken, admissionSecret, port: 0, log: (level, msg) => logs.push(`${level}: ${msg}`) });
    server.start((m) => inbox.push(m));
    goodPeer = await TcpTransport.listen({ id: goodPeerId, clusterToken, admissionSecret, port: 0, log: () => {} });
    goodPeer.start(() => {});
    goodPeer.addPeer(selfId, server.addressString);
  });

  afterAll(async () => {
    await goodPeer?.close();
    await server?.close();
  });

  const claims = { version: protocolVersion, clusterToken, from: fuzzPeerId, to: selfId };
  const helloFrame = encodeFrame(FrameType.Hello, encodeHello({ ...claims, proof: helloProof(admissionSecret, claims) }));

  /** The frames a peer sends for a message: one Message frame, or a snapshot head and its chunks. */
  function framesOf(m: Message, chunkBytes: number): Uint8Array[] {
    if (m.type !== MessageType.Snap) return [encodeFrame(FrameType.Message, encodeMessage(m))];
    const data = m.snapshot!.data;
    const head = encodeMessage({ ...m, snapshot: { ...m.snapshot!, data: new Uint8Array(0) } });
    const out = [encodeFrame(FrameType.SnapshotHead, encodeSnapshotHead(data.length, head))];
    for (let at = 0; at < data.length; at += chunkBytes) out.push(encodeFrame(FrameType.SnapshotChunk, data.subarray(at, at + chunkBytes)));
    return out;
  }

  /** Sends `bytes` on a fresh connection (after a clean handshake unless `raw`), ends it, and waits until it closes. */
  async function sendOnce(bytes: Uint8Array, raw: boolean, cuts: number[]): Promise<void> {
    const socket = net.connect(server.address.port, '127.0.0.1');
    socket.on('error', () => {});
    socket.resume(); // the socket closes only once what the server sends is read
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    try {
      await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
      if (!raw) {
        const reader = new FrameReader();
        const accepted = new Promise<void>((resolve) => socket.on('data', (c) => [...reader.push(c)].some((f) => f.type === FrameType.Accept) && resolve()));
        socket.write(helloFrame);
        await accepted;
      }
      // Several writes, so frames also straddle socket reads.
      let from = 0;
      for (const cut of [...cuts.map((c) => c % (bytes.length + 1)).sort((a, b) => a - b), bytes.length]) {
        if (cut > from) socket.write(bytes.subarray(from, cut));
        from = Math.max(from, cut);
      }
      socket.end();
      await withTimeout(closed, 3000, 'the fuzzed connection to close');
    } finally {
      socket.destroy();
    }
  }

  let heartbeatCommit = 0;
  /** A good peer's message still arrives. */
  async function expectGoodPeerServed(): Promise<void> {
    const m = newMessage(MessageType.Heartbeat, selfId, goodPeerId, 1);
    m.commit = ++heartbeatCommit;
    goodPeer.send([m]);
    await waitFor(`heartbeat ${m.commit} from the good peer`, () => inbox.some((x) => x.from === goodPeerId && x.commit === m.commit));
  }

  it('a snapshot head announcing 1 GiB, or a frame header announcing 64 MiB, allocates only what arrives', async () => {
    const arrayBuffersBefore = process.memoryUsage().arrayBuffers;
    const snap = newMessage(MessageType.Snap, selfId, fuzzPeerId, 1);
    snap.snapshot = { metadata: { index: 5, term: 1, confState: { voters: [1, 2, 3], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false } }, data: new Uint8Array(0) };
    const head = encodeMessage(snap);
    const lies = [
      concat([encodeFrame(FrameType.SnapshotHead, encodeSnapshotHead(snapshotBytesMax, head)), encodeFrame(FrameType.SnapshotChunk, new Uint8Array(1000))]),
      concat([new Uint8Array([frameBytesMax >>> 24, (frameBytesMax >>> 16) & 0xff, (frameBytesMax >>> 8) & 0xff, frameBytesMax & 0xff, FrameType.Message]), new Uint8Array(1000)]),
    ];
    for (let i = 0; i < 20; i++) for (const bytes of lies) await sendOnce(bytes, false, []);
    expect(process.memoryUsage().arrayBuffers - arrayBuffersBefore).toBeLessThan(64 * 1024 * 1024);
    expect(logs.some((l) => l.includes(`snapshot stream from peer ${fuzzPeerId}`) && l.includes(`interrupted at 1000/${snapshotBytesMax} bytes; discarded`))).toBe(true);
    await expectGoodPeerServed();
  });

  const streamArb = fc.record({
    messages: fc.array(fc.oneof({ weight: 4, arbitrary: messageArb }, { weight: 1, arbitrary: snapMessageArb }), { minLength: 1, maxLength: 4 }),
    chunkBytes: fc.integer({ min: 1, max: 128 }),
    mutations: fc.array(mutationArb, { minLength: 1, maxLength: 3 }),
    raw: fc.boolean(),
    cuts: fc.array(fc.nat(), { maxLength: 4 }),
  });
  const liveRuns = 150;

  it(
    'mutated streams are dropped or refused with a logged reason; nothing malformed reaches Raft; good peers keep working',
    async () => {
      await expectGoodPeerServed();
      await fc.assert(
        fc.asyncProperty(streamArb, async ({ messages, chunkBytes, mutations, raw, cuts }) => {
          const stream = concat([...(raw ? [helloFrame] : []), ...messages.flatMap((m) => framesOf(m, chunkBytes))]);
          const delivered = inbox.length;
          await sendOnce(mutateAll(stream, mutations), raw, cuts);
          for (const m of inbox.slice(delivered)) {
            expect(m.to).toBe(selfId);
            expectWellFormed(m);
          }
          await expectGoodPeerServed();
        }),
        fuzzParams(liveRuns),
      );
      expect(logs.filter((l) => l.includes('a bug'))).toEqual([]);
      // The damage reached every layer: framing, handshake and message validation.
      expect(logs.some((l) => l.startsWith('warn: ') && l.includes('closing connection from'))).toBe(true);
      expect(logs.some((l) => l.startsWith('warn: ') && l.includes('refused connection from'))).toBe(true);
      expect(logs.some((l) => l.startsWith('warn: ') && l.includes('dropped message from'))).toBe(true);
    },
    fuzzTimeoutMs(liveRuns, 20),
  );
});

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)));
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
