// The bbolt reader and writer (src/backend/bbolt.ts) against each other. Files real etcd writes
// and reads are the test in test/etcd-api/etcd-snapshot.test.ts.

import { describe, expect, it } from 'vitest';
import { BoltFormatError, BoltReader, BoltWriter, boltPageBytes, writeBoltBytes } from '../../src/backend/bbolt.ts';
import { prng } from '../raft/prng.ts';

type Buckets = Map<string, { key: Uint8Array; value: Uint8Array }[]>;

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}

/** Every bucket's entries as hex pairs, in key order. */
function dump(reader: BoltReader): Record<string, [string, string][]> {
  const out: Record<string, [string, string][]> = {};
  for (const name of reader.bucketNames()) out[name] = reader.entries(name)!.map((e) => [hex(e.key), hex(e.value!)]);
  return out;
}

function expected(buckets: Buckets): Record<string, [string, string][]> {
  const out: Record<string, [string, string][]> = {};
  for (const name of [...buckets.keys()].sort()) {
    out[name] = buckets.get(name)!.map((e): [string, string] => [hex(e.key), hex(e.value)]).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  }
  return out;
}

function randomBuckets(seed: number, keysMax: number, valueBytesMax: number): Buckets {
  const random = prng(seed);
  const buckets: Buckets = new Map();
  const count = 1 + Math.floor(random() * 6);
  for (let b = 0; b < count; b++) {
    const keys = new Map<string, { key: Uint8Array; value: Uint8Array }>();
    const n = Math.floor(random() * keysMax);
    for (let i = 0; i < n; i++) {
      const key = Uint8Array.from({ length: 1 + Math.floor(random() * 40) }, () => Math.floor(random() * 256));
      // Random head, uniform tail: large values stay cheap to make and compare.
      const value = new Uint8Array(Math.floor(random() ** 3 * valueBytesMax)).fill(Math.floor(random() * 256));
      for (let j = 0; j < Math.min(8, value.length); j++) value[j] = Math.floor(random() * 256);
      keys.set(hex(key), { key, value });
    }
    buckets.set(`bucket${b}`, [...keys.values()]);
  }
  return buckets;
}

describe('bbolt', () => {
  it('reads back what it wrote: empty and inline buckets, many pages and branch levels, overflow values', () => {
    for (let seed = 1; seed <= 6; seed++) {
      const buckets = randomBuckets(seed, seed % 4 === 0 ? 3 : 800, seed % 3 === 0 ? 20_000 : 300);
      buckets.set('empty', []);
      for (const pageBytes of [1024, boltPageBytes]) {
        const file = writeBoltBytes(buckets, pageBytes);
        expect(file.length % pageBytes).toBe(0);
        const reader = new BoltReader(file);
        expect(reader.pageBytes).toBe(pageBytes);
        expect(reader.pageCount * pageBytes).toBe(file.length);
        expect(dump(reader), `seed ${seed}, ${pageBytes}-byte pages`).toEqual(expected(buckets));
      }
    }
  });

  it('writes a small bucket inline and a large one in pages, as bbolt does', () => {
    const small = new Map([['small', [{ key: Uint8Array.of(1), value: Uint8Array.of(2) }]]]);
    // Metas, freelist, then only the root page: the bucket lives inside it.
    expect(writeBoltBytes(small).length).toBe(4 * boltPageBytes);
    const large = new Map([['large', [{ key: Uint8Array.of(1), value: new Uint8Array(boltPageBytes / 4) }]]]);
    expect(writeBoltBytes(large).length).toBe(5 * boltPageBytes);
  });

  it('opens the other meta page when one is damaged, and refuses a file with neither', () => {
    const buckets = randomBuckets(7, 500, 100);
    const file = writeBoltBytes(buckets);
    const oneBad = file.slice();
    oneBad[16 + 20] ^= 1; // meta 0's root page field: its checksum no longer matches
    const reader = new BoltReader(oneBad);
    expect(reader.txid).toBe(1n);
    expect(dump(reader)).toEqual(expected(buckets));
    const bothBad = oneBad.slice();
    bothBad[boltPageBytes + 16 + 20] ^= 1;
    expect(() => new BoltReader(bothBad)).toThrow(BoltFormatError);
    expect(() => new BoltReader(bothBad)).toThrow(/^bbolt: no valid meta page \(meta page at byte 0: checksum mismatch; meta page 1 not found at any usual page size\)$/);
    expect(() => new BoltReader(new Uint8Array(100))).toThrow(/no valid meta page/);
  });

  it('refuses damaged pages with a BoltFormatError naming the page', () => {
    const buckets = randomBuckets(3, 2000, 300);
    const file = writeBoltBytes(buckets);
    const truncated = file.subarray(0, file.length - boltPageBytes);
    expect(() => new BoltReader(truncated)).toThrow(/the meta says \d+ pages of 4096 bytes, the file has \d+ bytes/);
    // Damage every page id in turn: each is caught when its page is visited.
    const reader = new BoltReader(file);
    let caught = 0;
    for (let page = 3; page < reader.pageCount; page++) {
      const damaged = file.slice();
      damaged[page * boltPageBytes] ^= 0x40;
      const r = new BoltReader(damaged);
      let error: unknown = null;
      try {
        for (const name of r.bucketNames()) r.forEach(name, () => {});
      } catch (err) {
        error = err;
      }
      // An overflow page's header is data, not checked; every other page is.
      if (error === null) continue;
      caught++;
      expect(String(error)).toMatch(/^BoltFormatError: bbolt: page \d+ says it is page \d+$/);
    }
    expect(caught).toBeGreaterThan((reader.pageCount - 3) / 2);
  });

  it('refuses keys out of order, empty keys and a bucket written twice', () => {
    const writer = new BoltWriter({ append: () => {} });
    const bucket = writer.bucket('b');
    bucket.put(Uint8Array.of(2), Uint8Array.of());
    expect(() => bucket.put(Uint8Array.of(1), Uint8Array.of())).toThrow('bbolt: keys out of order in bucket "b"');
    expect(() => bucket.put(Uint8Array.of(2), Uint8Array.of())).toThrow('bbolt: keys out of order in bucket "b"');
    expect(() => bucket.put(new Uint8Array(0), Uint8Array.of())).toThrow('bbolt: a key of 0 bytes');
    expect(() => writer.bucket('b')).toThrow('bbolt: bucket "b" written twice');
  });
});
