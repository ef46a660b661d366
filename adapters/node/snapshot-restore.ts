// `meshkv snapshot restore <file>`: a new member's data directory from a snapshot file in
// etcd's format (made by a real etcd, or by meshkv), as `etcdctl snapshot restore` makes one
// for etcd. The store keeps its history (revisions, versions, leases, compaction point); the
// member table is the new cluster's, from --initial-cluster. Every member of the new cluster
// restores the same file with its own --name, then starts with the same flags (and
// --data-dir). Nothing is written unless the whole file checks out.

import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { SnapshotFileError, readSnapshotFile } from '../etcd-api/snapshot-file.ts';
import { FsWalStorage } from '../storage/fs-wal/index.ts';
import { MvccStateMachine } from '../../src/mvcc/state-machine.ts';
import { SnapshotDecodeError, encodeSnapshotFrames, joinFrames } from '../../src/mvcc/snapshot.ts';
import { AuthStore } from '../../src/server/auth-store.ts';
import { MemberTable, type MemberRecord } from '../../src/server/member-table.ts';
import { clusterIdOf, type NodeConfig } from './config.ts';

export class RestoreError extends Error {
  override readonly name = 'RestoreError';
}

export interface RestoreResult {
  /** The Raft index and term of the snapshot the data dir starts from (etcd's: one entry per member, term 1). */
  index: number;
  revision: number;
  compactRevision: number;
  records: number;
  leases: number;
  /** What the file held that meshkv does not take over (printed as warnings). */
  dropped: string[];
}

/** Reads `file`, checks everything, then writes the data dir `config.dataDir` (which must not exist, or be empty). */
export async function restoreSnapshot(file: string, config: Pick<NodeConfig, 'dataDir' | 'initialCluster'>, options: { skipHashCheck: boolean }): Promise<RestoreResult> {
  if (existsSync(config.dataDir) && readdirSync(config.dataDir).length > 0) throw new RestoreError(`data-dir ${JSON.stringify(config.dataDir)} exists`);
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    throw new RestoreError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const index = config.initialCluster.length;
  let image: Uint8Array;
  let result: RestoreResult;
  try {
    const snapshot = readSnapshotFile(bytes, options);
    // The store's applied index is the new log's: etcd's consistent_index counted the old cluster's entries.
    image = joinFrames(encodeSnapshotFrames({ ...snapshot, appliedIndex: index }));
    // Every record and lease checked as a member's start would, before anything is written.
    const check = new MvccStateMachine();
    check.restore(image, index);
    const dropped: string[] = [];
    if (snapshot.authEnabled || snapshot.authUsers > 0 || snapshot.authRoles > 0) {
      dropped.push(
        `auth (${snapshot.authEnabled ? 'enabled' : 'disabled'}, ${snapshot.authUsers} users, ${snapshot.authRoles} roles) is not restored: etcd hashes passwords with bcrypt, meshkv with PBKDF2; add the users and roles again, then enable auth`,
      );
    }
    result = { index, revision: snapshot.currentRevision, compactRevision: snapshot.compactRevision, records: snapshot.recordCount, leases: snapshot.leases.length, dropped };
  } catch (err) {
    if (err instanceof SnapshotFileError || err instanceof SnapshotDecodeError) throw new RestoreError(err.message);
    throw err;
  }
  const members: MemberRecord[] = config.initialCluster.map((m) => ({ id: m.id, name: m.name, peerURLs: m.peerUrls, clientURLs: [], isLearner: false }));
  const table = new MemberTable();
  // A restore founds a new cluster, as etcd's does: its id comes from the new --initial-cluster.
  table.reset(members, { tabsMayOutvote: false, clusterId: clusterIdOf(members.map((m) => m.id)) });
  const data = table.wrapImage(image, new AuthStore().encodeImage());
  const confState = { voters: members.map((m) => m.id), learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
  const storage = await FsWalStorage.open(config.dataDir);
  try {
    await storage.save({ hardState: { term: 1, vote: 0, commit: index }, entries: [], snapshot: { metadata: { index, term: 1, confState }, data } }, true);
  } catch (err) {
    await storage.close().catch(() => {});
    rmSync(config.dataDir, { recursive: true, force: true });
    throw err;
  }
  await storage.close();
  return result;
}
