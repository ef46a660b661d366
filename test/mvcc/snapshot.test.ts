import { describe, expect, it } from 'vitest';
import { MvccStateMachine, GrpcCode, SNAPSHOT_FRAME_RECORDS_MAX } from '../../src/mvcc/index.ts';
import { crc32c } from '../../src/codec/crc32c.ts';
import { Harness, b, kv, str } from './helpers.ts';

function populated(): Harness {
  const h = new Harness();
  h.ok({ kind: 'leaseGrant', request: { ID: 11n, TTL: 30 } });
  h.ok({ kind: 'leaseGrant', request: { ID: 12n, TTL: 40 } });
  h.put('a', '1', { lease: 11n }); // 2
  h.put('b', '1'); // 3
  h.put('a', '2', { lease: 11n }); // 4
  h.del('b'); // 5
  h.put('c', '1', { lease: 12n }); // 6
  h.ok({ kind: 'put', request: { key: new Uint8Array([0xff, 0x00, 0x80]), value: new Uint8Array([1, 2, 3]) } }); // 7
  h.ok({ kind: 'compaction', request: { revision: 4 } });
  h.put('a', '3', { lease: 11n }); // 8
  h.ok({ kind: 'leaseCheckpoint', request: { checkpoints: [{ ID: 12n, remainingTTL: 25 }] } });
  return h;
}

describe('crc32c', () => {
  it('matches the Castagnoli check value', () => {
    expect(crc32c(b('123456789'))).toBe(0xe3069283);
    expect(crc32c(new Uint8Array(0))).toBe(0);
  });
});

describe('hash', () => {
  it('equal histories hash equal; a different history does not', () => {
    const x = populated();
    const y = populated();
    expect(x.sm.hashKV(0).hash).toBe(y.sm.hashKV(0).hash);
    expect(x.sm.hash()).toBe(y.sm.hash());
    y.put('z', '1');
    expect(y.sm.hashKV(0).hash).not.toBe(x.sm.hashKV(0).hash);
    // ...but up to x's revision they still agree.
    expect(y.sm.hashKV(8).hash).toBe(x.sm.hashKV(8).hash);
  });

  it('reports the compact and hash revisions; refuses compacted and future revisions', () => {
    const h = populated();
    expect(h.sm.hashKV(6)).toMatchObject({ compactRevision: 4, hashRevision: 6 });
    expect(h.sm.hashKV(0)).toMatchObject({ compactRevision: 4, hashRevision: 8 });
    expect(() => h.sm.hashKV(4)).toThrow('etcdserver: mvcc: required revision has been compacted');
    expect(() => h.sm.hashKV(9)).toThrow('etcdserver: mvcc: required revision is a future revision');
    expect(new Harness().sm.hashKV(0).compactRevision).toBe(-1);
  });
});

