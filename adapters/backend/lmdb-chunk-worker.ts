// A worker thread that produces a snapshot stream's chunks (src/server/snapshot-stream.ts) from
// an LMDB environment the member has open (adapters/backend/lmdb-chunks.ts starts it): it opens
// the same environment — lmdb shares one environment between the threads of a process — pins
// one read transaction, and answers each "next" with the next chunk's pairs (transferred, not
// copied) and the running CRC-32C. The member's thread then only sends them.
//
// Messages in:  { kind: 'next' } (one chunk per message, answered in order); { kind: 'close' }
//               (ends the read transaction and the environment, then the thread: terminating
//               it instead would leave its slot in LMDB's reader table, pinning old pages)
// Messages out: { kind: 'opened', appliedIndex } once, then { kind: 'chunk', pairs, crc, last }
//               or { kind: 'end' } (after the last chunk) per 'next'; { kind: 'error', message }.

import { parentPort, workerData } from 'node:worker_threads';
import { decodeU64, metaKeys } from '../../src/backend/layout.ts';
import { crc32c } from '../../src/codec/crc32c.ts';
import { readChunk, type ChunkCursor } from '../../src/server/snapshot-stream.ts';
import { openLmdbEnvironment, readViewOver, type LmdbChunkWorkerData } from './lmdb.ts';

const { path, mapSizeBytes, chunkBytesMax } = workerData as LmdbChunkWorkerData;
const port = parentPort!;

try {
  // Values as views into LMDB's memory: readChunk copies each one into the chunk at once.
  const { env, slotDbs, liveSlotOf } = openLmdbEnvironment(path, mapSizeBytes, true);
  const transaction = env.useReadTransaction();
  // The live slot as of this transaction: a staging slot adopted later is not this snapshot's.
  const view = readViewOver(slotDbs[liveSlotOf(transaction)], transaction, path);
  const stored = view.get('meta', metaKeys.consistentIndex);
  port.postMessage({ kind: 'opened', appliedIndex: stored === undefined ? 0 : decodeU64(stored) });
  let cursor: ChunkCursor | null = { bucket: 0, after: null };
  let crc = 0;
  port.on('message', (m: { kind: 'next' | 'close' }) => {
    if (m.kind === 'close') {
      transaction.done();
      void env.close().finally(() => port.close());
      return;
    }
    try {
      if (cursor === null) return port.postMessage({ kind: 'end' });
      const { pairs, next } = readChunk(view, cursor, chunkBytesMax);
      cursor = next;
      crc = crc32c(pairs, crc);
      // The chunk's buffer moves to the member's thread, not copied.
      port.postMessage({ kind: 'chunk', pairs, crc, last: next === null }, [pairs.buffer as ArrayBuffer]);
    } catch (err) {
      port.postMessage({ kind: 'error', message: err instanceof Error ? err.message : String(err) });
    }
  });
} catch (err) {
  port.postMessage({ kind: 'error', message: err instanceof Error ? err.message : String(err) });
}
