import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { MessageDecodeError, decodeMessage, encodeMessage, messageFormatVersion } from '../../src/codec/message.ts';
import { EntryType, MessageType, isLocalMessage, newMessage, type Message } from '../../src/raft/types.ts';

const safeUint = fc.maxSafeNat();
const memberId = fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER });
const bytes = fc.uint8Array({ maxLength: 64 });
const networkTypes = Object.values(MessageType).filter((v): v is MessageType => typeof v === 'number' && !isLocalMessage(v));

const entryArb = fc.record({ term: safeUint, index: safeUint, type: fc.constantFrom(EntryType.Normal, EntryType.ConfChange), data: bytes });
const snapshotArb = fc.record({
  metadata: fc.record({
    index: safeUint,
    term: safeUint,
    confState: fc.record({
      voters: fc.array(memberId, { maxLength: 5 }),
      learners: fc.array(memberId, { maxLength: 3 }),
      votersOutgoing: fc.array(memberId, { maxLength: 5 }),
      learnersNext: fc.array(memberId, { maxLength: 3 }),
      autoLeave: fc.boolean(),
    }),
  }),
  data: fc.uint8Array({ maxLength: 256 }),
});

const messageArb: fc.Arbitrary<Message> = fc
  .record({
    type: fc.constantFrom(...networkTypes),
    to: memberId,
    from: memberId,
    term: safeUint,
    logTerm: safeUint,
    index: safeUint,
    entries: fc.array(entryArb, { maxLength: 4 }),
    commit: safeUint,
    reject: fc.boolean(),
    rejectHint: safeUint,
    snapshot: snapshotArb,
    context: fc.option(bytes, { nil: null }),
  })
  .map((m) => ({ ...m, snapshot: m.type === MessageType.Snap ? m.snapshot : null }));

/** An independent statement of what a decoded message must satisfy. */
function assertWellFormed(m: Message): void {
  const uint = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  const id = (v: unknown) => uint(v) && (v as number) > 0;
  const plainBytes = (v: unknown) => v instanceof Uint8Array;
  expect(Object.keys(m).sort()).toEqual(['commit', 'context', 'entries', 'from', 'index', 'logTerm', 'reject', 'rejectHint', 'snapshot', 'term', 'to', 'type']);
  expect(networkTypes).toContain(m.type);
  for (const v of [m.term, m.logTerm, m.index, m.commit, m.rejectHint]) expect(uint(v)).toBe(true);
  expect(id(m.to) && id(m.from)).toBe(true);
  expect(typeof m.reject).toBe('boolean');
  expect(m.context === null || plainBytes(m.context)).toBe(true);
  for (const e of m.entries) {
    expect(uint(e.term) && uint(e.index) && plainBytes(e.data)).toBe(true);
    expect([EntryType.Normal, EntryType.ConfChange]).toContain(e.type);
  }
  expect(m.snapshot !== null).toBe(m.type === MessageType.Snap);
  if (m.snapshot) {
    const { index, term, confState } = m.snapshot.metadata;
    expect(uint(index) && uint(term) && plainBytes(m.snapshot.data)).toBe(true);
    for (const list of [confState.voters, confState.learners, confState.votersOutgoing, confState.learnersNext]) expect(list.every(id)).toBe(true);
    expect(typeof confState.autoLeave).toBe('boolean');
  }
}

/** Decodes, requiring either a well-formed message or a MessageDecodeError. */
function decodeOrReason(b: Uint8Array): Message | string {
  try {
    const m = decodeMessage(b);
    assertWellFormed(m);
    return m;
  } catch (err) {
    if (!(err instanceof MessageDecodeError)) throw err;
    return err.reason;
  }
}

