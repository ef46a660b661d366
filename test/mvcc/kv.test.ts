import { describe, expect, it } from 'vitest';
import { GrpcCode, SortOrder, SortTarget } from '../../src/mvcc/index.ts';
import { Harness, b, kv, str } from './helpers.ts';

describe('revisions and put', () => {
  it('starts at revision 1; the first put gets revision 2', () => {
    const h = new Harness();
    expect(h.get('a').header.revision).toBe(1);
    expect(h.put('a', '1').header.revision).toBe(2);
    expect(h.put('b', '1').header.revision).toBe(3);
    expect(h.put('a', '2').header.revision).toBe(4);
    expect(h.get('a').kvs.map(kv)).toEqual([{ key: 'a', value: '2', create: 2, mod: 4, version: 2, lease: 0n }]);
  });

  it('a delete ends the generation: the next put starts at version 1 with a new create revision', () => {
    const h = new Harness();
    h.put('a', '1');
    h.put('a', '2');
    const del = h.del('a');
    expect(del.deleted).toBe(1);
    expect(del.header.revision).toBe(4);
    expect(h.get('a').kvs).toEqual([]);
    h.put('a', '3');
    expect(h.get('a').kvs.map(kv)).toEqual([{ key: 'a', value: '3', create: 5, mod: 5, version: 1, lease: 0n }]);
    expect(h.get('a', 3).kvs.map(kv)).toEqual([{ key: 'a', value: '2', create: 2, mod: 3, version: 2, lease: 0n }]);
    expect(h.get('a', 4).kvs).toEqual([]);
  });

  it('put prev_kv returns the previous pair; absent for a new key', () => {
    const h = new Harness();
    expect(h.put('a', '1', { prevKv: true }).prevKv).toBeUndefined();
    const r = h.put('a', '2', { prevKv: true });
    expect(kv(r.prevKv!)).toEqual({ key: 'a', value: '1', create: 2, mod: 2, version: 1, lease: 0n });
  });

  it('ignore_value keeps the value, ignore_lease keeps the lease; both need the key', () => {
    const h = new Harness();
    h.ok({ kind: 'leaseGrant', request: { ID: 7n, TTL: 60 } });
    h.put('a', 'v', { lease: 7n });
    h.ok({ kind: 'put', request: { key: b('a'), ignoreValue: true, lease: 7n } });
    expect(kv(h.get('a').kvs[0])).toMatchObject({ value: 'v', version: 2, lease: 7n });
    h.ok({ kind: 'put', request: { key: b('a'), value: b('w'), ignoreLease: true } });
    expect(kv(h.get('a').kvs[0])).toMatchObject({ value: 'w', version: 3, lease: 7n });
    const e = h.err({ kind: 'put', request: { key: b('zz'), ignoreValue: true } });
    expect(e.message).toBe('etcdserver: key not found');
    expect(e.code).toBe(GrpcCode.InvalidArgument);
    expect(h.sm.currentRevision).toBe(4);
  });

  it('refuses a value with ignore_value and a lease with ignore_lease', () => {
    const h = new Harness();
    h.put('a', '1');
    expect(h.err({ kind: 'put', request: { key: b('a'), value: b('x'), ignoreValue: true } }).message).toBe(
      'etcdserver: value is provided',
    );
    expect(h.err({ kind: 'put', request: { key: b('a'), lease: 5n, ignoreLease: true } }).message).toBe(
      'etcdserver: lease is provided',
    );
  });

  it('put with an unknown lease fails and writes nothing', () => {
    const h = new Harness();
    const e = h.err({ kind: 'put', request: { key: b('a'), value: b('1'), lease: 99n } });
    expect(e.message).toBe('etcdserver: requested lease not found');
    expect(e.code).toBe(GrpcCode.NotFound);
    expect(h.sm.currentRevision).toBe(1);
  });

  it('empty keys are refused everywhere', () => {
    const h = new Harness();
    for (const request of [
      { kind: 'put', request: { key: b(''), value: b('1') } },
      { kind: 'range', request: { key: b('') } },
      { kind: 'deleteRange', request: { key: b('') } },
    ] as const) {
      expect(h.err(request).message).toBe('etcdserver: key is not provided');
    }
  });

  it('keys compare bytewise, including bytes above 0x7f', () => {
    const h = new Harness();
    const keys = [new Uint8Array([0x61, 0xff]), new Uint8Array([0x61]), new Uint8Array([0x61, 0x00]), new Uint8Array([0x80])];
    for (const key of keys) h.ok({ kind: 'put', request: { key, value: b('v') } });
    const r = h.ok({ kind: 'range', request: { key: new Uint8Array([0]), rangeEnd: new Uint8Array([0]) } });
    expect(r.kvs.map((x) => [...x.key])).toEqual([[0x61], [0x61, 0x00], [0x61, 0xff], [0x80]]);
  });
});

