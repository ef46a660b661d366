import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Packr } from 'msgpackr';
import {
  FrameReader,
  FrameType,
  FramingError,
  chunkHeaderBytes,
  decodeHello,
  decodeStreamChunk,
  encodeFrame,
  encodeHello,
  encodeStreamChunkHead,
  frameBytesMax,
  frameHeaderBytes,
  protocolVersion,
  type Frame,
} from '../../adapters/transport/tcp/frame.ts';
import { MessageType, type Message } from '../../src/raft/types.ts';

const frameTypes = Object.values(FrameType).filter((v): v is FrameType => typeof v === 'number');
const frameArb = fc.record({ type: fc.constantFrom(...frameTypes), payload: fc.uint8Array({ maxLength: 300 }) });

/** Cuts `bytes` at the given points (taken modulo its length). */
function split(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const parts: Uint8Array[] = [];
  let from = 0;
  for (const p of [...points, bytes.length]) {
    parts.push(bytes.subarray(from, p));
    from = p;
  }
  return parts;
}

describe('frame reader', () => {
  it('reads back any frames however the stream is cut into reads', () => {
    fc.assert(
      fc.property(fc.array(frameArb, { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 12 }), (frames, cuts) => {
        const stream = new Uint8Array(frames.reduce((n, f) => n + 5 + f.payload.length, 0));
        let at = 0;
        for (const f of frames) {
          stream.set(encodeFrame(f.type, f.payload), at);
          at += 5 + f.payload.length;
        }
        const reader = new FrameReader();
        reader.frameBytesLimit = frameBytesMax;
        const out: Frame[] = [];
        for (const part of split(stream, cuts)) for (const f of reader.push(part)) out.push(f);
        // A StreamChunk frame comes out as its chunk header and, apart, the bytes after it.
        const expected = frames.map((f): Frame => {
          if (f.type !== FrameType.StreamChunk) return f;
          const headerBytes = Math.min(chunkHeaderBytes, f.payload.length);
          return { type: f.type, payload: f.payload.subarray(0, headerBytes), pairs: f.payload.subarray(headerBytes) };
        });
        expect(out).toEqual(expected);
        expect(reader.pendingBytes).toBe(0);
      }),
      { numRuns: 1000 },
    );
  });

  it('copies a frame that is part of a larger read, and hands out a whole read as it is', () => {
    const reader = new FrameReader();
    const two = new Uint8Array([...encodeFrame(FrameType.Message, new Uint8Array([1, 2])), ...encodeFrame(FrameType.Message, new Uint8Array([3]))]);
    const [a, b] = [...reader.push(two)];
    expect([a.payload.buffer === two.buffer, b.payload.buffer === two.buffer]).toEqual([false, false]);
    const header = encodeFrame(FrameType.SnapshotChunk, new Uint8Array(4)).subarray(0, 5);
    expect([...reader.push(header)]).toEqual([]);
    const body = new Uint8Array([9, 9, 9, 9]);
    const [c] = [...reader.push(body)];
    expect(c.payload).toBe(body);
  });

  it('random bytes yield frames or a FramingError, nothing else', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 6 }), fc.boolean(), (reads, raised) => {
        const reader = new FrameReader();
        if (raised) reader.frameBytesLimit = frameBytesMax;
        try {
          for (const r of reads) for (const f of reader.push(r)) expect(frameTypes).toContain(f.type);
        } catch (err) {
          if (!(err instanceof FramingError)) throw err;
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('refuses a zero length, an unknown type and a length over the limit', () => {
    const read = (bytes: number[], limit = frameBytesMax) => {
      const reader = new FrameReader();
      reader.frameBytesLimit = limit;
      return () => [...reader.push(new Uint8Array(bytes))];
    };
    expect(read([0, 0, 0, 0, 4])).toThrow(new FramingError('frame of 0 bytes has no type'));
    expect(read([0, 0, 0, 1, 0])).toThrow(new FramingError('unknown frame type 0'));
    expect(read([0, 0, 4, 1, 4], 1024)).toThrow(new FramingError('frame of 1025 bytes exceeds the limit of 1024'));
  });
});

describe('hello', () => {
  const packr = new Packr({ useRecords: false });

  it('round-trips', () => {
    const hello = { version: protocolVersion, clusterToken: 'c', from: 1, to: 2, proof: new Uint8Array(32).fill(7) };
    expect(decodeHello(encodeHello(hello))).toEqual(hello);
  });

  it('any value or bytes give a Hello or a reason, never an exception', () => {
    const anyHello = fc.oneof(
      fc.anything({ withMap: true, withSet: true, withDate: true, withTypedArray: true, withBigInt: true }),
      fc.tuple(fc.anything(), fc.anything(), fc.anything(), fc.anything(), fc.anything()),
    );
    fc.assert(
      fc.property(anyHello, fc.uint8Array({ maxLength: 40 }), (value, bytes) => {
        let packed: Uint8Array;
        try {
          packed = packr.pack(value);
        } catch {
          return; // not every JavaScript value has a msgpack form
        }
        for (const payload of [packed, bytes]) {
          const h = decodeHello(payload);
          if (typeof h !== 'string') expect(h.version).toBe(protocolVersion);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('describes hostile values without calling them', () => {
    expect(decodeHello(packr.pack([{ toString: 1 }, 'x', 1, 2, new Uint8Array(32)]))).toBe(`protocol version an Object is not ${protocolVersion}`);
    expect(decodeHello(packr.pack([protocolVersion, { valueOf: 1, toString: 2 }, 1, 2, new Uint8Array(32)]))).toBe('cluster token is an Object, not a string');
    expect(decodeHello(packr.pack([protocolVersion, 'x', 1, 2, { length: 32 }]))).toBe('admission proof is an Object, not 32 bytes');
  });
});

function chunkMessage(fields: Partial<Message>): Message {
  return { type: MessageType.SnapChunk, to: 2, from: 1, term: 5, logTerm: 0, index: 7, entries: [], commit: 3, reject: false, rejectHint: 0, snapshot: null, context: null, ...fields };
}

/** The StreamChunk frame carrying `m`, as the reader hands it out: chunk header and pairs apart. */
function streamChunkFrame(m: Message): Frame {
  const head = encodeStreamChunkHead(m);
  const stream = new Uint8Array(head.length + (m.context?.length ?? 0));
  stream.set(head);
  if (m.context !== null) stream.set(m.context, head.length);
  const reader = new FrameReader();
  reader.frameBytesLimit = frameBytesMax;
  const frames = [...reader.push(stream)];
  expect(frames.length).toBe(1);
  return frames[0];
}

describe('stream chunk frames', () => {
  it('carry any SnapChunk message exactly, its pairs in a buffer of their own', () => {
    const u53 = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
    const id = fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER });
    fc.assert(
      fc.property(
        fc.record({
          to: id,
          from: id,
          term: u53,
          index: u53,
          commit: u53,
          reject: fc.boolean(),
          rejectHint: fc.integer({ min: 0, max: 0xffffffff }),
          context: fc.option(fc.uint8Array({ maxLength: 200 })),
        }),
        (fields) => {
          const m = chunkMessage(fields);
          const f = streamChunkFrame(m);
          expect(f.type).toBe(FrameType.StreamChunk);
          const back = decodeStreamChunk(f.payload, f.pairs!);
          expect(back).toEqual(m);
          if (m.context !== null && m.context.length > 0) {
            const pairs = (back as Message).context!;
            expect([pairs.byteOffset, pairs.byteLength]).toEqual([0, pairs.buffer.byteLength]);
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it('refuse a message the header cannot carry', () => {
    expect(() => encodeStreamChunkHead(chunkMessage({ type: MessageType.App }))).toThrow(/does not fit a StreamChunk frame/);
    expect(() => encodeStreamChunkHead(chunkMessage({ logTerm: 1 }))).toThrow(/does not fit/);
    expect(() => encodeStreamChunkHead(chunkMessage({ rejectHint: 2 ** 32 }))).toThrow(/does not fit/);
  });

  it('decode bad headers into a reason, never a message', () => {
    const good = streamChunkFrame(chunkMessage({ context: new Uint8Array([1, 2, 3]) }));
    const header = () => good.payload.slice();
    expect(decodeStreamChunk(good.payload.subarray(0, 20), new Uint8Array(0))).toBe(`stream chunk frame of 20 bytes is shorter than its ${chunkHeaderBytes}-byte header`);
    const format = header();
    format[0] = 2;
    expect(decodeStreamChunk(format, good.pairs!)).toBe('stream chunk format 2 is not 1');
    const unsafe = header();
    unsafe[1 + 8 * 2] = 0xff; // the term's high byte
    expect(decodeStreamChunk(unsafe, good.pairs!)).toBe('stream chunk field at byte 17 is not a safe integer');
    const noSender = header();
    noSender.fill(0, 9, 17);
    expect(decodeStreamChunk(noSender, good.pairs!)).toBe('stream chunk from member 0 to member 2: 0 is not a member id');
    const flags = header();
    flags[45] = 4;
    expect(decodeStreamChunk(flags, good.pairs!)).toBe('stream chunk flags 4 has unknown bits');
    const noContext = header();
    noContext[45] = 2;
    expect(decodeStreamChunk(noContext, good.pairs!)).toBe('stream chunk without a context carries 3 bytes');
  });

  it('a frame shorter than its chunk header is handed out as what arrived', () => {
    const reader = new FrameReader();
    reader.frameBytesLimit = frameBytesMax;
    const [f] = [...reader.push(encodeFrame(FrameType.StreamChunk, new Uint8Array(10).fill(1)))];
    expect([f.payload.length, f.pairs!.length]).toEqual([10, 0]);
    expect(typeof decodeStreamChunk(f.payload, f.pairs!)).toBe('string');
    expect(frameHeaderBytes + chunkHeaderBytes).toBe(encodeStreamChunkHead(chunkMessage({})).length);
  });
});
