// Fuzzing etcd's JSON gateway: random and damaged bodies (wrong types, bad base64, huge
// numbers, deep nesting, invalid UTF-8, truncated JSON) POSTed to every /v3 route. The answer
// is a 200 for a body that is a valid request, or a 4xx with a JSON error like etcd's gateway
// ({error, message, code}) — never a 5xx or a stack — and a refused body changes nothing.

import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serve, type Served } from '../etcd-api/harness.ts';
import { fuzzParams, fuzzTimeoutMs } from './fuzz-config.ts';
import { mutateAll, mutationArb } from './mutations.ts';

const b64 = (text: string) => Buffer.from(text).toString('base64');

/** Every unary route with valid request bodies; keys under junk/ so that valid writes under valid/ stay apart. */
const routes: Record<string, unknown[]> = {
  '/v3/kv/range': [{ key: b64('junk/a') }, { key: b64('junk/'), range_end: b64('junk0'), limit: '3', revision: '0', sort_order: 'DESCEND' }],
  '/v3/kv/put': [{ key: b64('junk/a'), value: b64('x'), prev_kv: true }],
  '/v3/kv/deleterange': [{ key: b64('junk/a'), range_end: b64('junk0') }],
  '/v3/kv/txn': [
    {
      compare: [{ key: b64('junk/a'), target: 'VALUE', result: 'EQUAL', value: b64('x') }],
      success: [{ request_put: { key: b64('junk/c'), value: b64('z') } }],
      failure: [{ request_range: { key: b64('junk/a') } }],
    },
  ],
  '/v3/kv/compaction': [{ revision: '1' }],
  '/v3/lease/grant': [{ TTL: '600' }],
  '/v3/lease/revoke': [{ ID: '7' }],
  '/v3/lease/timetolive': [{ ID: '7', keys: true }],
  '/v3/lease/leases': [{}],
  '/v3/cluster/member/list': [{}],
  '/v3/maintenance/status': [{}],
  '/v3/maintenance/hash': [{}],
  '/v3/watch': [{ create_request: { key: b64('junk/'), range_end: b64('junk0') } }],
};
const paths = Object.keys(routes);

/** Odd JSON values: wrong types, bad base64, numbers beyond every integer type, deep nesting. */
const oddValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.constantFrom('!!!', 'YQ', 'YQ===', '====', 'not base64', '\u0000', '-1', '1e400', '18446744073709551616', '9223372036854775808', 'NaN', ''),
  fc.constantFrom(-1, 2 ** 53, 2 ** 64, 1.5, -0, 1e308, true, null, [], {}),
);

/** A path into a JSON value (indexes taken modulo the keys there), and the value put at its end. */
function replaceAt(doc: unknown, path: number[], value: unknown): unknown {
  if (path.length === 0 || doc === null || typeof doc !== 'object') return value;
  const keys = Object.keys(doc);
  if (keys.length === 0) return Array.isArray(doc) ? [value] : { [String(path[0])]: value };
  const key = keys[path[0] % keys.length];
  const inner = replaceAt((doc as Record<string, unknown>)[key], path.slice(1), value);
  if (Array.isArray(doc)) return doc.map((x, i) => (String(i) === key ? inner : x));
  return { ...doc, [key]: inner };
}

const enc = new TextEncoder();
/** How long an opened watch stream may stay silent before the test hangs up. */
const watchSilenceMs = 100;
/** Every answer, a watch's included, starts within this. */
const headersWaitMs = 10_000;

const bodyArb: fc.Arbitrary<{ route: number; body: Uint8Array; kind: string }> = fc.oneof(
  fc.record({ kind: fc.constant('random bytes'), route: fc.nat(), body: fc.uint8Array({ maxLength: 128 }) }),
  fc.record({ kind: fc.constant('random JSON'), route: fc.nat(), body: fc.jsonValue({ maxDepth: 3 }).map((v) => enc.encode(JSON.stringify(v) ?? 'null')) }),
  fc
    .record({ route: fc.nat(), seed: fc.nat(), path: fc.array(fc.nat(), { maxLength: 4 }), value: oddValue, extra: fc.option(fc.string({ maxLength: 8 }), { nil: null }) })
    .map(({ route, seed, path, value, extra }) => {
      const seeds = routes[paths[route % paths.length]];
      let doc = replaceAt(seeds[seed % seeds.length], path, value);
      if (extra !== null && doc !== null && typeof doc === 'object' && !Array.isArray(doc)) doc = { ...doc, [extra]: 1 };
      return { kind: 'wrong field', route, body: enc.encode(JSON.stringify(doc) ?? 'null') };
    }),
  fc
    .record({ route: fc.nat(), seed: fc.nat(), mutations: fc.array(mutationArb, { minLength: 1, maxLength: 3 }) })
    .map(({ route, seed, mutations }) => {
      const seeds = routes[paths[route % paths.length]];
      return { kind: 'damaged text', route, body: mutateAll(enc.encode(JSON.stringify(seeds[seed % seeds.length])), mutations) };
    }),
  fc
    .record({ route: fc.nat(), depth: fc.integer({ min: 1, max: 20_000 }), shape: fc.constantFrom('array', 'object', 'txn') })
    .map(({ route, depth, shape }) => ({ kind: `nested ${shape}`, route, body: enc.encode(nested(shape, depth)) })),
);

