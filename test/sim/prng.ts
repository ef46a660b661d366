// A small seeded PRNG (xoshiro128**) with named sub-streams. Every random choice in the
// simulator comes from one of these, derived from the seed alone, so a seed replays exactly.
// Sub-streams are derived from (seed, label), not split off a parent in call order: adding a
// draw to one stream (say, the network) does not shift the choices of another (the workload).

/** splitmix32: spreads a 32-bit seed over the full state space. */
function splitmix32(state: number): () => number {
  let s = state >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/** FNV-1a over a string: turns a sub-stream label into 32 bits. */
export function hashString32(text: string, basis = 0x811c9dc5): number {
  let h = basis >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

export class Prng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  constructor(seed: number) {
    const mix = splitmix32(seed);
    this.s0 = mix();
    this.s1 = mix();
    this.s2 = mix();
    this.s3 = mix();
    // xoshiro's only forbidden state is all zeros; splitmix32 cannot produce four zeros in a row.
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) throw new Error(`prng: all-zero state from seed ${seed}`);
  }

  /** An independent stream for `label`, a function of the seed and the label only. */
  static derive(seed: number, label: string): Prng {
    return new Prng(hashString32(label, (seed ^ 0x5bd1e995) >>> 0));
  }

  /** A uniform unsigned 32-bit integer. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (this.s1 << 9) >>> 0;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    this.s0 >>>= 0;
    this.s1 >>>= 0;
    this.s2 >>>= 0;
    return result;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.nextU32() / 4294967296;
  }

  /** Uniform integer in [0, maxExclusive). */
  int(maxExclusive: number): number {
    if (!(maxExclusive > 0)) throw new Error(`prng: int() needs a positive bound, got ${maxExclusive}`);
    return Math.floor(this.next() * maxExclusive);
  }

  /** Uniform integer in [min, maxInclusive]. */
  range(min: number, maxInclusive: number): number {
    if (maxInclusive < min) throw new Error(`prng: empty range [${min}, ${maxInclusive}]`);
    return min + this.int(maxInclusive - min + 1);
  }

  chance(probability: number): boolean {
    return this.next() < probability;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('prng: pick() from an empty list');
    return items[this.int(items.length)];
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
