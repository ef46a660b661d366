// A bounded single-consumer queue behind an async iterator: producers push, the consumer pulls
// with for-await. Used by watchers and election observers.

import type { EtcdError } from './errors.ts';

type Item<T> = { value: T } | { error: Error } | { done: true };

export class AsyncQueue<T> {
  private readonly items: Item<T>[] = [];
  private wake: (() => void) | null = null;
  private overflowed = false;
  private finished = false;

  /**
   * @param itemsMax values held for the consumer; beyond it the queue is marked overflowed and
   *   the consumer gets `overflowError()` once it has drained what it already had.
   */
  constructor(
    private readonly itemsMax: number,
    private readonly overflowError: () => EtcdError,
    /** Called when the consumer stops early (break out of for-await). */
    private readonly onReturn: () => void,
  ) {
    if (!(itemsMax >= 1)) throw new Error(`AsyncQueue: itemsMax ${itemsMax} < 1`);
  }

  push(value: T): void {
    if (this.finished || this.overflowed) return;
    if (this.items.length >= this.itemsMax) {
      this.overflowed = true;
      this.items.length = 0;
      this.finish({ error: this.overflowError() });
      return;
    }
    this.add({ value });
  }

  /** The consumer sees `error` after the values already queued. */
  fail(error: Error): void {
    this.finish({ error });
  }

  end(): void {
    this.finish({ done: true });
  }

  iterator(): AsyncIterator<T> {
    return {
      next: async (): Promise<IteratorResult<T>> => {
        for (;;) {
          const item = this.items[0];
          if (item === undefined) {
            await new Promise<void>((resolve) => (this.wake = resolve));
            continue;
          }
          if ('value' in item) {
            this.items.shift();
            return { value: item.value, done: false };
          }
          if ('error' in item) {
            this.items[0] = { done: true };
            throw item.error;
          }
          return { value: undefined, done: true };
        }
      },
      return: async (): Promise<IteratorResult<T>> => {
        this.end();
        this.onReturn();
        return { value: undefined, done: true };
      },
    };
  }

  private finish(item: Item<T>): void {
    if (this.finished) return;
    this.finished = true;
    this.add(item);
  }

  private add(item: Item<T>): void {
    this.items.push(item);
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }
}
