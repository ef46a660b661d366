// Plan / fetch / execute against the synchronous path: the same random requests (txns with
// VALUE compares and both branches, prev_kv, ignore_value, deletes, compactions), applied in
// batches to a store on MemoryBackend and to one on PrefetchedBackend over an asynchronous
// backend whose commits and reads complete later, must give the same responses, the same
// watch events (a prev_kv watcher, and catch-ups from history) and the same HashKV.
import { describe, expect, it } from 'vitest';
import { MemoryBackend } from '../../src/backend/memory.ts';
import { SlowBackend } from '../helpers/slow-backend.ts';
import { PrefetchedBackend } from '../../src/backend/prefetched.ts';
import { MvccStateMachine } from '../../src/mvcc/state-machine.ts';
import { CompareResult, CompareTarget, type ApplyRequest, type RequestOp, type WatchResponse } from '../../src/mvcc/types.ts';
import { prng } from '../storage/compliance.ts';

const b = (s: string) => new TextEncoder().encode(s);

function randomRequest(random: () => number, step: number, current: number, compacted: number): ApplyRequest {
  const key = () => b(`k${Math.floor(random() * 40)}`);
  const value = () => b(`v${Math.floor(random() * 4)}`);
  const put = (): RequestOp => ({ requestPut: { key: key(), value: value(), prevKv: random() < 0.5 } });
  const range = (): RequestOp => ({ requestRange: { key: b('k'), rangeEnd: b('l'), revision: random() < 0.3 ? Math.max(compacted, current - 3) : 0 } });
  const del = (): RequestOp => ({ requestDeleteRange: { key: key(), rangeEnd: random() < 0.3 ? b('k9') : undefined, prevKv: random() < 0.5 } });
  const ops = () => Array.from({ length: 1 + Math.floor(random() * 3) }, () => [put, range, del][Math.floor(random() * 3)]());
  const r = random();
  if (r < 0.3) return { kind: 'put', request: { key: key(), value: random() < 0.1 ? undefined : value(), ignoreValue: random() < 0.1, prevKv: random() < 0.5 } };
  if (r < 0.4) return { kind: 'deleteRange', request: { key: key(), rangeEnd: random() < 0.5 ? b('k5') : undefined, prevKv: random() < 0.5 } };
  if (r < 0.45 && current - 5 > compacted && step % 7 === 0) return { kind: 'compaction', request: { revision: current - 5 } };
  return {
    kind: 'txn',
    request: {
      compare: [{ key: key(), target: CompareTarget.VALUE, result: random() < 0.5 ? CompareResult.EQUAL : CompareResult.GREATER, value: value() }],
      success: ops(),
      failure: ops(),
    },
  };
}

describe('PrefetchedBackend: plan / fetch / execute', () => {
  it('gives the responses, watch events and HashKV of the synchronous path', async () => {
    const random = prng(1818);
    const reference = new MvccStateMachine({ backend: new MemoryBackend() });
    const prefetched = await PrefetchedBackend.open(new SlowBackend());
    const tab = new MvccStateMachine({ backend: prefetched });
    prefetched.openingDone();
    const events = { reference: [] as WatchResponse[], tab: [] as WatchResponse[] };
    let index = 0;
    let caughtUpEvents = 0;
    for (let step = 0; step < 300; step++) {
      // Only the second half has a prev_kv watcher, which makes every write read its keys' values.
      if (step === 150) {
        for (const [sm, sink] of [[reference, events.reference], [tab, events.tab]] as const) {
          sm.watchHub.openStream({ send: (r) => (sink.push(r), true) }).watch({ key: b('k'), rangeEnd: b('l'), prevKv: true });
        }
      }
      // Mostly with every earlier batch committed, so values come from the backend, not the write buffer.
      if (random() < 0.7) await prefetched.durable();
      const batch = Array.from({ length: 1 + Math.floor(random() * 4) }, () => randomRequest(random, step, reference.currentRevision, reference.compactRevision));
      const first = index + 1;
      const expected = batch.map((req, i) => reference.apply(req, { nowMs: 0, index: first + i }));
      const actual = await prefetched.run(
        () => batch.forEach((req) => tab.planApply(req)),
        () => batch.map((req, i) => tab.apply(req, { nowMs: 0, index: first + i })),
      );
      index += batch.length;
      expect(actual, `step ${step}`).toEqual(expected);
      if (step % 10 === 0) {
        // A watcher from history catches up on both.
        const start = Math.max(reference.compactRevision, reference.currentRevision - 8);
        const caught = { reference: [] as WatchResponse[], tab: [] as WatchResponse[] };
        for (const [sm, sink] of [[reference, caught.reference], [tab, caught.tab]] as const) {
          sm.watchHub.openStream({ send: (r) => (sink.push(r), true) }).watch({ key: b('k'), rangeEnd: b('l'), startRevision: start, prevKv: true });
        }
        reference.watchHub.syncWatchers();
        await prefetched.run(() => tab.watchHub.planSync(), () => tab.watchHub.syncWatchers());
        expect(caught.tab, `catch-up at step ${step}`).toEqual(caught.reference);
        caughtUpEvents += caught.tab.flatMap((r) => r.events).length;
      }
      const read = { key: b('k'), rangeEnd: b('l'), revision: random() < 0.5 ? 0 : Math.max(reference.compactRevision, reference.currentRevision - 2) };
      expect(await prefetched.read(() => tab.range(read))).toEqual(reference.range(read));
    }
    expect(caughtUpEvents).toBeGreaterThan(50);
    expect(events.tab).toEqual(events.reference);
    expect(events.tab.flatMap((r) => r.events).filter((e) => e.prevKv !== undefined).length).toBeGreaterThan(50);
    expect(await prefetched.read(() => tab.hashKV(0))).toEqual(reference.hashKV(0));
    // Outside a run, a value that is no longer buffered is refused, never read as empty.
    await prefetched.durable();
    expect(() => tab.range({ key: b('k'), rangeEnd: b('l') })).toThrow(/was read without being fetched first/);
  }, 60_000);
});
