import { expect, it } from 'vitest';
import { workerTimerClock } from '../../adapters/clock/worker-timer.ts';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

it('runs a timer from a Worker at its interval and stops it', async () => {
  const clock = workerTimerClock();
  const times: number[] = [];
  const started = clock.now();
  const stop = clock.every(20, () => times.push(clock.now()));
  await sleep(300);
  stop();
  const elapsed = clock.now() - started;
  const n = times.length;
  // A clamped (1 Hz) timer would fire at most once here; an interval never fires early.
  expect(n).toBeGreaterThanOrEqual(3);
  expect(n).toBeLessThanOrEqual(Math.floor(elapsed / 20) + 1);
  for (let i = 1; i < n; i++) expect(times[i]).toBeGreaterThanOrEqual(times[i - 1]);
  await sleep(100);
  expect(times.length).toBe(n);
});

it('keeps separate timers apart and stopping one leaves the other running', async () => {
  const clock = workerTimerClock();
  let a = 0;
  let b = 0;
  const stopA = clock.every(10, () => a++);
  const stopB = clock.every(10, () => b++);
  await sleep(100);
  stopA();
  const aAtStop = a;
  const bAtStop = b;
  await sleep(100);
  stopB();
  expect(a).toBe(aAtStop);
  expect(b).toBeGreaterThan(bAtStop);
});
