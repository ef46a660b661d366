// Writes the backend has not committed yet are read from the store's write buffer: what a range,
// a put with ignore_value or prev_kv, and a watch replaying history see before the commit must be
// the values as they were put, even if the caller reuses its request's bytes afterwards.

import { describe, expect, it } from 'vitest';
import { MemoryBackend } from '../../src/backend/memory.ts';
import { MvccStateMachine, type WatchResponse, type WatchSink } from '../../src/mvcc/index.ts';
import type { BackendBatch } from '../../src/seams.ts';

/** A memory backend whose commits wait until `release`, as LMDB's wait for their transaction. */
class HeldBackend extends MemoryBackend {
  private held: BackendBatch[] = [];
  private done: (() => void)[] = [];
  override commit(batch: BackendBatch): Promise<void> {
    this.held.push(batch);
    return new Promise((resolve) => this.done.push(resolve));
  }
  async release(): Promise<void> {
    for (const batch of this.held.splice(0)) await super.commit(batch);
    for (const done of this.done.splice(0)) done();
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
}

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array | undefined) => new TextDecoder().decode(b);

describe('the write buffer before the backend commits', () => {
  it('keeps each value as it was put, though the caller reuses its bytes', async () => {
    const backend = new HeldBackend();
    const sm = new MvccStateMachine({ backend });
    const ctx = { nowMs: 0 };
    const value = enc('first');
    expect(sm.apply({ kind: 'put', request: { key: enc('k'), value } }, ctx).ok).toBe(true);
    value.set(enc('XXXXX')); // the caller's buffer, reused for the next request
    expect(sm.apply({ kind: 'put', request: { key: enc('k'), value: enc('second'), prevKv: true } }, ctx)).toMatchObject({
      ok: true,
      response: { prevKv: { value: enc('first'), modRevision: 2 } },
    });
    expect(sm.apply({ kind: 'put', request: { key: enc('k'), ignoreValue: true, lease: 0n } }, ctx).ok).toBe(true);
    expect(sm.apply({ kind: 'put', request: { key: enc('gone'), value: enc('v') } }, ctx).ok).toBe(true);
    expect(sm.apply({ kind: 'deleteRange', request: { key: enc('gone') } }, ctx).ok).toBe(true);

    const read = () => ({
      latest: sm.range({ key: enc('k') }).kvs.map((kv) => [dec(kv.value), kv.modRevision, kv.version]),
      atTwo: sm.range({ key: enc('k'), revision: 2 }).kvs.map((kv) => dec(kv.value)),
      gone: sm.range({ key: enc('gone') }).kvs.length,
    });
    const expected = { latest: [['second', 4, 3]], atTwo: ['first'], gone: 0 };
    expect(read()).toEqual(expected);

    // A watch from revision 1 replays the history, buffered revisions included.
    const responses: WatchResponse[] = [];
    const sink: WatchSink = { send: (r) => (responses.push(r), true) };
    const stream = sm.watchHub.openStream(sink);
    stream.watch({ key: enc('\0'), rangeEnd: enc('\0'), startRevision: 1 });
    while (sm.watchHub.syncWatchers(100) > 0);
    const replay = responses.flatMap((r) => r.events ?? []).map((e) => [e.type, dec(e.kv?.key), dec(e.kv?.value), e.kv?.modRevision]);
    expect(replay).toEqual([
      [0, 'k', 'first', 2],
      [0, 'k', 'second', 3],
      [0, 'k', 'second', 4],
      [0, 'gone', 'v', 5],
      [1, 'gone', '', 6],
    ]);

    // The same once the backend has committed them.
    await backend.release();
    expect(read()).toEqual(expected);
  });
});
