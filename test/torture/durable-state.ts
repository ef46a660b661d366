// What a killed member left on disk, read between the SIGKILL and the restart: the LMDB
// backend's applied index against the WAL's commit index and last entry. A kill that lands
// after a backend commit whose entries the WAL does not yet record as committed leaves the
// backend ahead of the WAL's commit index: the restart must not apply those entries again.
// One that lands before the backend commit leaves it behind: the restart must apply them from
// the WAL. Counting both shows how often SIGKILL hits each side of the backend commit.

import { join } from 'node:path';
import { LmdbBackend } from '../../adapters/backend/lmdb.ts';
import { nodeWalFs } from '../../adapters/storage/fs-wal/index.ts';
import { readWal } from '../../adapters/storage/fs-wal/replay.ts';
import { frameBytesMaxDefault } from '../../adapters/storage/fs-wal/wal.ts';

export interface DurableState {
  backendApplied: number;
  walCommit: number;
  walLastIndex: number;
}

/** Reads a stopped member's data dir (never a running one's: LMDB and the WAL are the member's). */
export async function readDurableState(dataDir: string): Promise<DurableState> {
  const wal = await readWal(nodeWalFs, dataDir, frameBytesMaxDefault);
  const backend = LmdbBackend.open(join(dataDir, 'backend'));
  try {
    const last = wal.entries.length > 0 ? wal.entries[wal.entries.length - 1].index : (wal.marker?.index ?? 0);
    return { backendApplied: backend.appliedIndex, walCommit: wal.hardState.commit, walLastIndex: last };
  } finally {
    await backend.close();
  }
}

/** Kills by where they landed relative to the backend commit. */
export interface KillLandings {
  /** The backend held entries past the WAL's commit index (committed to the backend, not yet marked committed in the WAL). */
  backendAheadOfWalCommit: number;
  /** The WAL recorded entries as committed that the backend had not applied yet. */
  backendBehindWalCommit: number;
  /** Backend and WAL commit index agreed. */
  even: number;
  /** The data dir could not be read (say, a member killed before it wrote anything). */
  unread: number;
}

export function emptyLandings(): KillLandings {
  return { backendAheadOfWalCommit: 0, backendBehindWalCommit: 0, even: 0, unread: 0 };
}

export async function noteKillLanding(landings: KillLandings, dataDir: string): Promise<DurableState | null> {
  try {
    const s = await readDurableState(dataDir);
    if (s.backendApplied > s.walCommit) landings.backendAheadOfWalCommit++;
    else if (s.backendApplied < s.walCommit) landings.backendBehindWalCommit++;
    else landings.even++;
    return s;
  } catch {
    landings.unread++;
    return null;
  }
}