describe('delete range', () => {
  it('deleting nothing does not bump the revision', () => {
    const h = new Harness();
    h.put('a', '1');
    const r = h.del('zz');
    expect(r.deleted).toBe(0);
    expect(r.header.revision).toBe(2);
    expect(h.sm.currentRevision).toBe(2);
  });

  it('deletes a range in one revision and returns prev_kvs', () => {
    const h = new Harness();
    h.put('a', '1');
    h.put('b', '2');
    h.put('c', '3');
    const r = h.ok({ kind: 'deleteRange', request: { key: b('a'), rangeEnd: b('c'), prevKv: true } });
    expect(r.deleted).toBe(2);
    expect(r.header.revision).toBe(5);
    expect(r.prevKvs.map(kv).map((x) => [x.key, x.value, x.mod])).toEqual([
      ['a', '1', 2],
      ['b', '2', 3],
    ]);
    expect(h.get('c').kvs.length).toBe(1);
  });

  it('range_end "\\0" deletes every key from key on', () => {
    const h = new Harness();
    for (const k of ['a', 'b', 'c']) h.put(k, 'v');
    const r = h.ok({ kind: 'deleteRange', request: { key: b('b'), rangeEnd: new Uint8Array([0]) } });
    expect(r.deleted).toBe(2);
    expect(h.get('a').kvs.length).toBe(1);
  });
});

