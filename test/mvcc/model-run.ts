// The model-based run shared by the MVCC model test and the backend store tests.

import { expect } from 'vitest';
import {
  MvccStateMachine,
  type ApplyRequest,
  type WatchCreateRequest,
  type WatchResponse,
  FilterType,
} from '../../src/mvcc/index.ts';
import { RequestGenerator } from './generator.ts';
import { Model, ModelError } from './model.ts';
import { Prng } from './prng.ts';

const enc = (text: string) => new TextEncoder().encode(text);
const hex = (bytes: Uint8Array) => Array.from(bytes, (x) => x.toString(16).padStart(2, '0')).join('');

type SeenEvent = { key: string; main: number; deleted: boolean; value: string; version: number; prev?: string };

/** A watch stream whose sink is sometimes full, so its watchers keep falling behind and catching up. */
class FlakySink {
  readonly events = new Map<number, SeenEvent[]>();
  full = false;
  canceled = false;
  send(response: WatchResponse): boolean {
    if (response.canceled) this.canceled = true;
    if (this.full && response.events.length > 0) return false;
    for (const e of response.events) {
      let list = this.events.get(response.watchId);
      if (list === undefined) this.events.set(response.watchId, (list = []));
      list.push({
        key: hex(e.kv.key),
        main: e.kv.modRevision,
        deleted: e.type === 1,
        value: hex(e.kv.value),
        version: e.kv.version,
        ...(e.prevKv ? { prev: hex(e.prevKv.value) } : {}),
      });
    }
    return true;
  }
}

/** The watchers every run creates at revision 1, and which model events each must see. */
const WATCHERS: { request: WatchCreateRequest; sees: (e: { key: Uint8Array; deleted: boolean }) => boolean }[] = [
  { request: { key: new Uint8Array([0]), rangeEnd: new Uint8Array([0]), prevKv: true }, sees: () => true },
  { request: { key: enc('a/'), rangeEnd: enc('a0'), filters: [FilterType.NOPUT] }, sees: (e) => e.deleted && hex(e.key).startsWith('612f') },
  { request: { key: enc('b'), filters: [FilterType.NODELETE] }, sees: (e) => !e.deleted && hex(e.key) === '62' },
  { request: { key: enc('a'), rangeEnd: enc('b') }, sees: (e) => hex(e.key) >= '61' && hex(e.key) < '62' },
];

/** The request as readable text, for failure messages: keys and values in hex. */
function describeRequest(request: ApplyRequest): string {
  return JSON.stringify(request, (_k, v: unknown) =>
    v instanceof Uint8Array ? hex(v) : typeof v === 'bigint' ? `${v}n` : v,
  );
}

export interface RunOptions {
  /** The state machine under test (default: one on a MemoryBackend). */
  stateMachine?: () => MvccStateMachine;
  /** Awaited before some steps, so an asynchronous backend's commits land between applies. */
  pause?: (step: number) => Promise<void>;
}

/**
 * Applies `steps` seeded random requests to the state machine and to the naive model, comparing
 * every response, the revision, watch events (through a sink that is sometimes full), and the
 * hash across in-place snapshot round trips.
 */
export async function runSeed(seed: number, steps: number, options: RunOptions = {}): Promise<void> {
  const rng = new Prng(seed);
  const model = new Model();
  const sm = options.stateMachine?.() ?? new MvccStateMachine();
  const gen = new RequestGenerator(rng, () => model);
  const sink = new FlakySink();
  const stream = sm.watchHub.openStream(sink);
  const watchIds = WATCHERS.map((w) => stream.watch(w.request));
  const drainWatch = () => {
    sink.full = false;
    while (sm.watchHub.syncWatchers(rng.int(1, 5)) > 0);
  };

  for (let step = 0; step < steps; step++) {
    if (options.pause !== undefined) await options.pause(step);
    const request = gen.request();
    if (request.kind === 'compaction') drainWatch();
    let expected: { ok: true; response: unknown } | { ok: false; message: string };
    try {
      expected = { ok: true, response: model.apply(request) };
    } catch (error) {
      if (!(error instanceof ModelError)) throw error;
      expected = { ok: false, message: error.message };
    }
    const actual = sm.apply(request, { nowMs: 0 });
    const context = `seed ${seed} step ${step} ${describeRequest(request)}`;
    if (expected.ok) {
      if (!actual.ok) expect.fail(`${context}: unexpected error ${actual.error.message}`);
      expect(actual.response, context).toEqual(expected.response);
    } else {
      expect(actual.ok ? 'no error' : actual.error.message, context).toBe(expected.message);
    }
    expect(sm.currentRevision, context).toBe(model.revision);

    if (step % 250 === 0) sm.checkValid();
    if (rng.chance(0.1)) sink.full = !sink.full;
    if (rng.chance(0.2)) sm.watchHub.syncWatchers(rng.int(1, 5));
    if (rng.chance(0.01)) {
      // Snapshot round trip in place: same hash, and everything continues against the model.
      const hash = sm.hash();
      const hashKV = sm.hashKV(0);
      sm.restore(sm.snapshot().encode());
      sm.checkValid();
      expect(sm.hash(), context).toBe(hash);
      expect(sm.hashKV(0), context).toEqual(hashKV);
    }
  }
  drainWatch();
  sm.checkValid();
  expect(sink.canceled).toBe(false);
  const all = model.allEvents();
  WATCHERS.forEach((w, i) => {
    const expected = all
      .filter(w.sees)
      .map(({ key, main, deleted, value, version, prev }) => ({
        key: hex(key),
        main,
        deleted,
        value,
        version,
        ...(w.request.prevKv && prev !== undefined ? { prev } : {}),
      }));
    expect(sink.events.get(watchIds[i]) ?? [], `seed ${seed} watcher ${i}`).toEqual(expected);
  });
}

