// The simulator's agenda: events ordered by virtual time, ties broken by insertion order, so
// the run never depends on anything but the seed.

export interface Scheduled<T> {
  timeMs: number;
  seq: number;
  payload: T;
}

/** A binary min-heap on (timeMs, seq). */
export class EventQueue<T> {
  private heap: Scheduled<T>[] = [];
  private seqNext = 0;

  get size(): number {
    return this.heap.length;
  }

  push(timeMs: number, payload: T): void {
    if (!Number.isFinite(timeMs)) throw new Error(`event queue: time must be finite, got ${timeMs}`);
    const item: Scheduled<T> = { timeMs, seq: this.seqNext++, payload };
    const h = this.heap;
    h.push(item);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(h[i], h[parent])) break;
      [h[i], h[parent]] = [h[parent], h[i]];
      i = parent;
    }
  }

  peekTimeMs(): number {
    return this.heap.length > 0 ? this.heap[0].timeMs : Infinity;
  }

  pop(): Scheduled<T> | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0];
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && before(h[l], h[m])) m = l;
        if (r < h.length && before(h[r], h[m])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return top;
  }
}

function before<T>(a: Scheduled<T>, b: Scheduled<T>): boolean {
  return a.timeMs < b.timeMs || (a.timeMs === b.timeMs && a.seq < b.seq);
}