describe('range', () => {
  function seeded(): Harness {
    const h = new Harness();
    h.put('foo', 'bar'); // 2
    h.put('foo/a', 'zz'); // 3
    h.put('foo/b', 'a'); // 4
    h.put('foo/c', 'mm'); // 5
    h.put('foo/a', 'yy'); // 6
    h.put('fop', 'x'); // 7
    return h;
  }
  const range = (h: Harness, request: Record<string, unknown>) =>
    h.ok({ kind: 'range', request: { key: b('foo/'), rangeEnd: b('foo0'), ...request } });

  it('prefix range in key order with count', () => {
    const r = range(seeded(), {});
    expect(r.kvs.map((x) => str(x.key))).toEqual(['foo/a', 'foo/b', 'foo/c']);
    expect(r.count).toBe(3);
    expect(r.more).toBe(false);
    expect(r.header.revision).toBe(7);
  });

  it('key "\\0" with range_end "\\0" is every key', () => {
    const h = seeded();
    const r = h.ok({ kind: 'range', request: { key: new Uint8Array([0]), rangeEnd: new Uint8Array([0]) } });
    expect(r.kvs.map((x) => str(x.key))).toEqual(['foo', 'foo/a', 'foo/b', 'foo/c', 'fop']);
  });

  it('limit sets more; count stays the total', () => {
    const r = range(seeded(), { limit: 2 });
    expect(r.kvs.map((x) => str(x.key))).toEqual(['foo/a', 'foo/b']);
    expect(r.more).toBe(true);
    expect(r.count).toBe(3);
    expect(range(seeded(), { limit: 3 }).more).toBe(false);
  });

  it('historical reads see the past', () => {
    const r = range(seeded(), { revision: 4 });
    expect(r.kvs.map(kv).map((x) => [x.key, x.value])).toEqual([
      ['foo/a', 'zz'],
      ['foo/b', 'a'],
    ]);
    expect(r.header.revision).toBe(7);
  });

  it('sorts by every target in both orders; a non-KEY target defaults to ascending', () => {
    const h = seeded();
    const keys = (request: Record<string, unknown>) => range(h, request).kvs.map((x) => str(x.key));
    expect(keys({ sortOrder: SortOrder.DESCEND })).toEqual(['foo/c', 'foo/b', 'foo/a']);
    expect(keys({ sortTarget: SortTarget.VALUE })).toEqual(['foo/b', 'foo/c', 'foo/a']);
    expect(keys({ sortTarget: SortTarget.VALUE, sortOrder: SortOrder.DESCEND })).toEqual(['foo/a', 'foo/c', 'foo/b']);
    expect(keys({ sortTarget: SortTarget.MOD, sortOrder: SortOrder.DESCEND })).toEqual(['foo/a', 'foo/c', 'foo/b']);
    expect(keys({ sortTarget: SortTarget.CREATE, sortOrder: SortOrder.DESCEND })).toEqual(['foo/c', 'foo/b', 'foo/a']);
    expect(keys({ sortTarget: SortTarget.VERSION, sortOrder: SortOrder.DESCEND })[0]).toBe('foo/a');
  });

  it('sort then limit: more reflects the sorted, truncated list', () => {
    const r = range(seeded(), { sortTarget: SortTarget.MOD, sortOrder: SortOrder.DESCEND, limit: 1 });
    expect(r.kvs.map((x) => str(x.key))).toEqual(['foo/a']);
    expect(r.more).toBe(true);
    expect(r.count).toBe(3);
  });

  it('keys_only drops values; count_only returns no kvs', () => {
    const h = seeded();
    expect(range(h, { keysOnly: true }).kvs.map((x) => x.value.length)).toEqual([0, 0, 0]);
    const c = range(h, { countOnly: true });
    expect(c.kvs).toEqual([]);
    expect(c.count).toBe(3);
  });

  it('min/max mod and create revision filters apply after counting', () => {
    const h = seeded();
    const r = range(h, { minModRevision: 5 });
    expect(r.kvs.map((x) => str(x.key))).toEqual(['foo/a', 'foo/c']);
    expect(r.count).toBe(3);
    expect(range(h, { maxModRevision: 4 }).kvs.map((x) => str(x.key))).toEqual(['foo/b']);
    expect(range(h, { minCreateRevision: 4 }).kvs.map((x) => str(x.key))).toEqual(['foo/b', 'foo/c']);
    expect(range(h, { maxCreateRevision: 3 }).kvs.map((x) => str(x.key))).toEqual(['foo/a']);
    const limited = range(h, { minModRevision: 5, limit: 1 });
    expect(limited.kvs.length).toBe(1);
    expect(limited.more).toBe(true);
  });

  it('future revisions are refused', () => {
    const h = seeded();
    const e = h.err({ kind: 'range', request: { key: b('foo'), revision: 8 } });
    expect(e.message).toBe('etcdserver: mvcc: required revision is a future revision');
    expect(e.code).toBe(GrpcCode.OutOfRange);
  });

  it('an inverted range is empty, not an error', () => {
    const h = seeded();
    const r = h.ok({ kind: 'range', request: { key: b('z'), rangeEnd: b('a') } });
    expect(r.kvs).toEqual([]);
    expect(r.count).toBe(0);
  });
});

describe('limits', () => {
  it('refuses requests larger than 1.5 MiB at the same size etcd 3.4.23 does', () => {
    const h = new Harness();
    // Measured against etcd 3.4.23: a 1-byte key takes values up to 1,572,840 bytes.
    const e = h.err({ kind: 'put', request: { key: b('a'), value: new Uint8Array(1_572_841) } });
    expect(e.message).toBe('etcdserver: request is too large');
    expect(e.code).toBe(GrpcCode.InvalidArgument);
    expect(h.sm.currentRevision).toBe(1);
    h.ok({ kind: 'put', request: { key: b('a'), value: new Uint8Array(1_572_840) } });
  });
});
