import type { Clock } from '../../src/seams.ts';

/** The runtime's monotonic clock and timers (Node and browsers alike). */
export const systemClock: Clock = {
  now: () => performance.now(),
  every(intervalMs, fn) {
    const handle = setInterval(fn, intervalMs);
    return () => clearInterval(handle);
  },
};
