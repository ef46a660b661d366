import { describe, expect, it } from 'vitest';
import { SizedQueue } from '../../adapters/transport/sized-queue.ts';

describe('SizedQueue', () => {
  it('keeps order and the byte total through shifts, removals and compaction', () => {
    const q = new SizedQueue<string>((s) => s.length, 'test queue');
    const pushed: string[] = [];
    for (let i = 0; i < 5000; i++) {
      const item = 'x'.repeat(i % 7) + i;
      q.push(item);
      pushed.push(item);
    }
    // Past the compaction threshold, with items still queued.
    for (let i = 0; i < 3000; i++) expect(q.shift()).toBe(pushed[i]);
    expect(q.removeAt(5)).toBe(pushed[3005]);
    const left = pushed.slice(3000).filter((_, i) => i !== 5);
    expect(q.length).toBe(left.length);
    expect(q.bytes).toBe(left.reduce((n, s) => n + s.length, 0));
    expect(q.at(0)).toBe(left[0]);
    expect(q.removeAt(0)).toBe(left[0]);
    q.clear();
    expect([q.length, q.bytes]).toEqual([0, 0]);
  });
});
