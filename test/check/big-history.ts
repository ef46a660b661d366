// Test and benchmark helper: a long linearizable history from the sequential model
// (model.ts), shaped like a torture run's — a few hot keys, heavy overlap between clients'
// operations, a share of writes with unknown outcome (half of which took effect), CASes that
// expect a recently written value, ranges over the whole prefix. Deterministic per seed.

import type { HistoryOp, OpInput } from './history.ts';
import { runModel, type ModelStep } from './model.ts';

export interface BigHistoryOptions {
  ops: number;
  keys: number;
  seed: number;
  /** How far (ms) an operation's interval may reach before and after its instant; instants are 30 ms apart. */
  spreadMs: number;
  /** Share of writes whose response is lost. */
  lostShare: number;
}

export function bigHistory(o: BigHistoryOptions): HistoryOp[] {
  let x = o.seed >>> 0 || 1;
  const random = (): number => {
    // xorshift32: enough for a test shape, and the same on every runtime.
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x1_0000_0000;
  };
  const lastPut = new Map<string, string>();
  const steps: ModelStep[] = [];
  for (let i = 0; i < o.ops; i++) {
    const key = `k/${Math.floor(random() * o.keys)}`;
    const value = `v${i}`;
    const r = random();
    let input: OpInput;
    if (r < 0.3) input = { f: 'get', key };
    else if (r < 0.55) input = { f: 'put', key, value };
    else if (r < 0.62) input = { f: 'delete', key };
    else if (r < 0.95) input = { f: 'cas', key, expected: random() < 0.2 ? null : (lastPut.get(key) ?? null), value };
    else input = { f: 'range', prefix: 'k/' };
    if (input.f === 'put' || input.f === 'cas') lastPut.set(key, value);
    steps.push({ input, before: Math.floor(random() * o.spreadMs), after: Math.floor(random() * o.spreadMs), lostResponse: random() < o.lostShare, tookEffect: random() < 0.5 });
  }
  return runModel(steps, 8, 'k/', []).history;
}
