// The snapshot file, in etcd's format both ways: what `Maintenance.Snapshot` streams (and
// `etcdctl snapshot save` stores) is a bbolt database with etcd 3.4's buckets, followed by a
// SHA-256 of the database that `etcdctl snapshot restore` checks. Real etcd restores it and
// serves the same keys, history, leases and compaction point; `meshkv snapshot restore` reads a
// file real etcd made (see docs/etcd-api.md, "Snapshots").
//
//   alarm            (empty: meshkv raises no alarms)
//   auth             authRevision (u64 BE), never authEnabled: users and roles do not carry
//                    over (PBKDF2 here, bcrypt in etcd), and etcd with auth on and no users
//                    would refuse every request
//   authRoles/Users  (empty)
//   cluster          clusterVersion → "3.4.0"
//   key              revision (17 bytes, 18 for a tombstone) → mvccpb.KeyValue
//   lease            id (8 bytes BE) → leasepb.Lease
//   members          id in hex → the member as JSON; members_removed (empty)
//   meta             consistent_index (u64 BE), finishedCompactRev / scheduledCompactRev (revision bytes)

import { createHash } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BoltFormatError, BoltReader, BoltWriter, boltPageBytes } from '../../src/backend/bbolt.ts';
import { decodeKeyValue, decodeLease, encodeKeyValue, encodeLease, encodeU64, decodeU64, leaseKey, metaKeys, parseRevisionKey, revisionKey } from '../../src/backend/layout.ts';
import { toBinaryString } from '../../src/mvcc/bytes.ts';
import type { StoredRecord } from '../../src/mvcc/history.ts';
import { INITIAL_REVISION, NO_COMPACTION } from '../../src/mvcc/kv-store.ts';
import type { LeaseState } from '../../src/mvcc/lessor.ts';
import { encodeSnapshotFrames, joinFrames, type SnapshotContents } from '../../src/mvcc/snapshot.ts';
import type { MemberRecord } from '../../src/server/member-table.ts';

const digestBytes = 32;
/** etcdctl tells a snapshot with a digest from a bare bbolt file by this: size % 512 === 32. */
const digestAlignBytes = 512;
/** The cluster version etcd 3.4 keeps in its `cluster` bucket. */
export const clusterVersion = '3.4.0';

export class SnapshotFileError extends Error {
  override readonly name = 'SnapshotFileError';
}

const utf8 = new TextEncoder();
const key = (text: string) => utf8.encode(text);

/** What a snapshot file carries beyond the store: the member table and the auth revision. */
export interface SnapshotExtras {
  members: readonly MemberRecord[];
  authRevision: number;
}

/** etcd's member JSON (etcdserver/api/membership.Member): ids as decimal uint64. */
function memberJson(m: MemberRecord): string {
  const learner = m.isLearner ? ',"isLearner":true' : '';
  return `{"id":${BigInt(m.id)},"peerURLs":${JSON.stringify(m.peerURLs)}${learner},"name":${JSON.stringify(m.name)},"clientURLs":${JSON.stringify(m.clientURLs)}}`;
}

/** Records written between two yields of writeEtcdDatabase: bounds the work of one step. */
export const snapshotStepRecordsMax = 4096;

/**
 * Writes `contents` as etcd's bbolt database: pages from page 3 on go to `append` in order; the
 * returned three pages belong at the start of the file. Reads the records once, in revision
 * order, which is the `key` bucket's key order. Yields after every snapshotStepRecordsMax
 * records, so that a server can serve between steps.
 */
export function* writeEtcdDatabase(contents: SnapshotContents, extras: SnapshotExtras, append: (pages: Uint8Array) => void): Generator<void, Uint8Array> {
  const bolt = new BoltWriter({ append }, boltPageBytes);
  bolt.bucket('alarm');
  // No authEnabled: its absence reads as off (see the header).
  bolt.bucket('auth').put(key('authRevision'), encodeU64(extras.authRevision));
  bolt.bucket('authRoles');
  bolt.bucket('authUsers');
  bolt.bucket('cluster').put(key('clusterVersion'), key(clusterVersion));
  const kvs = bolt.bucket('key');
  let step = 0;
  for (const r of contents.records()) {
    if (++step % snapshotStepRecordsMax === 0) yield;
    const tombstone = r.version === 0;
    kvs.put(
      revisionKey(r.main, r.sub, tombstone),
      encodeKeyValue({ key: Uint8Array.from(r.key, (c) => c.charCodeAt(0)), createRevision: r.createRevision, modRevision: r.main, version: r.version, value: r.value, lease: r.lease }),
    );
  }
  const leases = bolt.bucket('lease');
  for (const l of [...contents.leases].sort((a, b) => (BigInt.asUintN(64, a.id) < BigInt.asUintN(64, b.id) ? -1 : 1))) {
    leases.put(leaseKey(l.id), encodeLease(l));
  }
  const members = bolt.bucket('members');
  const byKey = extras.members.map((m) => ({ k: key(m.id.toString(16)), m })).sort((a, b) => Buffer.compare(a.k, b.k));
  for (const { k, m } of byKey) members.put(k, key(memberJson(m)));
  bolt.bucket('members_removed');
  const meta = bolt.bucket('meta');
  meta.put(metaKeys.consistentIndex, encodeU64(contents.appliedIndex));
  if (contents.compactRevision !== NO_COMPACTION) {
    meta.put(metaKeys.finishedCompactRev, revisionKey(contents.compactRevision, 0));
    meta.put(metaKeys.scheduledCompactRev, revisionKey(contents.compactRevision, 0));
  }
  return bolt.finish();
}

