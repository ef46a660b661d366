// A worker thread that writes a snapshot stream's chunks (src/server/snapshot-stream.ts) into an
// LMDB staging slot, so that the receiving member's thread only passes bytes on (LmdbBackend's
// `stage().writeChunk` starts it). It opens the same environment — lmdb shares one environment
// between the threads of a process — and for each chunk checks and splits the pairs, writes
// them in one write transaction of its own, and answers with the running CRC-32C.
//
// Messages in:  { kind: 'chunk', pairs } (answered in order); { kind: 'close' } (closes the
//               environment, then the thread)
// Messages out: per chunk { kind: 'written', crc } or { kind: 'failed', message } (once a chunk
//               failed, every later one fails with the same message, nothing more is written);
//               { kind: 'error', message } if the environment cannot be opened.
//
// The stop flag (workerData.stopFlag, set by the member's thread when the staging area is
// adopted, abandoned or replaced) is read inside each write transaction, that is under LMDB's
// write lock: the next stage() empties the slot in a transaction queued after setting the flag,
// so a chunk written before that emptying is erased by it and one after it sees the flag.

import { parentPort, workerData } from 'node:worker_threads';
import { TransactionFlags } from 'lmdb';
import { crc32c } from '../../src/codec/crc32c.ts';
import { decodeChunk } from '../../src/server/snapshot-stream.ts';
import { openLmdbEnvironment, writeOps, type LmdbStagingWorkerData } from './lmdb.ts';

const { path, mapSizeBytes, slot, stopFlag } = workerData as LmdbStagingWorkerData;
const port = parentPort!;
const stopped = new Int32Array(stopFlag);

try {
  const { env, slotDbs } = openLmdbEnvironment(path, mapSizeBytes);
  const dbs = slotDbs[slot];
  let crc = 0;
  let failure: string | null = null;
  port.on('message', (m: { kind: 'chunk'; pairs: Uint8Array } | { kind: 'close' }) => {
    if (m.kind === 'close') {
      void env.close().finally(() => port.close());
      return;
    }
    if (failure === null) {
      try {
        const ops = decodeChunk(m.pairs);
        // Committed here without waiting for the disk (as the member's own commits, overlapping
        // sync): staged pairs need no durability until the adopt, whose flush covers them.
        const written = env.transactionSync(() => {
          if (Atomics.load(stopped, 0) !== 0) return false;
          writeOps(dbs, ops);
          return true;
        }, TransactionFlags.SYNCHRONOUS_COMMIT | TransactionFlags.NO_SYNC_FLUSH);
        if (!written) failure = 'the staging area was adopted, abandoned or replaced';
        else crc = crc32c(m.pairs, crc);
      } catch (err) {
        failure = err instanceof Error ? err.message : String(err);
      }
    }
    port.postMessage(failure === null ? { kind: 'written', crc } : { kind: 'failed', message: failure });
  });
} catch (err) {
  port.postMessage({ kind: 'error', message: err instanceof Error ? err.message : String(err) });
}
