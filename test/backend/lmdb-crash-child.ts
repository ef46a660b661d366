// Run by lmdb.test.ts in a child process that the test kills with SIGKILL mid-commit. Commits
// batches back to back from the stored applied index on; batch i puts OPS keys "b<i>-<j>",
// deletes batch i-3's keys and sets "last" to i, and prints "committed <i>" once committed.

import { LmdbBackend } from '../../adapters/backend/lmdb.ts';
import type { BackendOp } from '../../src/seams.ts';
import { crashBatchOps, crashKey } from './lmdb-crash-layout.ts';

const backend = LmdbBackend.open(process.argv[2]);
const value = new Uint8Array(256).fill(7);
for (let i = backend.appliedIndex + 1; ; i++) {
  const ops: BackendOp[] = [];
  for (let j = 0; j < crashBatchOps; j++) {
    ops.push({ bucket: 'key', key: crashKey(i, j), value });
    if (i > 3) ops.push({ bucket: 'key', key: crashKey(i - 3, j), value: null });
  }
  ops.push({ bucket: 'meta', key: new TextEncoder().encode('last'), value: new TextEncoder().encode(String(i)) });
  await backend.commit({ clear: false, ops, appliedIndex: i });
  process.stdout.write(`committed ${i}\n`);
}
