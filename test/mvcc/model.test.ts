import { describe, expect, it } from 'vitest';
import {
  MvccStateMachine,
  type ApplyRequest,
  type Compare,
  type RangeRequest,
  type RequestOp,
  type TxnRequest,
  type WatchCreateRequest,
  type WatchResponse,
  FilterType,
} from '../../src/mvcc/index.ts';
import { Model, ModelError } from './model.ts';
import { Prng } from './prng.ts';

const enc = (text: string) => new TextEncoder().encode(text);
const KEYS: Uint8Array[] = [
  ...['a', 'b', 'c', 'a/x', 'a/y', 'a/z', 'b/x', 'ba', 'zz'].map(enc),
  new Uint8Array([0x61, 0xff]),
  new Uint8Array([0xff]),
  new Uint8Array([0x00, 0x01]),
];
const ENDS: (Uint8Array | undefined)[] = [undefined, undefined, new Uint8Array([0]), enc('a0'), enc('b'), enc('c'), enc('a/y'), enc('a')];
const hex = (bytes: Uint8Array) => Array.from(bytes, (x) => x.toString(16).padStart(2, '0')).join('');

class Generator {
  constructor(
    private readonly rng: Prng,
    private readonly model: Model,
  ) {}

  private revision(): number {
    const r = this.rng;
    if (r.chance(0.5)) return 0;
    return r.int(Math.max(1, this.model.compacted - 2), this.model.revision + 2);
  }

  private key = () => this.rng.pick(KEYS);
  private end = () => this.rng.pick(ENDS);
  private lease = () => (this.rng.chance(0.7) ? 0n : BigInt(this.rng.int(1, 3)));

  range(): RangeRequest {
    const r = this.rng;
    return {
      key: r.chance(0.1) ? new Uint8Array([0]) : this.key(),
      rangeEnd: this.end(),
      limit: r.chance(0.3) ? r.int(1, 4) : 0,
      revision: this.revision(),
      sortOrder: (r.chance(0.6) ? 0 : r.int(0, 2)) as RangeRequest['sortOrder'],
      sortTarget: (r.chance(0.6) ? 0 : r.int(0, 4)) as RangeRequest['sortTarget'],
      keysOnly: r.chance(0.1),
      countOnly: r.chance(0.1),
      minModRevision: r.chance(0.1) ? r.int(1, this.model.revision) : 0,
      maxModRevision: r.chance(0.1) ? r.int(1, this.model.revision) : 0,
      minCreateRevision: r.chance(0.1) ? r.int(1, this.model.revision) : 0,
      maxCreateRevision: r.chance(0.1) ? r.int(1, this.model.revision) : 0,
    };
  }

  put() {
    const r = this.rng;
    const ignoreValue = r.chance(0.1);
    const ignoreLease = r.chance(0.1);
    return {
      key: this.key(),
      value: ignoreValue ? undefined : enc(`v${r.int(0, 20)}`),
      lease: ignoreLease ? 0n : this.lease(),
      prevKv: r.chance(0.3),
      ignoreValue,
      ignoreLease,
    };
  }

  del() {
    return { key: this.key(), rangeEnd: this.end(), prevKv: this.rng.chance(0.5) };
  }

  compare(): Compare {
    const r = this.rng;
    const target = r.int(0, 4) as Compare['target'];
    const c: Compare = { key: this.key(), target, result: r.int(0, 3) as Compare['result'] };
    if (r.chance(0.2)) c.rangeEnd = this.end();
    if (target === 0) c.version = r.int(0, 4);
    if (target === 1) c.createRevision = r.int(0, this.model.revision);
    if (target === 2) c.modRevision = r.int(0, this.model.revision);
    if (target === 3) c.value = enc(`v${r.int(0, 20)}`);
    if (target === 4) c.lease = this.lease();
    return c;
  }

  op(depth: number): RequestOp {
    const k = this.rng.int(0, depth < 2 ? 9 : 8);
    if (k <= 2) return { requestRange: this.range() };
    if (k <= 6) return { requestPut: this.put() };
    if (k <= 8) return { requestDeleteRange: this.del() };
    return { requestTxn: this.txn(depth + 1) };
  }

  txn(depth = 0): TxnRequest {
    const r = this.rng;
    return {
      compare: Array.from({ length: r.int(0, 2) }, () => this.compare()),
      success: Array.from({ length: r.int(0, 4) }, () => this.op(depth)),
      failure: Array.from({ length: r.int(0, 3) }, () => this.op(depth)),
    };
  }

  request(): ApplyRequest {
    const r = this.rng;
    const k = r.int(0, 99);
    if (k < 30) return { kind: 'put', request: this.put() };
    if (k < 50) return { kind: 'range', request: this.range() };
    if (k < 62) return { kind: 'deleteRange', request: this.del() };
    if (k < 88) return { kind: 'txn', request: this.txn() };
    if (k < 92) return { kind: 'compaction', request: { revision: r.int(this.model.compacted, this.model.revision + 1) } };
    if (k < 96) return { kind: 'leaseGrant', request: { ID: BigInt(r.int(1, 3)), TTL: r.int(1, 60) } };
    return { kind: 'leaseRevoke', request: { ID: BigInt(r.int(1, 3)) } };
  }
}

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

function runSeed(seed: number, steps: number): void {
  const rng = new Prng(seed);
  const model = new Model();
  const sm = new MvccStateMachine();
  const gen = new Generator(rng, model);
  const sink = new FlakySink();
  const stream = sm.watchHub.openStream(sink);
  const watchIds = WATCHERS.map((w) => stream.watch(w.request));
  const drainWatch = () => {
    sink.full = false;
    while (sm.watchHub.syncWatchers(rng.int(1, 5)) > 0);
  };

  for (let step = 0; step < steps; step++) {
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

describe('model-based: MvccStateMachine against a naive reference', () => {
  // MVCC_MODEL_SEEDS=n adds seeds 1000..1000+n-1 for a longer soak; a failing seed is replayable.
  const extra = Number(process.env.MVCC_MODEL_SEEDS ?? 0);
  const seeds = [1, 2, 3, 42, 2026, 31337, ...Array.from({ length: extra }, (_, i) => 1000 + i)];
  for (const seed of seeds) {
    it(`seed ${seed}: 3000 random requests give identical responses; the watcher sees every write once`, () => {
      runSeed(seed, 3000);
    });
  }
});
