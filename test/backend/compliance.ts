// The one compliance suite every Backend runs in its own runtime. Runtime-agnostic: no node:*
// imports here. Crash tests that need a real process live beside each adapter's test.

import { describe, expect, it } from 'vitest';
import type { AsyncBackend, Backend, BackendBatch, BackendBucket, BackendOp, BackendReader } from '../../src/seams.ts';
import { decodeU64, metaKeys, revisionKey } from '../../src/backend/layout.ts';
import { prng } from '../storage/compliance.ts';

/** Synchronous (memory, LMDB) or asynchronous (IndexedDB): the suite reads both the same way. */
export type AnyBackend = Backend | AsyncBackend;

/** One backend location that can be opened, closed and opened again (a member restart). */
export interface BackendHarness {
  /** Opens the backend at this location; the previous instance, if any, was closed. */
  open(): Promise<AnyBackend>;
  cleanup(): Promise<void>;
}

const isAsync = (b: AnyBackend): b is AsyncBackend => 'rangeChunk' in b;

/** One value, through whichever read path the backend has. */
export async function read(b: AnyBackend, bucket: BackendBucket, key: Uint8Array): Promise<Uint8Array | undefined> {
  return isAsync(b) ? (await b.getMany(bucket, [key]))[0] : b.get(bucket, key);
}

/** Successor of `key` in bytewise order: where the next chunk starts. */
function after(key: Uint8Array): Uint8Array {
  const next = new Uint8Array(key.length + 1);
  next.set(key);
  return next;
}

/**
 * Keys and values of [start, end) in the order the backend returns them, until `stop` says so.
 * An async backend is read in chunks of `chunkPairs`, so continuing after a chunk is exercised too.
 */
export async function scan(
  b: AnyBackend,
  bucket: BackendBucket,
  start: Uint8Array,
  end: Uint8Array | null,
  stop: (seen: number) => boolean = () => false,
  chunkPairs = 3,
): Promise<[string, string][]> {
  const out: [string, string][] = [];
  if (!isAsync(b)) {
    b.range(bucket, start, end, (k, v) => {
      out.push([text(k)!, text(v)!]);
      return !stop(out.length);
    });
    return out;
  }
  let from = start;
  for (;;) {
    const chunk = await b.rangeChunk(bucket, from, end, chunkPairs);
    for (const [k, v] of chunk) {
      out.push([text(k)!, text(v)!]);
      if (stop(out.length)) return out;
    }
    if (chunk.length < chunkPairs) return out;
    from = after(chunk[chunk.length - 1][0]);
  }
}

export const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
export const text = (b: Uint8Array | undefined): string | undefined => (b === undefined ? undefined : new TextDecoder().decode(b));

export function put(bucket: BackendBucket, key: string, value: string): BackendOp {
  return { bucket, key: bytes(key), value: bytes(value) };
}

export function del(bucket: BackendBucket, key: string): BackendOp {
  return { bucket, key: bytes(key), value: null };
}

export function batch(appliedIndex: number, ops: BackendOp[], clear = false): BackendBatch {
  return { clear, ops, appliedIndex };
}

/** Every pair of a bucket as text, in the order range() visits them. */
export function dump(reader: BackendReader, bucket: BackendBucket): [string, string][] {
  const out: [string, string][] = [];
  reader.range(bucket, new Uint8Array(0), null, (k, v) => {
    out.push([text(k)!, text(v)!]);
  });
  return out;
}

/** Every pair of a bucket, through whichever read path the backend has. */
function all(b: AnyBackend, bucket: BackendBucket): Promise<[string, string][]> {
  return scan(b, bucket, new Uint8Array(0), null);
}

/** A bucket without the consistent index every commit writes into meta. */
async function userPairs(b: AnyBackend, bucket: BackendBucket): Promise<[string, string][]> {
  return (await all(b, bucket)).filter(([k]) => !(bucket === 'meta' && k === 'consistent_index'));
}

