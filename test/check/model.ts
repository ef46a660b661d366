// Test helper: histories generated from a sequential model of etcd's key-value store, so they
// are linearizable by construction. Each operation takes effect at its own instant (10 ms
// apart) and its recorded interval spans that instant by a random margin on each side, which
// makes neighbouring operations overlap at random. Some writes lose their response (unknown
// outcome), and each such write may or may not have taken effect.

import type { FinalState, HistoryOp, OpInput, OpOutput, WatchEvent, WatchRecord } from './history.ts';

export interface ModelStep {
  input: OpInput;
  /** How far before and after its instant the operation was called and returned (0..30 ms). */
  before: number;
  after: number;
  /** For a write: whether the response was lost, and if so whether the write took effect anyway. */
  lostResponse: boolean;
  tookEffect: boolean;
}

export interface ModelRun {
  history: HistoryOp[];
  watches: WatchRecord[];
  finals: FinalState[];
}

const STEP_MS = 10;

/** Runs the steps through the model; watchers on `prefix` start at each of `watchStarts`. */
export function runModel(steps: ModelStep[], clients: number, prefix: string, watchStarts: number[]): ModelRun {
  const store = new Map<string, string>();
  let revision = 1;
  const history: HistoryOp[] = [];
  const events: WatchEvent[] = [];
  steps.forEach((step, i) => {
    const at = (i + 1) * STEP_MS * 3;
    const isWrite = step.input.f === 'put' || step.input.f === 'delete' || step.input.f === 'cas';
    const lostResponse = isWrite && step.lostResponse;
    let output: OpOutput | null = null;
    if (!lostResponse || step.tookEffect) {
      const write = (key: string, value: string | null): number => {
        revision++;
        if (value === null) store.delete(key);
        else store.set(key, value);
        events.push({ type: value === null ? 'delete' : 'put', key, value, modRevision: revision });
        return revision;
      };
      const input = step.input;
      switch (input.f) {
        case 'get':
          output = { f: 'get', value: store.get(input.key) ?? null, revision };
          break;
        case 'put':
          output = { f: 'put', revision: write(input.key, input.value) };
          break;
        case 'delete': {
          const existed = store.has(input.key);
          output = { f: 'delete', deleted: existed ? 1 : 0, revision: existed ? write(input.key, null) : revision };
          break;
        }
        case 'cas': {
          const current = store.get(input.key) ?? null;
          if (current === input.expected) output = { f: 'cas', succeeded: true, value: null, revision: write(input.key, input.value) };
          else output = { f: 'cas', succeeded: false, value: current, revision };
          break;
        }
        case 'range': {
          const kvs: Record<string, string> = {};
          for (const [k, v] of store) if (k.startsWith(input.prefix)) kvs[k] = v;
          output = { f: 'range', kvs, revision };
          break;
        }
      }
    }
    const call = at - step.before;
    if (lostResponse) history.push({ id: i + 1, client: i % clients, call, ret: Infinity, input: step.input, output: null });
    else history.push({ id: i + 1, client: i % clients, call, ret: at + step.after, input: step.input, output });
  });
  const watches = watchStarts.map((startRevision, w) => {
    const seen = events.filter((e) => e.modRevision >= startRevision && e.key.startsWith(prefix));
    // Cut the stream into responses at revision boundaries (each revision has one event here).
    const responses: { events: WatchEvent[] }[] = [];
    seen.forEach((e, j) => {
      if (j % (w + 2) === 0) responses.push({ events: [] });
      responses[responses.length - 1].events.push(e);
    });
    return { client: 1000 + w, prefix, startRevision, responses };
  });
  const kvs = Object.fromEntries(store);
  const finals = ['m1', 'm2', 'm3'].map((member) => ({ member, revision, kvs: { ...kvs } }));
  return { history, watches, finals };
}
