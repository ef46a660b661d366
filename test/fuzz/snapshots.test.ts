// Fuzzing snapshot restore: the MVCC store image (raft snapshot data, whichever storage or
// transport carried it) and the file `etcdctl snapshot save` writes. A damaged image is refused
// with a SnapshotDecodeError and the state machine stays as it was, or — only when the damage
// changed nothing — restores exactly the original state. The fs-wal snapshot file (CRC-32C) is
// damaged by wal-records.test.ts together with the segments that name it.

import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { beforeAll, describe, expect, it } from 'vitest';
import { SnapshotFileError, decodeSnapshotFile, encodeSnapshotFile } from '../../adapters/etcd-api/snapshot-file.ts';
import { crc32c } from '../../src/codec/crc32c.ts';
import { MvccStateMachine, SNAPSHOT_FRAME_RECORDS_MAX, SnapshotDecodeError } from '../../src/mvcc/index.ts';
import { MemoryStorage } from '../../adapters/storage/memory.ts';
import { MemoryHub } from '../../adapters/transport/memory.ts';
import { MessageType, newMessage } from '../../src/raft/types.ts';
import { startKvMember } from '../helpers/kv-members.ts';
import { waitFor } from '../helpers/wait.ts';
import { Harness } from '../mvcc/helpers.ts';
import { fuzzParams, fuzzTimeoutMs } from './fuzz-config.ts';
import { concat, equalBytes } from '../../src/client/bytes.ts';
import { mutateAll, mutationArb } from './mutations.ts';

/** A store with history, tombstones, a compaction, leases and more than one records frame. */
function populated(): MvccStateMachine {
  const h = new Harness();
  h.ok({ kind: 'leaseGrant', request: { ID: 7n, TTL: 60 } });
  h.ok({ kind: 'leaseGrant', request: { ID: 2n ** 62n, TTL: 30 } });
  for (let i = 0; i < SNAPSHOT_FRAME_RECORDS_MAX + 200; i++) h.put(`k${i % 700}`, `v${i}`, i % 9 === 0 ? { lease: 7n } : {});
  for (let i = 0; i < 50; i++) h.del(`k${i * 3}`);
  h.ok({ kind: 'compaction', request: { revision: 300 } });
  h.ok({ kind: 'put', request: { key: new Uint8Array([0, 0xff]), value: new Uint8Array([0x80]), lease: 2n ** 62n } });
  return h.sm;
}

/** A small store the fuzzed image is restored over: it must survive every refused restore. */
function target(): MvccStateMachine {
  const h = new Harness();
  h.put('before', 'restore');
  h.ok({ kind: 'leaseGrant', request: { ID: 99n, TTL: 10 } });
  return h.sm;
}

/** Restores `bytes` over a fresh target: a typed refusal leaving it unchanged, or the restored state. */
function restoreOrRefuse(bytes: Uint8Array): { refused: SnapshotDecodeError } | { restored: MvccStateMachine } {
  const sm = target();
  const before = sm.snapshot().encode();
  try {
    sm.restore(bytes);
  } catch (err) {
    if (!(err instanceof SnapshotDecodeError)) throw err;
    expect(equalBytes(sm.snapshot().encode(), before), 'a refused restore changed the state machine').toBe(true);
    sm.checkValid();
    return { refused: err };
  }
  sm.checkValid();
  return { restored: sm };
}