describe('message codec', () => {
  it('round-trips every well-formed network message', () => {
    fc.assert(
      fc.property(messageArb, (m) => {
        expect(decodeMessage(encodeMessage(m))).toEqual(m);
      }),
      { numRuns: 500 },
    );
  });

  it('decodes byte payloads as views into the input, not copies', () => {
    const m = newMessage(MessageType.App, 2, 1, 3);
    m.entries = [{ term: 3, index: 1, type: EntryType.Normal, data: new Uint8Array(1000).fill(7) }];
    const encoded = encodeMessage(m);
    const decoded = decodeMessage(encoded);
    expect(decoded.entries[0].data.buffer).toBe(encoded.buffer);
    expect(decoded.entries[0].data.constructor).toBe(Uint8Array);
  });

  it('refuses to encode or decode local message types', () => {
    expect(() => encodeMessage(newMessage(MessageType.Hup, 1, 1, 0))).toThrow(/local/);
    const m = newMessage(MessageType.Heartbeat, 2, 1, 1);
    const encoded = encodeMessage(m);
    // Heartbeat (17) is a positive fixint at byte 2 (after the version byte and the array header).
    expect(encoded[2]).toBe(MessageType.Heartbeat);
    encoded[2] = MessageType.Prop;
    expect(() => decodeMessage(encoded)).toThrow(new MessageDecodeError('message type 2 is local'));
  });

  it('names the offending field', () => {
    const reasonFor = (patch: Partial<Record<keyof Message, unknown>>) =>
      decodeOrReason(encodeMessage({ ...newMessage(MessageType.App, 2, 1, 1), ...(patch as Partial<Message>) }));
    expect(reasonFor({ term: -1 })).toBe('term is number -1, not a safe non-negative integer');
    expect(reasonFor({ index: 1.5 })).toBe('index is number 1.5, not a safe non-negative integer');
    expect(reasonFor({ commit: 2 ** 53 })).toBe(`commit is number ${2 ** 53}, not a safe non-negative integer`);
    expect(reasonFor({ from: 0 })).toBe('from is 0, not a member id');
    expect(reasonFor({ reject: 1 })).toBe('reject is number 1, not a boolean');
    expect(reasonFor({ context: 'ctx' })).toBe('context is a string of 3, not bytes');
    expect(reasonFor({ entries: [{ term: 1, index: 1, type: 9, data: new Uint8Array(0) }] })).toBe('entry 0 has unknown type number 9');
    expect(reasonFor({ entries: [{ term: 1, index: 1, type: 0, data: 'x' }] })).toBe('entry 0 data is a string of 1, not bytes');
    expect(reasonFor({ snapshot: { metadata: { index: 1, term: 1, confState: { voters: [], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false } }, data: new Uint8Array(0) } })).toBe(
      'message type 10 carries a snapshot',
    );
    expect(decodeOrReason(encodeMessage(newMessage(MessageType.Snap, 2, 1, 1)))).toBe('snapshot message without a snapshot');
    expect(decodeOrReason(new Uint8Array([2, 0x90]))).toBe(`format version 2 is not ${messageFormatVersion}`);
    expect(decodeOrReason(new Uint8Array([1]))).toBe('1 bytes is too short');
  });

  it('describes hostile decoded values without calling anything on them', () => {
    const packr = new Packr({ useRecords: false });
    for (const [value, shown] of [
      [{ constructor: { name: { toString: 1 } } }, 'an Object'],
      [{ toString: 1, valueOf: 2 }, 'an Object'],
      [new Map([[1, 2]]), 'an Object'],
      [new Date(0), 'a Date'],
    ] as const) {
      const body = packr.pack([value, 1, 1, 0, 0, 0, [], 0, false, 0, null, null]);
      expect(decodeOrReason(Uint8Array.of(messageFormatVersion, ...body))).toBe(`unknown message type ${shown}`);
    }
  });

  it('fuzz: random bytes decode to a well-formed message or a MessageDecodeError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.boolean(), (b, versioned) => {
        if (versioned && b.length > 0) b[0] = messageFormatVersion;
        decodeOrReason(b);
      }),
      { numRuns: 5000 },
    );
  });

  it('fuzz: mutated valid frames decode to a well-formed message or a MessageDecodeError', () => {
    const mutation = fc.oneof(
      fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ kind: fc.constant('truncate' as const), at: fc.nat(), value: fc.constant(0) }),
      fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
    );
    fc.assert(
      fc.property(messageArb, fc.array(mutation, { minLength: 1, maxLength: 4 }), (m, mutations) => {
        let b = encodeMessage(m);
        for (const { kind, at, value } of mutations) {
          const i = at % (b.length + 1);
          if (kind === 'flip' && i < b.length) b[i] = value;
          else if (kind === 'truncate') b = b.slice(0, i);
          else if (kind === 'insert') b = Uint8Array.from([...b.subarray(0, i), value, ...b.subarray(i)]);
        }
        decodeOrReason(b);
      }),
      { numRuns: 5000 },
    );
  });
});
