// The IndexedDB layout of one member's storage, its upgrade path, and the checks every record
// read back must pass.
//
// Database `meshkv/<cluster, URI-encoded>/member/<id>`, schema version 1:
//   entries   key = entry index (keyPath 'index'), value = { index, term, type, data }
//   meta      key 'hardState' → { term, vote, commit }
//             key 'snapshot'  → { metadata: { index, term, confState }, data }
// The stored log is contiguous and starts right after the snapshot's index (or at 1).

import type { DBSchema, IDBPDatabase, IDBPTransaction } from 'idb';
import type { ConfState, Entry, HardState, Snapshot } from '../../../src/raft/types.ts';
import { emptyHardState } from '../../../src/raft/types.ts';
import type { PersistedState } from '../../../src/seams.ts';
import { StorageError } from '../errors.ts';

export const entriesStore = 'entries';
export const metaStore = 'meta';
export const hardStateKey = 'hardState';
export const snapshotKey = 'snapshot';

export interface MeshkvDbSchema extends DBSchema {
  entries: { key: number; value: Entry };
  meta: { key: string; value: HardState | Snapshot };
}

export type MeshkvDb = IDBPDatabase<MeshkvDbSchema>;
type UpgradeTransaction = IDBPTransaction<MeshkvDbSchema, ('entries' | 'meta')[], 'versionchange'>;

/**
 * Each step upgrades a database from the version before it; step i produces version i + 1.
 * A new layout appends a step (migrating records inside the upgrade transaction) and never
 * edits an old one, so a database of any earlier version reaches the current one.
 */
const upgradeSteps: ReadonlyArray<(db: MeshkvDb, tx: UpgradeTransaction) => void> = [
  (db) => {
    db.createObjectStore(entriesStore, { keyPath: 'index' });
    db.createObjectStore(metaStore);
  },
];

export const schemaVersion = upgradeSteps.length;

/** Brings a database from `oldVersion` (0 when it was just created) to schemaVersion. */
export function upgrade(db: MeshkvDb, oldVersion: number, tx: UpgradeTransaction): void {
  for (let version = oldVersion; version < schemaVersion; version++) upgradeSteps[version](db, tx);
}

/** The database of member `memberId` of cluster `cluster`: distinct clusters never share one. */
export function databaseNameOf(cluster: string, memberId: number): string {
  if (typeof cluster !== 'string' || cluster === '') throw new TypeError('cluster must be a non-empty string');
  if (!Number.isSafeInteger(memberId) || memberId <= 0) throw new TypeError(`member id ${memberId} is not a positive safe integer`);
  // Encoding keeps the name unambiguous whatever characters the cluster name holds.
  return `meshkv/${encodeURIComponent(cluster)}/member/${memberId}`;
}

/** Raw records as read in one transaction, before any check. */
export interface RawRecords {
  metaKeys: IDBValidKey[];
  metaValues: unknown[];
  entries: unknown[];
}

/** Checks every record and the log's shape; throws StorageError('corrupt') naming database, store and key. */
export function decodeState(database: string, raw: RawRecords): PersistedState {
  let hardState = emptyHardState();
  let snapshot: Snapshot | null = null;
  raw.metaKeys.forEach((key, i) => {
    const where = `IndexedDB database "${database}", store "${metaStore}", key ${JSON.stringify(key)}`;
    if (key === hardStateKey) hardState = decodeHardState(where, raw.metaValues[i]);
    else if (key === snapshotKey) snapshot = decodeSnapshot(where, raw.metaValues[i]);
    else throw corrupt(where, 'unknown record');
  });
  const snapshotIndex = (snapshot as Snapshot | null)?.metadata.index ?? 0;
  const entries: Entry[] = [];
  let previous: Entry | null = null;
  for (const value of raw.entries) {
    const key = (value as { index?: unknown }).index;
    const where = `IndexedDB database "${database}", store "${entriesStore}", key ${String(key)}`;
    const e = decodeEntry(where, value);
    const expected = previous === null ? snapshotIndex + 1 : previous.index + 1;
    if (e.index < expected && previous === null) {
      throw corrupt(where, `entry is at or below the snapshot index ${snapshotIndex}; the log must start at ${expected}`);
    }
    if (e.index !== expected) throw corrupt(where, `gap in the log: entries ${expected}..${e.index - 1} are missing`);
    if (previous !== null && e.term < previous.term) throw corrupt(where, `term ${e.term} is below term ${previous.term} of the entry before it`);
    entries.push(e);
    previous = e;
  }
  return { hardState, snapshot, entries };
}