describe('fuzz: MVCC snapshot images', () => {
  let image: Uint8Array;
  beforeAll(() => {
    image = populated().snapshot().encode();
  });

  it('restores the unharmed image exactly', () => {
    const r = restoreOrRefuse(image);
    expect('restored' in r && equalBytes(r.restored.snapshot().encode(), image)).toBe(true);
  });

  it('damaged bytes are refused with a SnapshotDecodeError and change nothing; nothing altered is ever restored', () => {
    fc.assert(
      fc.property(fc.array(mutationArb, { minLength: 1, maxLength: 3 }), fc.boolean(), (mutations, nearFrameStart) => {
        // Half the damage goes to the first 64 bytes, where the header frame and its length lie.
        const damaged = nearFrameStart ? concat([mutateAll(image.subarray(0, 64), mutations), image.subarray(64)]) : mutateAll(image, mutations);
        const r = restoreOrRefuse(damaged);
        if ('restored' in r) {
          expect(equalBytes(damaged, image), 'an altered image was restored').toBe(true);
          expect(equalBytes(r.restored.snapshot().encode(), image)).toBe(true);
        } else {
          expect(r.refused.message).toMatch(/^snapshot: /);
        }
      }),
      fuzzParams(300),
    );
  }, fuzzTimeoutMs(300, 10));

  const packr = new Packr({ useRecords: false, moreTypes: false });

  /** The image's frames as decoded values. */
  function frameDocs(bytes: Uint8Array): unknown[] {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const docs: unknown[] = [];
    for (let at = 0; at < bytes.length; ) {
      const length = view.getUint32(at, true);
      docs.push(packr.unpack(bytes.subarray(at + 8, at + 8 + length)));
      at += 8 + length;
    }
    return docs;
  }

  /** Frames values with correct lengths and checksums: damage that a checksum cannot see. */
  function framed(docs: unknown[]): Uint8Array {
    return concat(
      docs.map((doc) => {
        const body = packr.pack(doc);
        const head = new Uint8Array(8);
        new DataView(head.buffer).setUint32(0, body.length, true);
        new DataView(head.buffer).setUint32(4, crc32c(body), true);
        return concat([head, body]);
      }),
    );
  }

  it('a live key attached to a lease the image does not hold is refused before anything changes (regression)', () => {
    const docs = frameDocs(image) as Array<{ leases?: string[] }>;
    const last = docs[docs.length - 1];
    last.leases = last.leases!.map((l, i) => (i === last.leases!.length - 1 ? '-1' : l));
    const r = restoreOrRefuse(framed(docs));
    expect('refused' in r && r.refused.message).toMatch(/^snapshot: key ".*" is attached to lease -1, which the snapshot does not hold$/);
  });

  it('well-checksummed frames with wrong fields are refused, or restore a store that passes checkValid', () => {
    const docs = frameDocs(image) as Array<{ [field: string]: unknown }>;
    const odd = fc.oneof(
      fc.anything({ maxDepth: 1 }),
      fc.constantFrom(-1, 0, 1, 2 ** 53, 1.5, '', '0', '-1', '9223372036854775808', 'x', null, new Uint8Array(3)),
    );
    const edit = fc.record({
      frame: fc.nat(),
      field: fc.nat(),
      // Replace the whole field, or one item of a column.
      item: fc.option(fc.nat(), { nil: null }),
      value: odd,
      dropFrame: fc.boolean(),
    });
    let refused = 0;
    fc.assert(
      fc.property(edit, ({ frame, field, item, value, dropFrame }) => {
        const copy = docs.map((d) => ({ ...d }));
        const doc = copy[frame % copy.length];
        const names = Object.keys(doc);
        const name = names[field % names.length];
        const old = doc[name];
        if (item !== null && Array.isArray(old) && old.length > 0) doc[name] = old.map((x, i) => (i === item % old.length ? value : x));
        else doc[name] = value;
        if (dropFrame && copy.length > 1) copy.splice(1 + (frame % (copy.length - 1)), 1);
        if ('refused' in restoreOrRefuse(framed(copy))) refused++;
      }),
      fuzzParams(150),
    );
    expect(refused).toBeGreaterThan(0);
  }, fuzzTimeoutMs(150, 30));
});

describe('fuzz: snapshot save files', () => {
  it('a damaged file is refused with a SnapshotFileError; an intact one restores exactly', () => {
    const source = populated();
    const file = encodeSnapshotFile(source.snapshot(), { members: [], authRevision: 1 });
    const image = decodeSnapshotFile(file);
    const intact = restoreOrRefuse(image);
    expect('restored' in intact && intact.restored.hash()).toBe(source.hash());
    fc.assert(
      fc.property(fc.array(mutationArb, { minLength: 1, maxLength: 3 }), (mutations) => {
        const damaged = mutateAll(file, mutations);
        let inner: Uint8Array;
        try {
          inner = decodeSnapshotFile(damaged);
        } catch (err) {
          if (!(err instanceof SnapshotFileError)) throw err;
          expect(err.message).toMatch(/^snapshot file/);
          return;
        }
        expect(equalBytes(inner, image), 'a damaged snapshot file yielded an altered image').toBe(true);
        const r = restoreOrRefuse(inner);
        expect('restored' in r).toBe(true);
      }),
      fuzzParams(300),
    );
  }, fuzzTimeoutMs(300, 10));
});

describe('a damaged snapshot from a peer', () => {
  it('is dropped before Raft and storage see it; the member keeps serving (regression: it was persisted, then restore stopped the member)', async () => {
    const hub = new MemoryHub();
    const storage = new MemoryStorage();
    const logs: string[] = [];
    const kv = await startKvMember(hub, 1, [1], { storage, log: (level, msg) => logs.push(`${level}: ${msg}`) });
    try {
      await waitFor('member 1 to lead', () => kv.member.isLeader());
      const term = kv.member.status().term;
      const image = populated().snapshot().encode();
      image[image.length - 3] ^= 0x10;
      const snap = newMessage(MessageType.Snap, 1, 2, term + 1);
      snap.snapshot = {
        metadata: { index: 100_000, term: term + 1, confState: { voters: [1, 2], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false } },
        data: image,
      };
      hub.connect(2).send([snap]);
      await waitFor('the drop to be logged', () => logs.find((l) => l.includes('dropped a snapshot at index 100000 from member 2')));
      expect(logs.filter((l) => l.includes('dropped a snapshot'))).toEqual([
        expect.stringMatching(/^warn: member 1: dropped a snapshot at index 100000 from member 2: snapshot: frame at byte \d+: checksum mismatch/),
      ]);
      expect(kv.member.status().term).toBe(term);
      expect((await storage.load()).snapshot?.metadata.index).not.toBe(100_000);
      await kv.put({ key: new TextEncoder().encode('still'), value: new TextEncoder().encode('serving') });
      expect(kv.mvcc.range({ key: new TextEncoder().encode('still') }).count).toBe(1);
    } finally {
      await kv.stop();
    }
  });
});
