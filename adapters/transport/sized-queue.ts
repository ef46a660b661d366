// The per-peer send queue of the TCP and WebRTC transports: a FIFO that keeps the byte total
// of what it holds, so the transports can bound it by messages and bytes. Taken items are
// skipped by an index and the array compacted now and then, so shift() is O(1) amortized.

export class SizedQueue<T> {
  private items: T[] = [];
  private head = 0;
  private total = 0;

  /** `name` appears in the error if the byte count ever goes wrong (a bug, not bad input). */
  constructor(
    private readonly sizeOf: (item: T) => number,
    private readonly name: string,
  ) {}

  get length(): number {
    return this.items.length - this.head;
  }

  /** Σ sizeOf over the items queued. */
  get bytes(): number {
    return this.total;
  }

  /** The i-th item queued, 0 being the next to go. */
  at(i: number): T {
    return this.items[this.head + i];
  }

  push(item: T): void {
    this.items.push(item);
    this.total += this.sizeOf(item);
  }

  /** Takes the next item; the queue must not be empty. */
  shift(): T {
    const item = this.items[this.head++];
    this.total -= this.sizeOf(item);
    if (this.total < 0 || (this.head === this.items.length && this.total !== 0)) {
      throw new Error(`${this.name}: ${this.total} bytes counted for ${this.length} items`);
    }
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  /** Takes the i-th item out of the middle of the queue (O(n)). */
  removeAt(i: number): T {
    if (i === 0) return this.shift();
    const [item] = this.items.splice(this.head + i, 1);
    this.total -= this.sizeOf(item);
    return item;
  }

  clear(): void {
    this.items = [];
    this.head = 0;
    this.total = 0;
  }
}
