// Fuzzing fs-wal recovery: a WAL written by a random workload (appends, tail overwrites,
// snapshots made and received, segment rollovers and deletions) is damaged on disk — bytes
// flipped or set, ranges zeroed or removed, the file truncated or extended — and reopened.
// Recovery must either load exactly the state after some acknowledged save (a later one than
// every frame the damage left intact, and an earlier one only when the damage is in the last
// segment: a torn tail), or refuse with a 'corrupt' StorageError naming the file (and the byte
// offset for a segment). It must never load altered data or throw anything else.

import * as fsp from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StorageError } from '../../adapters/storage/errors.ts';
import { FsWalStorage } from '../../adapters/storage/fs-wal/index.ts';
import { silentLogger } from '../../src/raft/config.ts';
import type { PersistedState } from '../../src/seams.ts';
import { StorageModel, entry, firstDifference, hs, nextRandomOp, plainState, prng } from '../storage/compliance.ts';
import { fuzzParams, fuzzTimeoutMs } from './fuzz-config.ts';
import { mutateAll, mutationArb } from './mutations.ts';

const segmentBytes = 4096;
const workloadOps = 80;

interface Workload {
  /** The files of the closed WAL directory, by name. */
  files: Map<string, Uint8Array>;
  /** states[k]: what was acknowledged after the k-th operation (states[0]: nothing yet). */
  states: PersistedState[];
  /** For each batch frame on disk, oldest first, the number of operations done once it was written. */
  frameOps: number[];
}

/** Runs a seeded workload against a fresh fs-wal and keeps its files and every acknowledged state. */
async function writeWorkload(dir: string): Promise<Workload> {
  const random = prng(0x5eed);
  const model = new StorageModel();
  const states: PersistedState[] = [model.state()];
  const frameOps: number[] = [];
  const storage = await FsWalStorage.open(dir, { segmentBytes, logger: silentLogger });
  while (states.length <= workloadOps) {
    const op = nextRandomOp(model, random, `op${states.length}`);
    if (op.kind === 'restart') continue;
    if (op.kind === 'save') await storage.save(op.batch, true);
    else await storage.saveSnapshot(op.snapshot);
    states.push(model.clone().state());
    const b = op.kind === 'save' ? op.batch : null;
    if (b === null || b.snapshot !== null || b.entries.length > 0 || b.hardState !== null) frameOps.push(states.length - 1);
  }
  await storage.close();
  const files = new Map<string, Uint8Array>();
  for (const name of (await fsp.readdir(dir)).filter((n) => /\.(wal|snap)$/.test(n))) files.set(name, new Uint8Array(await fsp.readFile(join(dir, name))));
  return { files, states, frameOps };
}

/** Ends of the batch frames in a pristine segment, walking the length fields after the header. */
function batchFrameEnds(segment: Uint8Array): number[] {
  const view = new DataView(segment.buffer, segment.byteOffset, segment.byteLength);
  const ends: number[] = [];
  let pos = 0;
  while (pos + 9 <= segment.length && segment[pos + 8] !== 0) {
    const end = pos + 9 + view.getUint32(pos, true);
    if (pos > 0) ends.push(end);
    pos = end;
  }
  return ends;
}

