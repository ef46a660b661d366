/**
 * A latency histogram with fixed bucket bounds (milliseconds), in the shape Prometheus
 * exposes: cumulative counts per upper bound, a sum and a count. O(buckets) per observation.
 */
export class Histogram {
  readonly counts: number[];
  sum = 0;
  count = 0;

  constructor(readonly boundsMs: readonly number[]) {
    for (let i = 1; i < boundsMs.length; i++) {
      if (!(boundsMs[i] > boundsMs[i - 1])) throw new Error(`histogram bounds must increase: ${boundsMs.join(', ')}`);
    }
    this.counts = new Array(boundsMs.length).fill(0);
  }

  observe(ms: number): void {
    this.sum += ms;
    this.count++;
    for (let i = 0; i < this.boundsMs.length; i++) if (ms <= this.boundsMs[i]) this.counts[i]++;
  }
}

/** etcd's bucket bounds for disk latencies (0.001 s doubling to 8.192 s), in milliseconds. */
export const diskBucketsMs: readonly number[] = Array.from({ length: 14 }, (_, i) => 2 ** i);
