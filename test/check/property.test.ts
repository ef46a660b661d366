import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkAll, checkDurability, checkLinearizable, checkWatches } from './index.ts';
import type { HistoryOp, OpInput } from './history.ts';
import { acknowledgedWrite } from './ops.ts';
import { runModel, type ModelStep } from './model.ts';

const RUNS = 300;
const key = fc.constantFrom('k/a', 'k/b', 'k/c', 'x/d');
const value = fc.constantFrom('1', '2', '3');
const input: fc.Arbitrary<OpInput> = fc.oneof(
  fc.record({ f: fc.constant('get' as const), key }),
  fc.record({ f: fc.constant('put' as const), key, value }),
  fc.record({ f: fc.constant('delete' as const), key }),
  fc.record({ f: fc.constant('cas' as const), key, expected: fc.option(value, { nil: null }), value }),
  fc.record({ f: fc.constant('range' as const), prefix: fc.constantFrom('k/', '') }),
);
const step: fc.Arbitrary<ModelStep> = fc.record({
  input,
  before: fc.integer({ min: 0, max: 50 }),
  after: fc.integer({ min: 0, max: 50 }),
  lostResponse: fc.integer({ min: 0, max: 5 }).map((n) => n === 0),
  tookEffect: fc.boolean(),
});
const run = fc
  .record({ steps: fc.array(step, { minLength: 1, maxLength: 30 }), clients: fc.integer({ min: 1, max: 5 }), watchFrom: fc.integer({ min: 1, max: 15 }) })
  .map(({ steps, clients, watchFrom }) => runModel(steps, clients, 'k/', [1, watchFrom]));

/**
 * The same, with a distinct value per write (as real recorders use), so that writes with
 * unknown outcome that never happened are unobserved and left out of the search; a CAS expects
 * absent or the value of an earlier step's put.
 */
const uniqueValueRun = fc
  .record({ steps: fc.array(step, { minLength: 1, maxLength: 30 }), clients: fc.integer({ min: 1, max: 5 }) })
  .map(({ steps, clients }) => {
    const unique = steps.map((s, i): ModelStep => {
      const input = s.input;
      if (input.f === 'put') return { ...s, input: { ...input, value: `p${i}` } };
      if (input.f === 'cas') return { ...s, input: { ...input, value: `p${i}`, expected: i === 0 || s.before % 3 === 0 ? null : `p${s.after % i}` } };
      return s;
    });
    return runModel(unique, clients, 'k/', [1]);
  });

/** The values any write (acknowledged or not) to `key` writes, among ops called before `time`. */
function valuesWrittenBefore(history: HistoryOp[], key: string, time: number): Set<string | null> {
  const out = new Set<string | null>([null]);
  for (const op of history) {
    if (op.call > time) continue;
    const input = op.input;
    if ((input.f === 'put' || input.f === 'cas') && input.key === key) out.add(input.value);
    if (input.f === 'delete' && input.key === key) out.add(null);
  }
  return out;
}

