// The bounded queue behind watcher and observer async iterators.

import { describe, expect, it } from 'vitest';
import { WatchBufferOverflowError } from '../../src/client/errors.ts';
import { AsyncQueue } from '../../src/client/queue.ts';

describe('AsyncQueue', () => {
  it('hands values over in order, then ends', async () => {
    const q = new AsyncQueue<number>(10, () => new WatchBufferOverflowError(10), () => {});
    const it = q.iterator();
    const pending = it.next();
    q.push(1);
    q.push(2);
    q.end();
    q.push(3); // after end: dropped
    expect(await pending).toEqual({ value: 1, done: false });
    expect(await it.next()).toEqual({ value: 2, done: false });
    expect(await it.next()).toEqual({ value: undefined, done: true });
    expect(await it.next()).toEqual({ value: undefined, done: true });
  });

  it('an overflow drops the backlog and fails the consumer instead of leaving a silent gap', async () => {
    const q = new AsyncQueue<number>(3, () => new WatchBufferOverflowError(3), () => {});
    for (let i = 0; i < 4; i++) q.push(i);
    const it = q.iterator();
    await expect(it.next()).rejects.toBeInstanceOf(WatchBufferOverflowError);
    expect(await it.next()).toEqual({ value: undefined, done: true });
  });

  it('a failure reaches the consumer after the values queued before it', async () => {
    const q = new AsyncQueue<string>(5, () => new WatchBufferOverflowError(5), () => {});
    q.push('a');
    q.fail(new Error('boom'));
    const it = q.iterator();
    expect(await it.next()).toEqual({ value: 'a', done: false });
    await expect(it.next()).rejects.toThrow('boom');
  });

  it('return() (a break in for-await) tells the producer', async () => {
    let returned = 0;
    const q = new AsyncQueue<number>(5, () => new WatchBufferOverflowError(5), () => returned++);
    q.push(1);
    for await (const v of { [Symbol.asyncIterator]: () => q.iterator() }) {
      expect(v).toBe(1);
      break;
    }
    expect(returned).toBe(1);
  });
});