function decodeHardState(where: string, v: unknown): HardState {
  const r = record(where, v, ['term', 'vote', 'commit']);
  return { term: count(where, r, 'term'), vote: count(where, r, 'vote'), commit: count(where, r, 'commit') };
}

function decodeSnapshot(where: string, v: unknown): Snapshot {
  const r = record(where, v, ['metadata', 'data']);
  const m = record(`${where}, field metadata`, r.metadata, ['index', 'term', 'confState']);
  const mWhere = `${where}, field metadata`;
  return {
    metadata: { index: count(mWhere, m, 'index'), term: count(mWhere, m, 'term'), confState: decodeConfState(`${mWhere}.confState`, m.confState) },
    data: bytes(where, r, 'data'),
  };
}

function decodeConfState(where: string, v: unknown): ConfState {
  const r = record(where, v, ['voters', 'learners', 'votersOutgoing', 'learnersNext', 'autoLeave']);
  const ids = (field: string): number[] => {
    const list = r[field];
    if (!Array.isArray(list) || !list.every((id) => Number.isSafeInteger(id) && id > 0)) {
      throw corrupt(where, `field ${field} is not a list of member ids`);
    }
    return list as number[];
  };
  if (typeof r.autoLeave !== 'boolean') throw corrupt(where, 'field autoLeave is not a boolean');
  return { voters: ids('voters'), learners: ids('learners'), votersOutgoing: ids('votersOutgoing'), learnersNext: ids('learnersNext'), autoLeave: r.autoLeave };
}

function decodeEntry(where: string, v: unknown): Entry {
  const r = record(where, v, ['index', 'term', 'type', 'data']);
  const type = count(where, r, 'type');
  if (type > 255) throw corrupt(where, `field type ${type} is not a byte`);
  const index = count(where, r, 'index');
  if (index === 0) throw corrupt(where, 'entry index 0: indexes start at 1');
  return { index, term: count(where, r, 'term'), type, data: bytes(where, r, 'data') };
}

/** An object with exactly `fields`: an extra or missing field means the record is not ours. */
function record(where: string, v: unknown, fields: string[]): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw corrupt(where, `expected an object with fields ${fields.join(', ')}, found ${describe(v)}`);
  const r = v as Record<string, unknown>;
  const keys = Object.keys(r);
  const missing = fields.filter((f) => !(f in r));
  const extra = keys.filter((k) => !fields.includes(k));
  if (missing.length > 0 || extra.length > 0) {
    throw corrupt(where, `expected fields ${fields.join(', ')}; missing [${missing.join(', ')}], unexpected [${extra.join(', ')}]`);
  }
  return r;
}

function count(where: string, r: Record<string, unknown>, field: string): number {
  const n = r[field];
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw corrupt(where, `field ${field} is ${describe(n)}, not a non-negative safe integer`);
  return n;
}

function bytes(where: string, r: Record<string, unknown>, field: string): Uint8Array {
  const b = r[field];
  if (!(b instanceof Uint8Array)) throw corrupt(where, `field ${field} is ${describe(b)}, not a Uint8Array`);
  return b;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return `an object of class ${v.constructor?.name ?? '(none)'}`;
  return `${typeof v} ${JSON.stringify(v)}`;
}

function corrupt(where: string, what: string): StorageError {
  return new StorageError('corrupt', `${where}: ${what}`);
}