describe('histories from a sequential model', () => {
  it('always pass every checker (random overlaps, random unknown outcomes)', () => {
    fc.assert(
      fc.property(run, ({ history, watches, finals }) => {
        const summary = checkAll(history, watches, finals);
        expect(summary.ok, JSON.stringify(summary, null, 1)).toBe(true);
      }),
      { numRuns: RUNS },
    );
  });

  it('always pass with a distinct value per write', () => {
    fc.assert(
      fc.property(uniqueValueRun, ({ history, watches, finals }) => {
        const summary = checkAll(history, watches, finals);
        expect(summary.ok, JSON.stringify(summary, null, 1)).toBe(true);
      }),
      { numRuns: RUNS },
    );
  });

  it('a get that reads a value never written to its key is caught', () => {
    fc.assert(
      fc.property(run, fc.nat(), ({ history }, pick) => {
        const gets = history.filter((op) => op.output?.f === 'get');
        fc.pre(gets.length > 0);
        const victim = gets[pick % gets.length];
        const mutated = history.map((op) => (op === victim ? { ...op, output: { ...op.output!, value: 'never-written' } as HistoryOp['output'] } : op));
        expect(checkLinearizable(mutated).ok).toBe(false);
      }),
      { numRuns: RUNS },
    );
  });

  it('a get that reads a value only written after it returned is caught', () => {
    fc.assert(
      fc.property(run, fc.nat(), ({ history }, pick) => {
        const futures = history.flatMap((read) => {
          if (read.output?.f !== 'get' || read.input.f !== 'get') return [];
          const k = read.input.key;
          const possible = valuesWrittenBefore(history, k, read.ret);
          const later = history.filter((w) => w.call > read.ret && (w.input.f === 'put' || w.input.f === 'cas') && w.input.key === k && !possible.has(w.input.value));
          return later.map((w) => ({ read, value: (w.input as { value: string }).value }));
        });
        fc.pre(futures.length > 0);
        const { read, value: future } = futures[pick % futures.length];
        const mutated = history.map((op) => (op === read ? { ...op, output: { f: 'get' as const, value: future, revision: op.output!.revision } } : op));
        expect(checkLinearizable(mutated).ok).toBe(false);
      }),
      { numRuns: RUNS },
    );
  });

  it('a range that misses a key it must show is caught', () => {
    fc.assert(
      fc.property(run, fc.nat(), ({ history }, pick) => {
        const ranges = history.filter((op) => op.output?.f === 'range' && Object.keys(op.output.kvs).length > 0);
        fc.pre(ranges.length > 0);
        const victim = ranges[pick % ranges.length];
        const kvs = { ...(victim.output as { kvs: Record<string, string> }).kvs };
        const dropped = Object.keys(kvs)[pick % Object.keys(kvs).length];
        // Impossible only when an acknowledged write made the key exist before the range was
        // called and nothing could have deleted it or left its existence in doubt.
        const touches = (op: HistoryOp) => op.input.f !== 'range' && op.input.f !== 'get' && op.input.key === dropped;
        fc.pre(history.some((op) => touches(op) && acknowledgedWrite(op) !== null && op.ret < victim.call));
        fc.pre(!history.some((op) => touches(op) && (op.input.f === 'delete' || op.output === null)));
        delete kvs[dropped];
        const mutated = history.map((op) => (op === victim ? { ...op, output: { ...op.output!, kvs } as HistoryOp['output'] } : op));
        expect(checkLinearizable(mutated).ok).toBe(false);
      }),
      { numRuns: RUNS },
    );
  });

  it('a watcher that skips an acknowledged write in the middle is caught', () => {
    fc.assert(
      fc.property(run, fc.nat(), ({ history, watches }, pick) => {
        const acknowledgedRevisions = new Set(history.flatMap((op) => acknowledgedWrite(op)?.revision ?? []));
        const watch = watches[0];
        const events = watch.responses.flatMap((r) => r.events);
        const middle = events.slice(0, -1).filter((e) => acknowledgedRevisions.has(e.modRevision));
        fc.pre(middle.length > 0);
        const skipped = middle[pick % middle.length];
        const responses = watch.responses.map((r) => ({ events: r.events.filter((e) => e !== skipped) }));
        const result = checkWatches(history, [{ ...watch, responses }]);
        expect(result.ok === false && result.anomaly).toBe('watch-gap');
      }),
      { numRuns: RUNS },
    );
  });

  it('a member whose final state lost a key is caught', () => {
    fc.assert(
      fc.property(run, ({ history, finals }) => {
        const [first, ...rest] = finals;
        // A key only acknowledged writes touched: its absence cannot be a write that never happened.
        const present = Object.keys(first.kvs).filter((k) => !history.some((op) => op.output === null && op.input.f !== 'range' && op.input.key === k));
        fc.pre(present.length > 0);
        const kvs = { ...first.kvs };
        delete kvs[present[0]];
        const result = checkDurability(history, [...rest, { ...first, kvs }]);
        expect(result.ok === false && result.anomaly).toBe('diverged-member');
        expect(checkDurability(history, [{ ...first, kvs }]).ok).toBe(false);
      }),
      { numRuns: RUNS },
    );
  });
});