describe('snapshot and restore', () => {
  it('restores keys, history, leases, compaction point and revision; hashes equal', () => {
    const original = populated();
    const bytes = original.sm.snapshot().encode();
    const restored = new MvccStateMachine();
    restored.restore(bytes);
    restored.checkValid();
    expect(restored.currentRevision).toBe(8);
    expect(restored.compactRevision).toBe(4);
    expect(restored.hashKV(0)).toEqual(original.sm.hashKV(0));
    expect(restored.hashKV(6)).toEqual(original.sm.hashKV(6));
    expect(restored.hash()).toBe(original.sm.hash());
    const all = { key: new Uint8Array([0]), rangeEnd: new Uint8Array([0]) };
    for (const revision of [0, 4, 5, 6, 7]) {
      expect(restored.range({ ...all, revision })).toEqual(original.sm.range({ ...all, revision }));
    }
    const e = (() => {
      try {
        restored.range({ ...all, revision: 3 });
      } catch (error) {
        return error as { code: number };
      }
    })();
    expect(e?.code).toBe(GrpcCode.OutOfRange);
    expect(restored.leaseLeases().leases.map((l) => l.ID)).toEqual([11n, 12n]);
    expect(restored.leaseTimeToLive(11n, true, 0).keys.map(str)).toEqual(['a']);
    expect(restored.leaseTimeToLive(12n, true, 0)).toMatchObject({ TTL: 25, grantedTTL: 40 });
  });

  it('the restored machine continues identically to the original', () => {
    const original = populated();
    const restored = new MvccStateMachine();
    restored.restore(original.sm.snapshot().encode());
    const next = [
      { kind: 'put', request: { key: b('a'), value: b('4'), prevKv: true } },
      { kind: 'leaseRevoke', request: { ID: 11n } },
      { kind: 'leaseGrant', request: { ID: 0n, TTL: 10 } },
      { kind: 'compaction', request: { revision: 9 } },
    ] as const;
    for (const request of next) {
      expect(restored.apply(request, { nowMs: 0 })).toEqual(original.sm.apply(request, { nowMs: 0 }));
    }
    expect(restored.hash()).toBe(original.sm.hash());
  });

  it('a view taken before more writes encodes the state at the time it was taken', () => {
    const h = populated();
    const view = h.sm.snapshot();
    const hashAtView = h.sm.hashKV(0);
    h.put('later', 'x');
    h.ok({ kind: 'compaction', request: { revision: 8 } });
    h.put('a', 'overwritten');
    const restored = new MvccStateMachine();
    restored.restore(view.encode());
    expect(restored.hashKV(0)).toEqual(hashAtView);
    expect(restored.range({ key: b('later') }).kvs).toEqual([]);
    expect(kv(restored.range({ key: b('a'), revision: 6 }).kvs[0])).toMatchObject({ value: '2', mod: 4 });
  });

  it('watchers catch up from the restored history, or learn it was compacted past them', () => {
    const h = new Harness();
    const events: number[] = [];
    const compacted: number[] = [];
    const stream = h.sm.watchHub.openStream({
      send: (r) => {
        for (const e of r.events) events.push(e.kv.modRevision);
        if (r.compactRevision !== 0) compacted.push(r.compactRevision);
        return true;
      },
    });
    stream.watch({ key: b('a') });
    stream.watch({ key: b('b') });
    const leader = new Harness();
    leader.put('a', '1'); // 2
    leader.put('a', '2'); // 3
    h.sm.restore(leader.sm.snapshot().encode());
    h.sm.watchHub.syncWatchers();
    expect(events).toEqual([2, 3]);
    // Both watchers now wait for revision 4; the next snapshot is compacted past it.
    leader.put('b', '1'); // 4
    leader.put('b', '2'); // 5
    leader.ok({ kind: 'compaction', request: { revision: 5 } });
    h.sm.restore(leader.sm.snapshot().encode());
    h.sm.watchHub.syncWatchers();
    expect(compacted).toEqual([5, 5]);
    expect(stream.watchIds).toEqual([]);
  });
});

describe('snapshot frames', () => {
  it('encodes frame by frame while applies continue; the frames restore the state at the view', () => {
    const h = new Harness();
    const records = SNAPSHOT_FRAME_RECORDS_MAX * 2 + 100;
    for (let i = 0; i < records; i++) h.put(`k${i % 5000}`, `${i}`);
    const view = h.sm.snapshot();
    const hashAtView = h.sm.hash();
    const frames: Uint8Array[] = [];
    let applied = 0;
    for (const frame of view.frames()) {
      frames.push(frame);
      h.put(`during${applied++}`, 'x');
      if (applied === 2) h.ok({ kind: 'compaction', request: { revision: h.sm.currentRevision - 10 } });
    }
    expect(frames.length).toBe(1 + 3);
    const bytes = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
    let offset = 0;
    for (const frame of frames) {
      bytes.set(frame, offset);
      offset += frame.length;
    }
    const restored = new MvccStateMachine();
    restored.restore(bytes);
    expect(restored.hash()).toBe(hashAtView);
    expect(restored.range({ key: b('during0') }).kvs).toEqual([]);
    expect(str(restored.range({ key: b('k7'), revision: 9 }).kvs[0].value)).toBe('7');
  });

  it('a truncated snapshot is refused and leaves the state as it was', () => {
    const bytes = populated().sm.snapshot().encode();
    const h = new Harness();
    h.ok({ kind: 'leaseGrant', request: { ID: 1n, TTL: 60 } });
    h.put('mine', '1', { lease: 1n });
    const hash = h.sm.hash();
    expect(() => h.sm.restore(bytes.subarray(0, bytes.length - 3))).toThrow(/snapshot/);
    expect(h.sm.hash()).toBe(hash);
    h.sm.checkValid();
    expect(h.sm.leaseTimeToLive(1n, true, 0).keys.map(str)).toEqual(['mine']);
  });
});