export function backendCompliance(name: string, make: () => Promise<BackendHarness>, capabilities = { views: true, staging: true }): void {
  describe(`${name}: backend compliance`, () => {
    const withBackend = (title: string, body: (h: BackendHarness, backend: AnyBackend) => Promise<void>, timeoutMs = 30_000): void => {
      it(
        title,
        async () => {
          const h = await make();
          const backend = await h.open();
          try {
            await body(h, backend);
          } finally {
            await h.cleanup();
          }
        },
        timeoutMs,
      );
    };

    withBackend('starts empty at applied index 0', async (_h, backend) => {
      expect(backend.appliedIndex).toBe(0);
      expect(await read(backend, 'key', bytes('a'))).toBeUndefined();
      expect(await all(backend, 'key')).toEqual([]);
      expect(await backend.durable()).toBe(0);
      await backend.close();
    });

    withBackend('commits puts and deletes with the applied index, visible once committed', async (_h, backend) => {
      await backend.commit(batch(5, [put('key', 'b', '2'), put('key', 'a', '1'), put('lease', 'a', 'L'), put('key', 'c', '3')]));
      expect(backend.appliedIndex).toBe(5);
      expect(text(await read(backend, 'key', bytes('a')))).toBe('1');
      expect(text(await read(backend, 'lease', bytes('a')))).toBe('L');
      expect(await read(backend, 'members', bytes('a'))).toBeUndefined();
      await backend.commit(batch(7, [del('key', 'b'), put('key', 'a', '1b'), del('key', 'missing')]));
      expect(await all(backend, 'key')).toEqual([['a', '1b'], ['c', '3']]);
      expect(decodeU64((await read(backend, 'meta', metaKeys.consistentIndex))!)).toBe(7);
      await backend.close();
    });

    withBackend('ranges are [start, end) in bytewise key order and stop when visit returns false', async (_h, backend) => {
      const keys = ['\u00ff', 'a', 'ab', 'b', 'ba', 'c', '\u0001'];
      await backend.commit(batch(1, keys.map((k) => ({ bucket: 'key' as const, key: bytes(k), value: bytes(k) }))));
      const range = async (start: string, end: string | null): Promise<string[]> =>
        (await scan(backend, 'key', bytes(start), end === null ? null : bytes(end))).map(([k]) => k);
      // UTF-8 bytes: \u0001 < a < ab < b < ba < c < \u00ff (0xc3 0xbf).
      expect(await range('', null)).toEqual(['\u0001', 'a', 'ab', 'b', 'ba', 'c', '\u00ff']);
      expect(await range('a', 'b')).toEqual(['a', 'ab']);
      expect(await range('ab', 'ba')).toEqual(['ab', 'b']);
      expect(await range('b', null)).toEqual(['b', 'ba', 'c', '\u00ff']);
      expect(await range('c', 'a')).toEqual([]);
      expect(await range('a', 'a')).toEqual([]);
      expect(await range('zz', null)).toEqual(['\u00ff']);
      const firstTwo = await scan(backend, 'key', bytes(''), null, (seen) => seen >= 2);
      expect(firstTwo.map(([k]) => k)).toEqual(['\u0001', 'a']);
      await backend.close();
    });

    withBackend('binary revision keys (zero and 0xff bytes) range in revision order', async (_h, backend) => {
      const revisions = [[256, 0], [1, 0], [1, 1], [255, 2], [2 ** 40, 0], [1, 256], [65_536, 7]];
      await backend.commit(batch(1, revisions.map(([main, sub]) => ({ bucket: 'key' as const, key: revisionKey(main, sub), value: bytes(`${main}.${sub}`) }))));
      const seen = await scan(backend, 'key', revisionKey(1, 1), revisionKey(65_536, 7));
      expect(seen.map(([, v]) => v)).toEqual(['1.1', '1.256', '255.2', '256.0']);
      await backend.close();
    });

    withBackend('a clear batch empties every bucket before its own ops', async (_h, backend) => {
      await backend.commit(batch(3, [put('key', 'a', '1'), put('lease', 'l', '1'), put('members', 'm', '1')]));
      await backend.commit(batch(2, [put('key', 'z', '26')], true));
      expect(backend.appliedIndex).toBe(2);
      expect(await all(backend, 'key')).toEqual([['z', '26']]);
      expect(await all(backend, 'lease')).toEqual([]);
      expect(await all(backend, 'members')).toEqual([]);
      await backend.close();
    });

    withBackend('refuses a batch that moves the applied index backwards, and changes nothing', async (_h, backend) => {
      await backend.commit(batch(10, [put('key', 'a', '1')]));
      expect(() => backend.commit(batch(9, [put('key', 'a', 'lost')]))).toThrow(/applied index 9 is behind the stored 10/);
      await backend.commit(batch(10, [put('key', 'b', '2')]));
      expect(await all(backend, 'key')).toEqual([['a', '1'], ['b', '2']]);
      await backend.close();
    });

    withBackend('commits issued back to back apply in call order', async (_h, backend) => {
      const commits: Promise<void>[] = [];
      for (let i = 1; i <= 50; i++) commits.push(backend.commit(batch(i, [put('key', 'x', String(i)), put('key', `k${String(i).padStart(2, '0')}`, String(i))])));
      commits.push(backend.commit(batch(51, [del('key', 'k10')])));
      await Promise.all(commits);
      expect(backend.appliedIndex).toBe(51);
      expect(text(await read(backend, 'key', bytes('x')))).toBe('50');
      expect(await read(backend, 'key', bytes('k10'))).toBeUndefined();
      expect((await all(backend, 'key')).length).toBe(50);
      await backend.close();
    });

    // Asynchronous backends have no views: each of their reads is its own read transaction.
    if (capabilities.views) withBackend('a view keeps reading the state it was taken at', async (_h, backend) => {
      if (isAsync(backend)) throw new Error(`${name}: an asynchronous backend has no view()`);
      await backend.commit(batch(1, [put('key', 'a', '1'), put('key', 'b', '2')]));
      const view = backend.view();
      await backend.commit(batch(2, [put('key', 'a', 'changed'), del('key', 'b'), put('key', 'c', '3')]));
      await backend.commit(batch(3, [], true));
      expect(text(view.get('key', bytes('a')))).toBe('1');
      expect(dump(view, 'key')).toEqual([['a', '1'], ['b', '2']]);
      expect(dump(backend, 'key')).toEqual([]);
      view.release();
      await backend.close();
    });

    withBackend('survives close and reopen with its data and applied index', async (h, backend) => {
      await backend.commit(batch(4, [put('key', 'a', '1'), put('meta', 'finishedCompactRev', 'r')]));
      await backend.commit(batch(8, [put('key', 'b', '2')]));
      expect(await backend.durable()).toBe(8);
      await backend.close();
      const reopened = await h.open();
      expect(reopened.appliedIndex).toBe(8);
      expect(await all(reopened, 'key')).toEqual([['a', '1'], ['b', '2']]);
      expect(await userPairs(reopened, 'meta')).toEqual([['finishedCompactRev', 'r']]);
      await reopened.close();
    });

    if (capabilities.staging) withBackend('stages a whole new content beside the live one and adopts it in one step', async (h, backend) => {
      await backend.commit(batch(5, [put('key', 'old', '1'), put('lease', 'l', 'L')]));
      const staging = backend.stage!();
      await staging.write([put('key', 'new-a', 'A'), put('meta', 'finishedCompactRev', 'r')]);
      await staging.write([put('key', 'new-b', 'B')]);
      // Until adopted, reads and commits see only the live content.
      expect(await all(backend, 'key')).toEqual([['old', '1']]);
      await backend.commit(batch(6, [put('key', 'old2', '2')]));
      expect(await all(backend, 'key')).toEqual([['old', '1'], ['old2', '2']]);
      const before = capabilities.views ? (backend as Backend).view() : null;
      await staging.adopt(3);
      expect(backend.appliedIndex).toBe(3);
      expect(await all(backend, 'key')).toEqual([['new-a', 'A'], ['new-b', 'B']]);
      expect(await all(backend, 'lease')).toEqual([]);
      expect(await userPairs(backend, 'meta')).toEqual([['finishedCompactRev', 'r']]);
      // A view taken before the switch keeps the old content.
      if (before !== null) {
        expect(dump(before, 'key')).toEqual([['old', '1'], ['old2', '2']]);
        before.release();
      }
      // Commits go on from the adopted index, on the new content, and survive a restart.
      await backend.commit(batch(4, [put('key', 'after', 'x')]));
      expect(await backend.durable()).toBe(4);
      await backend.close();
      const reopened = await h.open();
      expect(reopened.appliedIndex).toBe(4);
      expect(await all(reopened, 'key')).toEqual([['after', 'x'], ['new-a', 'A'], ['new-b', 'B']]);
      // The next staging starts empty, whatever the previous slot held.
      const next = reopened.stage!();
      await next.write([put('key', 'only', '1')]);
      await next.adopt(9);
      expect(await all(reopened, 'key')).toEqual([['only', '1']]);
      await reopened.close();
    });

    if (capabilities.staging) withBackend('adopts after the commits called before it', async (_h, backend) => {
      await backend.commit(batch(1, [put('key', 'live', '1')]));
      const staging = backend.stage!();
      await staging.write([put('key', 'staged', 's')]);
      // Not awaited before adopt is called: the backend orders them.
      const before = backend.commit(batch(2, [put('key', 'lost', 'x')]));
      await Promise.all([before, staging.adopt(10)]);
      expect(backend.appliedIndex).toBe(10);
      await backend.commit(batch(11, [put('key', 'after', 'a')]));
      expect(backend.appliedIndex).toBe(11);
      expect(await all(backend, 'key')).toEqual([['after', 'a'], ['staged', 's']]);
      await backend.close();
    });

    if (capabilities.staging) withBackend('commits called while an adopt is in flight land on the adopted content, after it', async (h, backend) => {
      await backend.commit(batch(1, [put('key', 'live', '1')]));
      const staging = backend.stage!();
      // Not awaited: the adopt's flip waits for these writes, the commits below for the flip.
      void staging.write([put('key', 'staged', 's')]);
      const adopted = staging.adopt(10);
      const right = backend.commit(batch(11, [put('key', 'right-after', 'a')]));
      await Promise.resolve();
      const later = backend.commit(batch(12, [put('key', 'a-turn-later', 'b')]));
      await Promise.all([adopted, right, later]);
      expect(backend.appliedIndex).toBe(12);
      expect(await all(backend, 'key')).toEqual([['a-turn-later', 'b'], ['right-after', 'a'], ['staged', 's']]);
      expect(await backend.durable()).toBe(12);
      await backend.close();
      const reopened = await h.open();
      expect(reopened.appliedIndex).toBe(12);
      expect(await all(reopened, 'key')).toEqual([['a-turn-later', 'b'], ['right-after', 'a'], ['staged', 's']]);
      await reopened.close();
    });

    if (capabilities.staging) withBackend('an abandoned or restarted staging area leaves the live content, and a new one starts empty', async (h, backend) => {
      await backend.commit(batch(2, [put('key', 'live', '1')]));
      const abandoned = backend.stage!();
      await abandoned.write([put('key', 'partial', 'p')]);
      abandoned.abandon();
      await expect(async () => abandoned.adopt(7)).rejects.toThrow(/adopted, abandoned or replaced/);
      // A staging area cut off by a restart (as by a crash mid-stream).
      const cut = backend.stage!();
      await cut.write([put('key', 'cut', 'c')]);
      await backend.close();
      const reopened = await h.open();
      expect(reopened.appliedIndex).toBe(2);
      expect(await all(reopened, 'key')).toEqual([['live', '1']]);
      const fresh = reopened.stage!();
      const replaced = reopened.stage!();
      await expect(async () => fresh.write([put('key', 'x', 'x')])).rejects.toThrow(/adopted, abandoned or replaced/);
      await replaced.write([put('key', 'retry', 'r')]);
      await replaced.adopt(7);
      expect(await all(reopened, 'key')).toEqual([['retry', 'r']]);
      await expect(async () => replaced.write([del('key', 'retry')])).rejects.toThrow(/adopted, abandoned or replaced/);
      await reopened.close();
    });

    withBackend('matches a naive model over random batches and restarts', async (h, first) => {
      const random = prng(1801);
      const buckets: BackendBucket[] = ['key', 'lease', 'members'];
      const model = new Map<BackendBucket, Map<string, string>>(buckets.map((b) => [b, new Map()]));
      let backend = first;
      let index = 0;
      for (let step = 0; step < 300; step++) {
        if (random() < 0.05) {
          await backend.close();
          backend = await h.open();
          expect(backend.appliedIndex).toBe(index);
        }
        const clear = random() < 0.02;
        if (clear) for (const m of model.values()) m.clear();
        const ops: BackendOp[] = [];
        const opCount = Math.floor(random() * 20);
        for (let i = 0; i < opCount; i++) {
          const bucket = buckets[Math.floor(random() * buckets.length)];
          const key = `k${Math.floor(random() * 40)}`;
          if (random() < 0.3) {
            ops.push(del(bucket, key));
            model.get(bucket)!.delete(key);
          } else {
            const value = `v${step}.${i}`.repeat(1 + Math.floor(random() * 30));
            ops.push(put(bucket, key, value));
            model.get(bucket)!.set(key, value);
          }
        }
        index += Math.floor(random() * 3);
        await backend.commit(batch(index, ops, clear));
        for (const bucket of buckets) {
          const expected = [...model.get(bucket)!].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
          expect(await all(backend, bucket), `step ${step} bucket ${bucket}`).toEqual(expected);
        }
      }
      await backend.close();
    });
  });
}
