// Seeded random requests for the model-based test and the differential run against etcd.

import type { ApplyRequest, Compare, RangeRequest, RequestOp, TxnRequest } from '../../src/mvcc/index.ts';
import type { Prng } from './prng.ts';

const enc = (text: string) => new TextEncoder().encode(text);
const KEYS: Uint8Array[] = [
  ...['a', 'b', 'c', 'a/x', 'a/y', 'a/z', 'b/x', 'ba', 'zz'].map(enc),
  new Uint8Array([0x61, 0xff]),
  new Uint8Array([0xff]),
  new Uint8Array([0x00, 0x01]),
];
const ENDS: (Uint8Array | undefined)[] = [undefined, undefined, new Uint8Array([0]), enc('a0'), enc('b'), enc('c'), enc('a/y'), enc('a')];

/** Random requests over a small key space, so that keys collide and every rule gets exercised. */
export class RequestGenerator {
  constructor(
    private readonly rng: Prng,
    /** The store's revision and compaction point, to aim historical reads and compactions. */
    private readonly state: () => { revision: number; compacted: number },
    /** TTLs to grant leases with (a real etcd expires leases while a run is going). */
    private readonly leaseTtlSeconds: () => number = () => this.rng.int(1, 60),
  ) {}

  private get model(): { revision: number; compacted: number } {
    return this.state();
  }

  private revision(): number {
    const r = this.rng;
    if (r.chance(0.5)) return 0;
    return r.int(Math.max(1, this.model.compacted - 2), this.model.revision + 2);
  }

  private key = () => this.rng.pick(KEYS);
  private end = () => this.rng.pick(ENDS);
  private lease = () => (this.rng.chance(0.7) ? 0n : BigInt(this.rng.int(1, 3)));

  range(): RangeRequest {
    const r = this.rng;
    return {
      key: r.chance(0.1) ? new Uint8Array([0]) : this.key(),
      rangeEnd: this.end(),
      limit: r.chance(0.3) ? r.int(1, 4) : 0,
      revision: this.revision(),
      sortOrder: (r.chance(0.6) ? 0 : r.int(0, 2)) as RangeRequest['sortOrder'],
      sortTarget: (r.chance(0.6) ? 0 : r.int(0, 4)) as RangeRequest['sortTarget'],
      keysOnly: r.chance(0.1),
      countOnly: r.chance(0.1),
      minModRevision: r.chance(0.1) ? r.int(1, this.model.revision) : 0,
      maxModRevision: r.chance(0.1) ? r.int(1, this.model.revision) : 0,
      minCreateRevision: r.chance(0.1) ? r.int(1, this.model.revision) : 0,
      maxCreateRevision: r.chance(0.1) ? r.int(1, this.model.revision) : 0,
    };
  }

  put() {
    const r = this.rng;
    const ignoreValue = r.chance(0.1);
    const ignoreLease = r.chance(0.1);
    return {
      key: this.key(),
      value: ignoreValue ? undefined : enc(`v${r.int(0, 20)}`),
      lease: ignoreLease ? 0n : this.lease(),
      prevKv: r.chance(0.3),
      ignoreValue,
      ignoreLease,
    };
  }

  del() {
    return { key: this.key(), rangeEnd: this.end(), prevKv: this.rng.chance(0.5) };
  }

  compare(): Compare {
    const r = this.rng;
    const target = r.int(0, 4) as Compare['target'];
    const c: Compare = { key: this.key(), target, result: r.int(0, 3) as Compare['result'] };
    if (r.chance(0.2)) c.rangeEnd = this.end();
    if (target === 0) c.version = r.int(0, 4);
    if (target === 1) c.createRevision = r.int(0, this.model.revision);
    if (target === 2) c.modRevision = r.int(0, this.model.revision);
    if (target === 3) c.value = enc(`v${r.int(0, 20)}`);
    if (target === 4) c.lease = this.lease();
    return c;
  }

  op(depth: number): RequestOp {
    const k = this.rng.int(0, depth < 2 ? 9 : 8);
    if (k <= 2) return { requestRange: this.range() };
    if (k <= 6) return { requestPut: this.put() };
    if (k <= 8) return { requestDeleteRange: this.del() };
    return { requestTxn: this.txn(depth + 1) };
  }

  txn(depth = 0): TxnRequest {
    const r = this.rng;
    return {
      compare: Array.from({ length: r.int(0, 2) }, () => this.compare()),
      success: Array.from({ length: r.int(0, 4) }, () => this.op(depth)),
      failure: Array.from({ length: r.int(0, 3) }, () => this.op(depth)),
    };
  }

  request(): ApplyRequest {
    const r = this.rng;
    const k = r.int(0, 99);
    if (k < 30) return { kind: 'put', request: this.put() };
    if (k < 50) return { kind: 'range', request: this.range() };
    if (k < 62) return { kind: 'deleteRange', request: this.del() };
    if (k < 88) return { kind: 'txn', request: this.txn() };
    if (k < 92) return { kind: 'compaction', request: { revision: r.int(this.model.compacted, this.model.revision + 1) } };
    if (k < 96) return { kind: 'leaseGrant', request: { ID: BigInt(r.int(1, 3)), TTL: this.leaseTtlSeconds() } };
    return { kind: 'leaseRevoke', request: { ID: BigInt(r.int(1, 3)) } };
  }
}