describe('fuzz: fs-wal records on disk', () => {
  let root: string;
  let w: Workload;
  let segments: string[];
  let lastSegment: string;
  /** The segment close() left prepared after the last written one, if any. */
  let prepared: string | null = null;
  let referencedSnapshot: string | null;

  beforeAll(async () => {
    root = await fsp.mkdtemp(join(tmpdir(), 'meshkv-fuzz-wal-'));
    w = await writeWorkload(join(root, 'pristine'));
    segments = [...w.files.keys()].filter((n) => n.endsWith('.wal')).sort();
    // close() leaves the next segment prepared (all zeros under its name): the last written
    // segment, the one that may end in a torn write, is the one before it.
    if (w.files.get(segments[segments.length - 1])!.every((b) => b === 0)) prepared = segments.pop()!;
    lastSegment = segments[segments.length - 1];
    const s = w.states[w.states.length - 1].snapshot;
    referencedSnapshot = s && `${hex16(s.metadata.term)}-${hex16(s.metadata.index)}.snap`;
  });

  afterAll(async () => {
    if (root) await fsp.rm(root, { recursive: true, force: true });
  });

  it('the workload spans several segments, deleted ones and snapshot files', () => {
    expect(segments.length).toBeGreaterThanOrEqual(3);
    expect(segments[0]).not.toBe('0000000000000001.wal');
    expect(prepared).not.toBeNull();
    expect(referencedSnapshot).not.toBeNull();
    expect(w.files.has(referencedSnapshot!)).toBe(true);
    expect(w.frameOps.length).toBeGreaterThan(segments.length);
  });

  it('a middle segment cut at a frame boundary is refused naming a file and byte, unless nothing kept was lost (regression: a gap named only the dir)', async () => {
    const messages: string[] = [];
    for (const name of segments.slice(0, -1)) {
      for (const cut of batchFrameEnds(w.files.get(name)!).slice(0, -1)) {
        const dir = join(root, `cut-${name}-${cut}`);
        await fsp.mkdir(dir);
        for (const [n, bytes] of w.files) await fsp.writeFile(join(dir, n), n === name ? bytes.subarray(0, cut) : bytes);
        const opened = await FsWalStorage.open(dir, { segmentBytes, logger: silentLogger }).catch((e: unknown) => e);
        if (opened instanceof FsWalStorage) {
          // Only frames whose effects later frames replace (overwritten entries, superseded hard states) were lost.
          expect(plainState(await opened.load())).toEqual(plainState(w.states[w.states.length - 1]));
          await opened.close();
        } else {
          expect(opened).toBeInstanceOf(StorageError);
          const message = (opened as StorageError).message;
          expect(message).toMatch(new RegExp(`${escapeRegExp(dir)}/[0-9a-f]{16}\\.wal(: bad frame)? at byte \\d+`));
          messages.push(message);
        }
        await fsp.rm(dir, { recursive: true, force: true });
      }
    }
    expect(messages.some((m) => /are missing \(the log starts over at index \d+ in /.test(m))).toBe(true);
  });

  /** The operations done once every batch frame ending at or before byte `x` of the last segment was written. */
  function opsIntactBefore(x: number): number {
    const ends = batchFrameEnds(w.files.get(lastSegment)!);
    const intact = ends.filter((end) => end <= x).length;
    const firstInLast = w.frameOps.length - ends.length;
    return intact === 0 ? w.frameOps[firstInLast] - 1 : w.frameOps[firstInLast + intact - 1];
  }

  const damageArb = fc.record({
    file: fc.nat(),
    mutations: fc.array(mutationArb, { minLength: 1, maxLength: 3 }),
    // Most damage goes into the bytes written, not the zero-filled rest of a segment.
    intoData: fc.boolean(),
  });
  let runNumber = 0;
  const runs = 250;

  it(
    'damaged files load an acknowledged state (an earlier one only for a torn tail) or are refused naming file and offset',
    async () => {
      const outcomes = { intact: 0, tornTail: 0, refused: 0 };
      await fc.assert(
        fc.asyncProperty(damageArb, async ({ file, mutations, intoData }) => {
          const names = [...w.files.keys()].sort();
          const name = names[file % names.length];
          const original = w.files.get(name)!;
          const dataEnd = name.endsWith('.wal') && intoData ? lastNonZeroEnd(original) : original.length;
          const damaged = mutateAll(original.subarray(0, dataEnd), mutations);
          const bytes = dataEnd < original.length && damaged.length === dataEnd ? withTail(damaged, original.subarray(dataEnd)) : damaged;
          const dir = join(root, `run${runNumber++}`);
          await fsp.mkdir(dir);
          for (const [n, b] of w.files) await fsp.writeFile(join(dir, n), n === name ? bytes : b);
          let storage: FsWalStorage;
          try {
            storage = await FsWalStorage.open(dir, { segmentBytes, logger: silentLogger });
          } catch (err) {
            expect(err).toBeInstanceOf(StorageError);
            const e = err as StorageError;
            expect(e.code).toBe('corrupt');
            // It names a file of the directory: the damaged one, or for a segment cut at a frame
            // boundary the next one, where the log jumps.
            expect(e.message).toMatch(new RegExp(`${escapeRegExp(dir)}/[0-9a-f]{16}(-[0-9a-f]{16})?\\.(wal|snap)`));
            // A segment names the byte offset of the bad frame, or says it has no header at all.
            if (name.endsWith('.wal')) expect(e.message).toMatch(/at byte \d+|segment has no header/);
            outcomes.refused++;
            await fsp.rm(dir, { recursive: true, force: true });
            return;
          }
          const loaded = plainState(await storage.load());
          const last = w.states.length - 1;
          // Damage to the prepared segment (never written) loses nothing: it loads the last state or is refused.
          const earliest = name === lastSegment ? opsIntactBefore(firstDifference(original, bytes)) : last;
          let k = last;
          while (k >= earliest && !isDeepStrictEqual(plainState(w.states[k]), loaded)) k--;
          expect(k, `loaded state is none of the acknowledged states ${earliest}..${last}`).toBeGreaterThanOrEqual(earliest);
          if (k === last) outcomes.intact++;
          else outcomes.tornTail++;
          // Recovery leaves a WAL that takes the next write and reads it back.
          const next = w.states[k].entries.at(-1)?.index ?? w.states[k].snapshot?.metadata.index ?? 0;
          await storage.save({ hardState: hs(99, 1, 0), entries: [entry(next + 1, 99)], snapshot: null }, true);
          await storage.close();
          const reopened = await FsWalStorage.open(dir, { segmentBytes, logger: silentLogger });
          const after = await reopened.load();
          await reopened.close();
          expect(after.hardState).toEqual(hs(99, 1, 0));
          expect(plainState({ ...after, hardState: w.states[k].hardState, entries: after.entries.slice(0, -1) })).toEqual(loaded);
          expect(after.entries.at(-1)?.index).toBe(next + 1);
          await fsp.rm(dir, { recursive: true, force: true });
        }),
        fuzzParams(runs),
      );
      // The damage exercised every outcome.
      expect(outcomes.refused).toBeGreaterThan(0);
      expect(outcomes.tornTail).toBeGreaterThan(0);
      expect(outcomes.intact).toBeGreaterThan(0);
    },
    fuzzTimeoutMs(runs, 30),
  );
});

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function hex16(n: number): string {
  return n.toString(16).padStart(16, '0');
}

function lastNonZeroEnd(bytes: Uint8Array): number {
  let i = bytes.length;
  while (i > 0 && bytes[i - 1] === 0) i--;
  return i;
}

/** The damaged data followed by the zero-filled rest of the segment, as a preallocated segment is. */
function withTail(data: Uint8Array, tail: Uint8Array): Uint8Array {
  const out = new Uint8Array(data.length + tail.length);
  out.set(data);
  out.set(tail, data.length);
  return out;
}
