// Snapshots of the whole state machine: every stored record (keys with their history), the
// current and compaction revisions, and the leases. A SnapshotView is taken in O(1) (plus a copy
// of the lease table, without keys) from copy-on-write clones; encoding it later never blocks
// apply, and writes applied meanwhile do not leak into it.

import { Packr } from 'msgpackr';
import { toKeyString } from './bytes.ts';
import type { Record } from './key-index.ts';
import type { StoreView } from './kv-store.ts';
import type { LeaseState } from './lessor.ts';

/** Bumped on any incompatible change of the encoding. */
export const SNAPSHOT_FORMAT = 1;

const packr = new Packr({ useRecords: false, moreTypes: false });

interface EncodedSnapshot {
  format: number;
  currentRevision: number;
  compactRevision: number;
  /** Columns of the records, in revision order. Values are concatenated into one blob. */
  keys: string[];
  mains: number[];
  subs: number[];
  createRevisions: number[];
  versions: number[];
  valueLengths: number[];
  values: Uint8Array;
  /** Lease ids as decimal strings ('' for none). */
  recordLeases: string[];
  leaseIds: string[];
  leaseTtlSeconds: number[];
  leaseRemainingTtlSeconds: number[];
  nextLeaseId: string;
}

export interface DecodedSnapshot {
  currentRevision: number;
  compactRevision: number;
  records: Record[];
  leases: LeaseState[];
  nextLeaseId: bigint;
}

export class SnapshotView {
  constructor(
    private readonly store: StoreView,
    private readonly leases: readonly LeaseState[],
    private readonly nextLeaseId: bigint,
  ) {}

  get revision(): number {
    return this.store.currentRevision;
  }

  /** Serializes the view. O(records); may run any time after the view was taken. */
  encode(): Uint8Array {
    const keys: string[] = [];
    const mains: number[] = [];
    const subs: number[] = [];
    const createRevisions: number[] = [];
    const versions: number[] = [];
    const valueLengths: number[] = [];
    const recordLeases: string[] = [];
    const valueChunks: string[] = [];
    let valueBytes = 0;
    this.store.revisions.forEachPair((_main, records) => {
      for (const r of records) {
        keys.push(r.key);
        mains.push(r.main);
        subs.push(r.sub);
        createRevisions.push(r.createRevision);
        versions.push(r.version);
        valueLengths.push(r.value.length);
        recordLeases.push(r.lease === 0n ? '' : r.lease.toString());
        valueChunks.push(r.value);
        valueBytes += r.value.length;
      }
    });
    const values = new Uint8Array(valueBytes);
    let offset = 0;
    for (const chunk of valueChunks) {
      for (let i = 0; i < chunk.length; i++) values[offset + i] = chunk.charCodeAt(i);
      offset += chunk.length;
    }
    const encoded: EncodedSnapshot = {
      format: SNAPSHOT_FORMAT,
      currentRevision: this.store.currentRevision,
      compactRevision: this.store.compactRevision,
      keys,
      mains,
      subs,
      createRevisions,
      versions,
      valueLengths,
      values,
      recordLeases,
      leaseIds: this.leases.map((l) => l.id.toString()),
      leaseTtlSeconds: this.leases.map((l) => l.ttlSeconds),
      leaseRemainingTtlSeconds: this.leases.map((l) => l.remainingTtlSeconds),
      nextLeaseId: this.nextLeaseId.toString(),
    };
    return packr.pack(encoded);
  }
}

export function decodeSnapshot(bytes: Uint8Array): DecodedSnapshot {
  const s = packr.unpack(bytes) as EncodedSnapshot;
  if (s.format !== SNAPSHOT_FORMAT) throw new Error(`snapshot: format ${s.format}, expected ${SNAPSHOT_FORMAT}`);
  const n = s.keys.length;
  for (const column of [s.mains, s.subs, s.createRevisions, s.versions, s.valueLengths, s.recordLeases]) {
    if (column.length !== n) throw new Error(`snapshot: column of ${column.length} records, expected ${n}`);
  }
  const records: Record[] = new Array(n);
  let offset = 0;
  for (let i = 0; i < n; i++) {
    const length = s.valueLengths[i];
    const value = toKeyString(s.values.subarray(offset, offset + length));
    offset += length;
    records[i] = {
      key: s.keys[i],
      main: s.mains[i],
      sub: s.subs[i],
      createRevision: s.createRevisions[i],
      version: s.versions[i],
      value,
      lease: s.recordLeases[i] === '' ? 0n : BigInt(s.recordLeases[i]),
    };
  }
  if (offset !== s.values.length) throw new Error(`snapshot: ${s.values.length} value bytes, records use ${offset}`);
  const leases: LeaseState[] = s.leaseIds.map((id, i) => ({
    id: BigInt(id),
    ttlSeconds: s.leaseTtlSeconds[i],
    remainingTtlSeconds: s.leaseRemainingTtlSeconds[i],
  }));
  return {
    currentRevision: s.currentRevision,
    compactRevision: s.compactRevision,
    records,
    leases,
    nextLeaseId: BigInt(s.nextLeaseId),
  };
}
