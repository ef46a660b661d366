// Runs an IndexedDB member storage inside a dedicated Worker that the test terminates without
// close(): the browser then tears down the worker's connection and Web Lock exactly as it does
// for a tab that is closed or crashes (no page code runs on the way out).

import { IndexedDbStorage } from '../../adapters/storage/indexeddb/index.ts';
import type { IndexedDbMember } from '../../adapters/storage/indexeddb/index.ts';
import type { Entry } from '../../src/raft/types.ts';

export interface CrashWorkerRequest {
  member: IndexedDbMember;
  /** Synced saves of `entriesPerSave` entries each, awaited before reporting 'saved'. */
  syncedSaves: number;
  entriesPerSave: number;
  /** Entries of one more save started right after 'saved' and never awaited. */
  inflightEntries: number;
}

export type CrashWorkerReport = { kind: 'saved'; lastIndex: number } | { kind: 'failed'; message: string };

function entriesFrom(first: number, count: number, term: number): Entry[] {
  return Array.from({ length: count }, (_, i) => ({ index: first + i, term, type: 0, data: new TextEncoder().encode(`worker-${first + i}`) }));
}

self.onmessage = async (event: MessageEvent<CrashWorkerRequest>) => {
  const { member, syncedSaves, entriesPerSave, inflightEntries } = event.data;
  try {
    const storage = await IndexedDbStorage.open(member);
    await storage.load();
    let last = 0;
    for (let i = 0; i < syncedSaves; i++) {
      await storage.save({ hardState: { term: 1, vote: 1, commit: last }, entries: entriesFrom(last + 1, entriesPerSave, 1), snapshot: null }, true);
      last += entriesPerSave;
    }
    self.postMessage({ kind: 'saved', lastIndex: last } satisfies CrashWorkerReport);
    if (inflightEntries > 0) {
      void storage.save({ hardState: { term: 2, vote: 1, commit: last }, entries: entriesFrom(last + 1, inflightEntries, 2), snapshot: null }, false);
    }
  } catch (err) {
    self.postMessage({ kind: 'failed', message: String(err) } satisfies CrashWorkerReport);
  }
};
