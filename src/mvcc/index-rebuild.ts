// The key index rebuilt from a backend's `key` bucket, when a store opens on a backend that holds
// data: at a restart, and after adopting a snapshot streamed from the leader (both through
// KvStore.open). O(records) for the scan plus, only if the keys were not written in ascending
// order, O(keys log keys) for one sort.
//
// It reads as little as the index needs, because a restart of a member holding millions of keys
// waits for it: records come as views where the backend offers them (`rangeViews`: no copy of
// any value), only the header fields of each KeyValue are decoded (the value is stepped over),
// a key written once costs a slab slot and no Record, and the ordered index is built in one
// bulk load from sorted arrays instead of one B-tree insert (three walks: find the shared key
// string, get, set) per record. While the keys arrive in ascending order (a store filled in key
// order, or keys that carry a time) no lookup structure is needed either: a key greater than
// the last one is new. The first key that is not switches the scan to a hash map of positions.

import bulkLoadImport from 'sorted-btree/extended/bulkLoad.js';
import type { BTree } from './btree.ts';
import { compareKeyStrings, toBinaryString, type KeyString } from './bytes.ts';
import { KeyIndex, RecordSlab, type IndexEntry } from './key-index.ts';
import { decodeKeyValueHeader, emptyKeyValueHeader, parseRevisionKey } from '../backend/layout.ts';
import type { Backend } from '../seams.ts';

// sorted-btree is CommonJS (see btree.ts): Node's ESM loader hands over the exports object.
const bulkLoad = ((bulkLoadImport as unknown as { bulkLoad?: unknown }).bulkLoad ?? bulkLoadImport) as <K, V>(
  keys: K[],
  values: V[],
  maxNodeSize: number,
  compare: (a: K, b: K) => number,
  loadFactor?: number,
) => BTree<K, V>;

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
 * Leaves filled to this fraction by the bulk load: later inserts of keys between loaded ones
 * then split fewer leaves, while a store that only grows at its end (most) loses little room.
 */
const leafLoadFactor = 0.9;

export function rebuildKeyIndex(backend: Backend, nodeKeysMax: number): RebuiltIndex {
  const slab = new RecordSlab();
  /** Keys in the order first seen, and each one's entry at the same position. */
  let keys: KeyString[] = [];
  let entries: IndexEntry[] = [];
  /** Key → position in `keys`; null while every new key was greater than the one before. */
  let positions: Map<KeyString, number> | null = null;
  let ascending = true;
  let records = 0;
  let newestMain = 0;
  const header = emptyKeyValueHeader();

  const position = (key: KeyString): number | undefined => {
    if (positions === null) {
      if (keys.length === 0 || keys[keys.length - 1] < key) return undefined;
      positions = new Map();
      for (let i = 0; i < keys.length; i++) positions.set(keys[i], i);
    }
    return positions.get(key);
  };

  const visit = (k: Uint8Array, v: Uint8Array): void => {
    const { main, sub, tombstone } = parseRevisionKey(k);
    decodeKeyValueHeader(v, header);
    const { createRevision, version, lease } = header;
    if (tombstone !== (version === 0) || header.modRevision !== main) {
      throw new Error(`kvStore.open: record at ${main}.${sub} is inconsistent (version ${version}, mod revision ${header.modRevision})`);
    }
    const key = toBinaryString(v.subarray(header.keyStart, header.keyEnd));
    const at = position(key);
    if (at === undefined) {
      if (version === 0) throw new Error(`kvStore: tombstone at ${main}.${sub} for a key with no history`);
      if (keys.length > 0 && keys[keys.length - 1] > key) ascending = false;
      positions?.set(key, keys.length);
      keys.push(key);
      entries.push(slab.addFields(main, sub, createRevision, version, lease));
    } else {
      // One string per key, shared by all its records, as live writes do.
      const shared = keys[at];
      const entry = entries[at];
      let keyIndex: KeyIndex;
      if (typeof entry !== 'number') keyIndex = entry;
      else {
        entries[at] = keyIndex = KeyIndex.of(slab.read(entry, shared));
        slab.free(entry);
      }
      const record = { key: shared, main, sub, createRevision, version, lease };
      if (version === 0) keyIndex.tombstone(record);
      else keyIndex.put(record);
    }
    records++;
    if (main > newestMain) newestMain = main;
  };
  if (backend.rangeViews !== undefined) backend.rangeViews('key', new Uint8Array(0), null, visit);
  else backend.range('key', new Uint8Array(0), null, visit);
  positions = null;

  if (!ascending) {
    const order = keys.map((_, i) => i);
    const byKey = keys;
    // Keys are distinct: no tie to break.
    order.sort((a, b) => (byKey[a] < byKey[b] ? -1 : 1));
    const unsortedEntries = entries;
    keys = order.map((i) => byKey[i]);
    entries = order.map((i) => unsortedEntries[i]);
  }
  // bulkLoad checks that the keys ascend strictly, so a mistake above cannot build a bad tree.
  const index = bulkLoad(keys, entries, nodeKeysMax, compareKeyStrings, leafLoadFactor);
  return { index, slab, records, newestMain };
}
