// The key index rebuilt from a backend's `key` bucket, when a store opens on a backend that holds
// data: at a restart, and after adopting a snapshot streamed from the leader (both through
// KvStore.open). O(records) when the keys were first written in ascending order, otherwise one
// sort of the records by key: O(records log records) at worst, close to linear for keys written
// in interleaved ascending runs (what concurrent writers of sequential keys produce).
//
// It reads as little as the index needs, because a restart of a member holding millions of keys
// waits for it: records come as views where the backend offers them (`rangeViews`: no copy of
// any value), only the header fields of each KeyValue are decoded (the value is stepped over),
// a key written once costs a slab slot and no Record, and the ordered index gets one insert per
// key, in key order, instead of three B-tree walks (find the shared key string, get, set) per
// record. Records are grouped by key with a stable sort rather than a hash map from key to
// entry: on 2 M keys written by eight concurrent writers the map took 12.3 s and the sort 1.4 s
// on this loaded machine (in random order the sort was slower: 25.5 s against 13.9 s).

import { BTree } from './btree.ts';
import { compareKeyStrings, toBinaryString, type KeyString } from './bytes.ts';
import { KeyIndex, RecordSlab, type IndexEntry, type Record } from './key-index.ts';
import { decodeKeyValueHeader, emptyKeyValueHeader, parseRevisionKey } from '../backend/layout.ts';
import type { Backend } from '../seams.ts';

/** What KvStore.open takes over. */
export interface RebuiltIndex {
  readonly index: BTree<KeyString, IndexEntry>;
  readonly slab: RecordSlab;
  /** Records scanned (the store's record count). */
  readonly records: number;
  /** The newest main revision stored; 0 if none. */
  readonly newestMain: number;
}

/**
 * 4,096 records a chunk (147 KB zeroed per chunk): most stores are small, and every open makes
 * at least one chunk (65,536 records a chunk zeroed 2.4 MB per open, 2% of the simulator's CPU).
 */
const columnChunkBits = 12;
const columnChunkRecords = 1 << columnChunkBits;

/**
 * The scanned records' header fields, in scan order, in typed arrays of fixed-size chunks: no
 * object per record, and growing never copies what is held (plain arrays grown by push to 2 M
 * elements were copied ~30 times each and made most of the scan's garbage-collection time).
 */
class RecordColumns {
  private readonly chunks: { main: Float64Array; sub: Int32Array; createRevision: Float64Array; version: Float64Array; lease: BigInt64Array }[] = [];
  length = 0;

  push(main: number, sub: number, createRevision: number, version: number, lease: bigint): void {
    const i = this.length & (columnChunkRecords - 1);
    if (i === 0) {
      this.chunks.push({
        main: new Float64Array(columnChunkRecords),
        sub: new Int32Array(columnChunkRecords),
        createRevision: new Float64Array(columnChunkRecords),
        version: new Float64Array(columnChunkRecords),
        lease: new BigInt64Array(columnChunkRecords),
      });
    }
    const chunk = this.chunks[this.chunks.length - 1];
    chunk.main[i] = main;
    chunk.sub[i] = sub;
    chunk.createRevision[i] = createRevision;
    chunk.version[i] = version;
    chunk.lease[i] = lease;
    this.length++;
  }

  main(r: number): number {
    return this.chunks[r >>> columnChunkBits].main[r & (columnChunkRecords - 1)];
  }

  version(r: number): number {
    return this.chunks[r >>> columnChunkBits].version[r & (columnChunkRecords - 1)];
  }

  /** Adds record `r` to `slab` (a live put). */
  addTo(slab: RecordSlab, r: number): number {
    const chunk = this.chunks[r >>> columnChunkBits];
    const i = r & (columnChunkRecords - 1);
    return slab.addFields(chunk.main[i], chunk.sub[i], chunk.createRevision[i], chunk.version[i], chunk.lease[i]);
  }

  record(r: number, key: KeyString): Record {
    const chunk = this.chunks[r >>> columnChunkBits];
    const i = r & (columnChunkRecords - 1);
    const lease = chunk.lease[i];
    // One shared 0n: most keys have no lease.
    return { key, main: chunk.main[i], sub: chunk.sub[i], createRevision: chunk.createRevision[i], version: chunk.version[i], lease: lease === 0n ? 0n : lease };
  }
}

export function rebuildKeyIndex(backend: Backend, nodeKeysMax: number): RebuiltIndex {
  // Every record's key and header fields, in revision order (the bucket's order).
  const keys: KeyString[] = [];
  const columns = new RecordColumns();
  /** Whether every key so far is greater than the one before (then none repeats). */
  let ascending = true;
  let newestMain = 0;
  const header = emptyKeyValueHeader();
  const visit = (k: Uint8Array, v: Uint8Array): void => {
    const { main, sub, tombstone } = parseRevisionKey(k);
    decodeKeyValueHeader(v, header);
    if (tombstone !== (header.version === 0) || header.modRevision !== main) {
      throw new Error(`kvStore.open: record at ${main}.${sub} is inconsistent (version ${header.version}, mod revision ${header.modRevision})`);
    }
    const key = toBinaryString(v.subarray(header.keyStart, header.keyEnd));
    if (ascending && keys.length > 0 && !(keys[keys.length - 1] < key)) ascending = false;
    keys.push(key);
    columns.push(main, sub, header.createRevision, header.version, header.lease);
    if (main > newestMain) newestMain = main;
  };
  if (backend.rangeViews !== undefined) backend.rangeViews('key', new Uint8Array(0), null, visit);
  else backend.range('key', new Uint8Array(0), null, visit);

  const records = keys.length;
  // Record positions by key, and by revision within a key (the tie-break keeps scan order).
  let order: number[] | null = null;
  if (!ascending) {
    order = new Array<number>(records);
    for (let i = 0; i < records; i++) order[i] = i;
    order.sort((a, b) => (keys[a] < keys[b] ? -1 : keys[a] > keys[b] ? 1 : a - b));
  }
  const slab = new RecordSlab();
  const indexKeys: KeyString[] = [];
  const entries: IndexEntry[] = [];
  for (let at = 0; at < records; ) {
    const first = order === null ? at : order[at];
    const key = keys[first];
    let end = at + 1;
    while (end < records && keys[order === null ? end : order[end]] === key) end++;
    if (columns.version(first) === 0) throw new Error(`kvStore: tombstone at ${columns.main(first)} for a key with no history`);
    indexKeys.push(key);
    if (end === at + 1) entries.push(columns.addTo(slab, first));
    else {
      // One string per key, shared by all its records, as live writes do.
      const keyIndex = new KeyIndex();
      for (let r = at; r < end; r++) {
        const record = columns.record(order === null ? r : order[r], key);
        if (record.version === 0) keyIndex.tombstone(record);
        else keyIndex.put(record);
      }
      entries.push(keyIndex);
    }
    at = end;
  }
  // One insert per key, in key order. A bulk load (leaves filled from the sorted keys) could do
  // it in about a third of the CPU: sorted-btree's bulkLoad, before src/mvcc/btree.ts replaced
  // that library, took 0.3 s where these inserts take 1.0 s (2 M keys).
  const index = new BTree<KeyString, IndexEntry>(undefined, compareKeyStrings, nodeKeysMax);
  for (let i = 0; i < indexKeys.length; i++) index.set(indexKeys[i], entries[i]);
  return { index, slab, records, newestMain };
}