/** JSON nested `depth` levels deep; 'txn' nests transactions inside transactions, which the schema allows. */
function nested(shape: string, depth: number): string {
  if (shape === 'array') return '['.repeat(depth) + ']'.repeat(depth);
  if (shape === 'object') return '{"key":'.repeat(depth) + '1' + '}'.repeat(depth);
  const open = '{"success":[{"request_txn":';
  return open.repeat(depth) + '{}' + '}]}'.repeat(depth);
}

describe('fuzz: etcd JSON gateway', () => {
  let s: Served;
  let base: string;

  beforeAll(async () => {
    s = await serve({ minTtlSeconds: 3600 });
    base = `http://${s.endpoint}`;
  });

  afterAll(async () => {
    await s?.stop();
  });

  function state(): unknown {
    const m = s.kv.mvcc;
    return { revision: m.currentRevision, compactRevision: m.compactRevision, hash: m.hashKV(0).hash, leases: m.leaseLeases().leases.map((l) => String(l.ID)) };
  }

  /** POSTs a body; for a watch that opened, reads its first line and hangs up. */
  async function post(path: string, body: Uint8Array): Promise<{ status: number; text: string }> {
    const abort = new AbortController();
    const headersTimer = setTimeout(() => abort.abort(new Error(`no response headers from ${path} within ${headersWaitMs} ms`)), headersWaitMs);
    const res = await fetch(base + path, { method: 'POST', body: new Uint8Array(body), signal: abort.signal }).finally(() => clearTimeout(headersTimer));
    if (path !== '/v3/watch' || res.status !== 200) return { status: res.status, text: await res.text() };
    // A watch request that asks for nothing (say, `{}`) opens a silent stream, as etcd's does.
    const reader = res.body!.getReader();
    const silence = setTimeout(() => abort.abort(), watchSilenceMs);
    let text = '';
    try {
      while (!text.includes('\n')) {
        const { value, done } = await reader.read();
        if (done) break;
        text += new TextDecoder().decode(value);
      }
    } catch (err) {
      if (!abort.signal.aborted) throw err;
    } finally {
      clearTimeout(silence);
      abort.abort();
    }
    return { status: res.status, text: text.split('\n')[0] || '{}' };
  }

  let validWrites = 0;
  async function validWrite(): Promise<void> {
    const key = `valid/${validWrites++}`;
    const revision = s.kv.mvcc.currentRevision;
    const r = await post('/v3/kv/put', enc.encode(JSON.stringify({ key: b64(key), value: b64(key) })));
    expect(r.status).toBe(200);
    expect(s.kv.mvcc.currentRevision).toBe(revision + 1);
    expect(s.kv.mvcc.range({ key: enc.encode(key) }).kvs.map((kv) => kv.modRevision)).toEqual([revision + 1]);
  }

  // Regressions found by this fuzzer.
  it('a txn nested deeper than protobuf allows gets a 400, not a 500 from a stack overflow', async () => {
    const before = state();
    const r = await post('/v3/kv/txn', enc.encode(nested('txn', 5000)));
    expect(r.status).toBe(400);
    expect(JSON.parse(r.text).error).toMatch(/^request(\.success\[0\]\.request_txn)+: messages nested deeper than 100$/);
    const deepValue = await post('/v3/kv/range', enc.encode(nested('object', 100_000)));
    expect([deepValue.status, JSON.parse(deepValue.text).error]).toEqual([400, 'request.key: expected base64 bytes, got an object']);
    expect(state()).toEqual(before);
  });

  it('a malformed watch body still being sent gets its 400, not a connection reset', async () => {
    for (let i = 0; i < 5; i++) {
      const r = await post('/v3/watch', enc.encode('['.repeat(1_000_000)));
      expect([r.status, JSON.parse(r.text).error]).toEqual([400, 'malformed JSON body: unexpected "[" between JSON objects']);
      await validWrite();
    }
  });

  it('a watch body that asks for nothing gets its 200 at once and a silent stream (regression: no headers until an event)', async () => {
    const started = Date.now();
    const r = await post('/v3/watch', enc.encode('{}'));
    expect([r.status, r.text]).toEqual([200, '{}']);
    expect(Date.now() - started).toBeLessThan(watchSilenceMs + 2000);
  });

  const runs = 150;
  it(
    'damaged bodies get a 4xx JSON error and change nothing; valid ones a 200; the member keeps serving',
    async () => {
      const statuses = new Map<string, number>();
      await fc.assert(
        fc.asyncProperty(bodyArb, async ({ route, body, kind }) => {
          const path = paths[route % paths.length];
          const before = state();
          const r = await post(path, body);
          statuses.set(`${r.status}`, (statuses.get(`${r.status}`) ?? 0) + 1);
          expect(r.status, `${kind} to ${path} answered ${r.status}: ${r.text.slice(0, 300)}`).toBeLessThan(500);
          expect(r.text).not.toMatch(/\n\s+at /);
          const answer = JSON.parse(r.text) as Record<string, unknown>;
          if (r.status === 200) {
            expect(answer.error, `200 with an error: ${r.text.slice(0, 300)}`).toBeUndefined();
          } else {
            expect(r.status).toBeGreaterThanOrEqual(400);
            expect(answer).toEqual({ error: expect.stringMatching(/\S/), message: answer.error, code: expect.any(Number) });
            expect(state(), `${kind} to ${path} was refused (${r.text.slice(0, 200)}) but changed the store`).toEqual(before);
          }
          await validWrite();
        }),
        fuzzParams(runs),
      );
      expect(statuses.get('400')).toBeGreaterThan(0);
      expect(statuses.get('200')).toBeGreaterThan(0);
      s.kv.mvcc.checkValid();
    },
    fuzzTimeoutMs(runs, 100),
  );
});
