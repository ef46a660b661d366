// A browser clock whose timers keep their rate in a hidden tab. Browsers clamp a background
// tab's timers to about once a second (and further after minutes); Raft ticks driven that way
// would cost the tab its leadership and stall a cluster that waits on it. Timers inside a
// dedicated Worker are not clamped, so the Worker keeps time and posts one message per
// interval; the tab runs `fn` on each. Where Workers are unavailable, this is the system clock.

import type { Clock } from '../../src/seams.ts';
import { systemClock } from './system.ts';

// The Worker's whole program: start and stop named intervals on request.
const workerSource = `
const timers = new Map();
onmessage = (e) => {
  const { op, id, ms } = e.data;
  if (op === 'start') timers.set(id, setInterval(() => postMessage(id), ms));
  else { clearInterval(timers.get(id)); timers.delete(id); }
};
`;

export function workerTimerClock(): Clock {
  if (typeof Worker === 'undefined' || typeof Blob === 'undefined' || typeof URL.createObjectURL !== 'function') return systemClock;
  const url = URL.createObjectURL(new Blob([workerSource], { type: 'text/javascript' }));
  let worker: Worker | null = null;
  const callbacks = new Map<number, () => void>();
  let nextId = 1;

  const ensureWorker = (): Worker => {
    if (worker) return worker;
    worker = new Worker(url);
    worker.onmessage = (e: MessageEvent<number>) => callbacks.get(e.data)?.();
    return worker;
  };

  return {
    now: () => performance.now(),
    every(intervalMs, fn) {
      const id = nextId++;
      callbacks.set(id, fn);
      ensureWorker().postMessage({ op: 'start', id, ms: intervalMs });
      return () => {
        if (!callbacks.delete(id)) return;
        worker?.postMessage({ op: 'stop', id });
        if (callbacks.size === 0) {
          // The last timer ended: no Worker lingers after a member closes.
          worker?.terminate();
          worker = null;
        }
      };
    },
  };
}
