// One-shot timers on top of the Clock seam, the only source of time in src/client.

import type { Clock } from '../seams.ts';

/** Calls `fn` once after `delayMs`. Returns a function that cancels it. */
export function after(clock: Clock, delayMs: number, fn: () => void): () => void {
  let pending = true;
  const stop = clock.every(delayMs, () => {
    if (!pending) return;
    pending = false;
    stop();
    fn();
  });
  return () => {
    pending = false;
    stop();
  };
}
