// The layout check that lets recovery skip false frame starts cheaply must accept every frame
// the WAL writes (or a corrupt frame could be mistaken for a torn tail) and reject damage.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FrameType, encodeBatch, encodeSegmentHeader, frameHeaderBytes, payloadShapeFits, type BatchRecord } from '../../adapters/storage/fs-wal/records.ts';
import { EntryType } from '../../src/raft/types.ts';

const safe = fc.integer({ min: 0, max: 2 ** 40 });
const hardState = fc.record({ term: safe, vote: safe, commit: safe });
const marker = fc.record({ index: safe, term: safe });
const batch: fc.Arbitrary<BatchRecord> = fc.record({
  marker: fc.option(marker, { nil: null }),
  snapshotReset: fc.boolean(),
  hardState: fc.option(hardState, { nil: null }),
  entries: fc.array(
    fc.record({ index: safe, term: safe, type: fc.constantFrom(EntryType.Normal, EntryType.ConfChange), data: fc.uint8Array({ maxLength: 64 }) }),
    { maxLength: 8 },
  ),
});

const fits = (frame: Uint8Array, type: FrameType) => payloadShapeFits(frame, type, frameHeaderBytes, frame.length);

describe('payloadShapeFits', () => {
  it('accepts every batch frame the WAL writes', () => {
    fc.assert(fc.property(batch, (b) => fits(encodeBatch(b), FrameType.Batch)));
  });

  it('accepts every segment header the WAL writes', () => {
    fc.assert(fc.property(safe, hardState, fc.option(marker, { nil: null }), (seq, hs, m) => fits(encodeSegmentHeader({ seq, hardState: hs, marker: m }), FrameType.SegmentHeader)));
  });

  it('rejects a batch whose entry count or data length no longer matches its size', () => {
    const frame = encodeBatch({ marker: null, snapshotReset: false, hardState: null, entries: [{ index: 5, term: 2, type: EntryType.Normal, data: new Uint8Array([1, 2, 3]) }] });
    expect(fits(frame, FrameType.Batch)).toBe(true);
    const moreEntries = frame.slice();
    moreEntries[frameHeaderBytes + 1] = 2; // entry count 1 -> 2
    expect(fits(moreEntries, FrameType.Batch)).toBe(false);
    const longerData = frame.slice();
    longerData[frameHeaderBytes + 1 + 4 + 17] = 4; // data length 3 -> 4
    expect(fits(longerData, FrameType.Batch)).toBe(false);
    const unknownFlag = frame.slice();
    unknownFlag[frameHeaderBytes] = 0x80;
    expect(fits(unknownFlag, FrameType.Batch)).toBe(false);
    expect(fits(frame.subarray(0, frame.length - 1), FrameType.Batch)).toBe(false);
  });
});
