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
    // Sifts the new item up by moving parents down into the hole (a swap through an array
    // literal allocated one per step: a tenth of a seed's allocation went through this heap).
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(item, h[parent])) break;
      h[i] = h[parent];
      i = parent;
    }
    h[i] = item;
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
      // Sifts `last` down from the root, moving the smaller child up into the hole.
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = l;
        if (l >= h.length) break;
        if (r < h.length && before(h[r], h[l])) m = r;
        if (!before(h[m], last)) break;
        h[i] = h[m];
        i = m;
      }
      h[i] = last;
    }
    return top;
  }
}

function before<T>(a: Scheduled<T>, b: Scheduled<T>): boolean {
  return a.timeMs < b.timeMs || (a.timeMs === b.timeMs && a.seq < b.seq);
}
