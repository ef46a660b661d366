import type { Clock } from '../../src/seams.ts';

/**
 * A clock that can be jumped forward and run fast or slow, for fault injection. Every consumer
 * in the member measures time with `now()` (the Raft driver turns elapsed time into ticks, the
 * lessor expires leases by it), so the timers keep firing on the underlying clock's schedule:
 * at a rate of 0.5 each timer callback finds half as much time passed, and delivers half the
 * ticks. `now()` never goes backwards, as the Clock seam promises: jumps are forward only and
 * a rate change takes effect from the current reading.
 */
export class AdjustableClock implements Clock {
  private anchorBase: number;
  private anchorNow: number;
  private currentRate = 1;
  private jumpedMs = 0;

  constructor(private readonly base: Clock) {
    this.anchorBase = base.now();
    this.anchorNow = this.anchorBase;
  }

  now(): number {
    return this.anchorNow + (this.base.now() - this.anchorBase) * this.currentRate;
  }

  every(intervalMs: number, fn: () => void): () => void {
    return this.base.every(intervalMs, fn);
  }

  /** Moves the clock forward by `ms` at once. */
  jump(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`a clock jump must be a finite number of milliseconds >= 0, not ${ms}`);
    this.reanchor();
    this.anchorNow += ms;
    this.jumpedMs += ms;
  }

  /** From now on the clock advances `rate` milliseconds per millisecond of the underlying clock. */
  setRate(rate: number): void {
    if (!Number.isFinite(rate) || rate <= 0) throw new RangeError(`a clock rate must be a finite number > 0, not ${rate}`);
    this.reanchor();
    this.currentRate = rate;
  }

  get rate(): number {
    return this.currentRate;
  }

  /** The sum of every jump so far. */
  get jumped(): number {
    return this.jumpedMs;
  }

  private reanchor(): void {
    const base = this.base.now();
    this.anchorNow += (base - this.anchorBase) * this.currentRate;
    this.anchorBase = base;
  }
}