/** Runs a writeEtcdDatabase generator to its end in one go. */
function finish(steps: Generator<void, Uint8Array>): Uint8Array {
  for (;;) {
    const step = steps.next();
    if (step.done === true) return step.value;
  }
}

/**
 * The snapshot stream's bytes, chunk by chunk: the database is written to a temporary file
 * (memory holds one page and the branch elements, not the store), giving the event loop a turn
 * every snapshotStepRecordsMax records, then read back in chunks of `chunkBytes` with the
 * SHA-256 computed on the way and sent last. The file is removed when the iteration ends,
 * however it ends.
 */
export async function* etcdSnapshotChunks(contents: SnapshotContents, extras: SnapshotExtras, chunkBytes: number): AsyncGenerator<{ bytes: Uint8Array; remainingBytes: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'meshkv-snapshot-'));
  const fd = openSync(join(dir, 'db'), 'w+');
  try {
    let end = 3 * boltPageBytes;
    const steps = writeEtcdDatabase(contents, extras, (pages) => {
      writeSync(fd, pages, 0, pages.length, end);
      end += pages.length;
    });
    let step = steps.next();
    while (step.done !== true) {
      await new Promise((resolve) => setImmediate(resolve));
      step = steps.next();
    }
    const head = step.value;
    writeSync(fd, head, 0, head.length, 0);
    const total = end + digestBytes;
    const hash = createHash('sha256');
    const buffer = new Uint8Array(chunkBytes);
    for (let at = 0; at < end; ) {
      const n = readSync(fd, buffer, 0, Math.min(chunkBytes, end - at), at);
      if (n <= 0) throw new Error(`snapshot: the temporary file ended at byte ${at} of ${end}`);
      const bytes = buffer.slice(0, n);
      hash.update(bytes);
      at += n;
      yield { bytes, remainingBytes: total - at };
    }
    yield { bytes: new Uint8Array(hash.digest()), remainingBytes: 0 };
  } finally {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A whole snapshot file in memory (tests, small stores). */
export function encodeSnapshotFile(contents: SnapshotContents, extras: SnapshotExtras): Uint8Array {
  const pages: Uint8Array[] = [];
  const head = finish(writeEtcdDatabase(contents, extras, (p) => pages.push(p)));
  const db = joinFrames([head, ...pages]);
  return joinFrames([db, new Uint8Array(createHash('sha256').update(db).digest())]);
}

/** What a snapshot file made by etcd (or meshkv) holds, read into meshkv's terms. */
export interface EtcdSnapshot extends SnapshotContents {
  authEnabled: boolean;
  /** Users and roles the file holds (meshkv does not take them over; see docs/etcd-api.md). */
  authUsers: number;
  authRoles: number;
}

/**
 * Reads a snapshot file: checks the trailing SHA-256 (etcdctl finds it by the size: a multiple
 * of 512 plus 32; a file without one is refused unless `skipHashCheck`, as etcdctl does), then the bbolt database and etcd's buckets in it. Throws
 * SnapshotFileError saying what is wrong; records are read lazily (and checked) by `records()`.
 */
export function readSnapshotFile(file: Uint8Array, options: { skipHashCheck?: boolean } = {}): EtcdSnapshot {
  let db = file;
  if (file.length % digestAlignBytes === digestBytes) {
    db = file.subarray(0, file.length - digestBytes);
    const digest = createHash('sha256').update(db).digest();
    if (!digest.equals(file.subarray(db.length)) && options.skipHashCheck !== true) {
      throw new SnapshotFileError('snapshot file: sha256 mismatch (the file is damaged or truncated)');
    }
  } else if (options.skipHashCheck !== true) {
    // etcdctl's words: a bare database (say, member/snap/db copied from a data dir) needs the flag.
    throw new SnapshotFileError('snapshot file: snapshot missing hash but --skip-hash-check=false');
  }
  let bolt: BoltReader;
  try {
    bolt = new BoltReader(db);
  } catch (err) {
    if (err instanceof BoltFormatError) throw new SnapshotFileError(`snapshot file: not an etcd snapshot (${err.message})`);
    throw err;
  }
  return wrapped(() => fromBolt(bolt));
}

function wrapped<T>(f: () => T): T {
  try {
    return f();
  } catch (err) {
    if (err instanceof SnapshotFileError) throw err;
    if (err instanceof Error) throw new SnapshotFileError(`snapshot file: ${err.message}`);
    throw err;
  }
}

function fromBolt(bolt: BoltReader): EtcdSnapshot {
  const names = new Set(bolt.bucketNames());
  for (const needed of ['key', 'meta']) if (!names.has(needed)) throw new SnapshotFileError(`snapshot file: no "${needed}" bucket: not an etcd database`);
  const meta = new Map((bolt.entries('meta') ?? []).map((e) => [toBinaryString(e.key), e.value]));
  const consistentIndex = meta.get('consistent_index');
  const finished = meta.get('finishedCompactRev');
  const scheduled = meta.get('scheduledCompactRev');
  const compactRevision = finished ? parseRevisionKey(finished).main : NO_COMPACTION;
  if (scheduled && parseRevisionKey(scheduled).main !== (finished ? compactRevision : -1)) {
    // etcd finishes such a compaction when it starts; meshkv would need to redo it on restore.
    throw new SnapshotFileError(`snapshot file: a compaction to ${parseRevisionKey(scheduled).main} was scheduled but not finished; start etcd on the file once so it finishes, then snapshot again`);
  }
  let recordCount = 0;
  let newest = INITIAL_REVISION;
  bolt.forEach('key', (k, v) => {
    if (v === null) throw new SnapshotFileError('snapshot file: a nested bucket inside "key"');
    newest = Math.max(newest, parseRevisionKey(k).main);
    recordCount++;
  });
  const leases: LeaseState[] = (bolt.entries('lease') ?? []).map((e) => {
    if (e.value === null) throw new SnapshotFileError('snapshot file: a nested bucket inside "lease"');
    return decodeLease(e.value);
  });
  const authEnabled = (bolt.entries('auth') ?? []).some((e) => toBinaryString(e.key) === 'authEnabled' && e.value?.[0] === 1);
  return {
    appliedIndex: consistentIndex ? decodeU64(consistentIndex) : 0,
    // etcd's: the newest stored revision, or the compaction's if newer (its tombstones may be gone).
    currentRevision: Math.max(newest, compactRevision),
    compactRevision,
    recordCount,
    leases,
    // meshkv picks lease ids itself (etcd-shaped); the state machine's own counter starts afresh.
    nextLeaseId: 1n,
    authEnabled,
    authUsers: bolt.entries('authUsers')?.length ?? 0,
    authRoles: bolt.entries('authRoles')?.length ?? 0,
    records: () => wrapped(() => keyRecords(bolt)),
  };
}

function keyRecords(bolt: BoltReader): StoredRecord[] {
  const records: StoredRecord[] = [];
  bolt.forEach('key', (k, v) => {
    const { main, sub, tombstone } = parseRevisionKey(k);
    const kv = decodeKeyValue(v!);
    if (kv.modRevision !== main) throw new SnapshotFileError(`snapshot file: the KeyValue at revision ${main}.${sub} says mod revision ${kv.modRevision}`);
    if (tombstone !== (kv.version === 0)) throw new SnapshotFileError(`snapshot file: the record at ${main}.${sub} is ${tombstone ? '' : 'not '}marked a tombstone but has version ${kv.version}`);
    records.push({ key: toBinaryString(kv.key), main, sub, createRevision: kv.createRevision, version: kv.version, value: kv.value, lease: kv.lease });
  });
  return records;
}

/**
 * The meshkv store image (MvccStateMachine.restore's input) of a snapshot file, after every
 * check above. Holds the whole store in memory.
 */
export function decodeSnapshotFile(file: Uint8Array, options: { skipHashCheck?: boolean } = {}): Uint8Array {
  const snapshot = readSnapshotFile(file, options);
  return joinFrames(encodeSnapshotFrames(snapshot));
}
