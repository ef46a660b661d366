// Which member a tab is. A member's id is part of its IndexedDB database's name
// (meshkv/<cluster>/member/<id>), so the id is persisted with the member's data and needs no
// record of its own. A tab opening a member first tries the databases this origin already has
// for the cluster, lowest id first: the storage's Web Lock refuses one another tab holds, so a
// reopened tab comes back as a member whose tab is gone (itself, when it was the only one) and
// two tabs never take the same id. With none free, it makes up a new id.

import { IndexedDbStorage } from '../storage/indexeddb/index.ts';
import { StorageError } from '../storage/errors.ts';
import type { MemberId } from '../../src/raft/types.ts';

export interface ClaimedIdentity {
  id: MemberId;
  storage: IndexedDbStorage;
  /** True when the database held Raft state: the member was in a cluster before. */
  hasState: boolean;
}

/** Ids from this origin's meshkv databases of `cluster`, ascending. */
export async function knownMemberIds(cluster: string): Promise<MemberId[]> {
  const prefix = IndexedDbStorage.databaseName({ cluster, memberId: 1 }).replace(/1$/, '');
  const ids: MemberId[] = [];
  for (const db of await indexedDB.databases()) {
    if (!db.name?.startsWith(prefix)) continue;
    const id = Number(db.name.slice(prefix.length));
    if (Number.isSafeInteger(id) && id > 0) ids.push(id);
  }
  return ids.sort((a, b) => a - b);
}

/** Opens the storage of an existing member of `cluster` no other tab holds, or of a new one. */
export async function claimIdentity(cluster: string): Promise<ClaimedIdentity> {
  for (const id of await knownMemberIds(cluster)) {
    const storage = await openUnlessLocked(cluster, id);
    if (storage) return { id, storage, hasState: await holdsState(storage) };
  }
  for (;;) {
    const id = newMemberId();
    const storage = await openUnlessLocked(cluster, id);
    if (storage) return { id, storage, hasState: await holdsState(storage) };
  }
}

async function openUnlessLocked(cluster: string, memberId: MemberId): Promise<IndexedDbStorage | null> {
  try {
    return await IndexedDbStorage.open({ cluster, memberId });
  } catch (err) {
    if (err instanceof StorageError && err.code === 'locked') return null;
    throw err;
  }
}

/** Peeks at the state; the member's own load() reads it again. */
async function holdsState(storage: IndexedDbStorage): Promise<boolean> {
  const s = await storage.load();
  return s.snapshot !== null || s.entries.length > 0 || s.hardState.term > 0;
}

/** A random id below 2^53 (etcd's ids are 64-bit; ours must stay exact in a JS number). */
function newMemberId(): MemberId {
  const words = crypto.getRandomValues(new Uint32Array(2));
  return (words[0] & 0x1fffff) * 2 ** 32 + words[1] || 1;
}
