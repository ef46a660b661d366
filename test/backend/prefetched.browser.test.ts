// The MVCC store on IndexedDB in real Chromium, through the plan/fetch/execute read path:
// values stay in IndexedDB, a range fetches only what it returns, a restart rebuilds the index
// from the backend alone, a streamed snapshot is staged and adopted, and a read that skipped
// the fetch fails loudly.
import { describe, expect, it } from 'vitest';
import { IndexedDbBackend } from '../../adapters/storage/indexeddb/backend.ts';
import { PrefetchedBackend } from '../../src/backend/prefetched.ts';
import { MvccStateMachine } from '../../src/mvcc/state-machine.ts';
import type { RangeResponse } from '../../src/mvcc/types.ts';
import { backendBuckets, type BackendOp } from '../../src/seams.ts';
import { bytes, text } from './compliance.ts';

const freshMember = () => ({ cluster: `test-${crypto.randomUUID()}`, memberId: 1 });

async function openStore(member: { cluster: string; memberId: number }): Promise<{ sm: MvccStateMachine; backend: PrefetchedBackend }> {
  const backend = await PrefetchedBackend.open(await IndexedDbBackend.open(member));
  const sm = new MvccStateMachine({ backend });
  backend.openingDone();
  return { sm, backend };
}

const pairs = (r: RangeResponse) => r.kvs.map((kv) => [text(kv.key), text(kv.value), kv.modRevision]);

describe('MvccStateMachine on IndexedDB (PrefetchedBackend)', () => {
  it('serves ranges at any revision with values fetched from IndexedDB, and restarts from the backend alone', async () => {
    const member = freshMember();
    let { sm, backend } = await openStore(member);
    try {
      let index = 0;
      for (let i = 0; i < 300; i++) {
        const r = sm.apply({ kind: 'put', request: { key: bytes(`k${String(i % 100).padStart(3, '0')}`), value: bytes(`v${i}`) } }, { nowMs: 0, index: ++index });
        expect(r.ok).toBe(true);
      }
      sm.apply({ kind: 'deleteRange', request: { key: bytes('k050'), rangeEnd: bytes('k060') } }, { nowMs: 0, index: ++index });
      sm.apply({ kind: 'compaction', request: { revision: 150 } }, { nowMs: 0, index: ++index });
      // Some values are still in the write buffer, others only in IndexedDB: both paths are read.
      const now = await backend.read(() => sm.range({ key: bytes('k000'), rangeEnd: bytes('k100') }));
      expect(now.count).toBe(90);
      expect(pairs(now).slice(0, 2)).toEqual([['k000', 'v200', 202], ['k001', 'v201', 203]]);
      const old = await backend.read(() => sm.range({ key: bytes('k055'), revision: 160 }));
      expect(pairs(old)).toEqual([['k055', 'v155', 157]]);
      const sorted = await backend.read(() => sm.range({ key: bytes('k0'), rangeEnd: bytes('k1'), sortTarget: 4, sortOrder: 2, limit: 3 }));
      expect(pairs(sorted).map(([k]) => k)).toEqual(['k099', 'k098', 'k097']);
      // Once committed, a value is no longer in the write buffer: reading it unfetched is refused.
      await backend.durable();
      expect(() => sm.range({ key: bytes('k001') })).toThrow(/revision \d+\.\d+ was read without being fetched first/);

      await backend.close();
      ({ sm, backend } = await openStore(member));
      expect(sm.appliedIndex).toBe(index);
      expect(sm.currentRevision).toBe(302);
      expect(sm.compactRevision).toBe(150);
      const reopened = await backend.read(() => sm.range({ key: bytes('k000'), rangeEnd: bytes('k100') }));
      expect(reopened).toEqual(now);
      const put = sm.apply({ kind: 'put', request: { key: bytes('k001'), value: bytes('after restart') } }, { nowMs: 0, index: ++index });
      expect(put.ok).toBe(true);
      expect(pairs(await backend.read(() => sm.range({ key: bytes('k001') })))).toEqual([['k001', 'after restart', 303]]);
    } finally {
      await backend.close();
      await IndexedDbBackend.destroy(member);
    }
  });

  it('takes a streamed snapshot: stages the records, adopts them, rebuilds the index from IndexedDB, and keeps them across a restart', async () => {
    // The sender: a store on the memory backend, with history, deletions and a compaction.
    const source = new MvccStateMachine();
    let index = 0;
    for (let i = 0; i < 600; i++) source.apply({ kind: 'put', request: { key: bytes(`s${String(i % 70).padStart(3, '0')}`), value: bytes(`v${i}`) } }, { nowMs: 0, index: ++index });
    source.apply({ kind: 'deleteRange', request: { key: bytes('s010'), rangeEnd: bytes('s020') } }, { nowMs: 0, index: ++index });
    source.apply({ kind: 'compaction', request: { revision: 300 } }, { nowMs: 0, index: ++index });
    await source.durable();
    const { view, appliedIndex } = source.backendView();

    const member = freshMember();
    let { sm, backend } = await openStore(member);
    try {
      sm.apply({ kind: 'put', request: { key: bytes('stale'), value: bytes('before the snapshot') } }, { nowMs: 0, index: 1 });
      await backend.durable();
      const staging = sm.stage();
      // In chunks, as the stream sends them.
      let ops: BackendOp[] = [];
      const sent: Promise<void>[] = [];
      for (const bucket of backendBuckets) {
        view.range(bucket, new Uint8Array(0), null, (key, value) => {
          ops.push({ bucket, key: key.slice(), value: value.slice() });
          if (ops.length === 97) {
            sent.push(staging.write(ops));
            ops = [];
          }
        });
      }
      sent.push(staging.write(ops));
      view.release();
      await Promise.all(sent);
      // Staged, not yet adopted: the tab still serves its own content.
      expect(pairs(await backend.read(() => sm.range({ key: bytes('stale') })))).toEqual([['stale', 'before the snapshot', 2]]);
      await sm.adoptStaged(staging, appliedIndex);

      const everything = { key: bytes('\0'), rangeEnd: bytes('\xff') };
      expect(sm.appliedIndex).toBe(appliedIndex);
      expect(sm.currentRevision).toBe(source.currentRevision);
      expect(sm.compactRevision).toBe(300);
      const adopted = await backend.read(() => sm.range(everything));
      expect(adopted).toEqual(source.range(everything));
      expect(adopted.count).toBe(60);
      const atRevision = { key: bytes('s015'), revision: 500 };
      expect(await backend.read(() => sm.range(atRevision))).toEqual(source.range(atRevision));
      expect(await backend.read(() => sm.hashKV())).toEqual(source.hashKV());
      const put = sm.apply({ kind: 'put', request: { key: bytes('after'), value: bytes('adopt') } }, { nowMs: 0, index: appliedIndex + 1 });
      expect(put.ok).toBe(true);

      await backend.close();
      ({ sm, backend } = await openStore(member));
      expect(sm.appliedIndex).toBe(appliedIndex + 1);
      expect(pairs(await backend.read(() => sm.range({ key: bytes('after') })))).toEqual([['after', 'adopt', source.currentRevision + 1]]);
      expect(pairs(await backend.read(() => sm.range({ key: bytes('stale') })))).toEqual([]);
      expect((await backend.read(() => sm.range(everything))).count).toBe(61);
    } finally {
      await backend.close();
      await IndexedDbBackend.destroy(member);
    }
  });
});
