// etcd's Maintenance service over a KvMember: Status, Hash, HashKV, Alarm, Defragment,
// MoveLeader and the Snapshot stream. Who may call them is decided in auth-gate.ts.

import { StateRole } from '../../src/raft/types.ts';
import type { KvMember } from '../../src/server/kv-member.ts';
import { EtcdApiError, Status } from './errors.ts';
import { int, type Wire } from './server-wire.ts';
import { etcdSnapshotChunks } from './snapshot-file.ts';

/** The server version etcdctl shows; meshkv serves etcd 3.4's API. */
export const etcdVersion = '3.4.23';
/** Bytes per Snapshot stream message (etcd sends 32 KiB chunks). */
export const snapshotChunkBytesMax = 32 * 1024;

/** etcd's StatusResponse after its header, as proto-codec.ts encodes it. */
export interface StatusBody {
  version: string;
  dbSize: number;
  leader: number;
  raftIndex: number;
  raftTerm: number;
  raftAppliedIndex: number;
  dbSizeInUse: number;
  isLearner: boolean;
}

export class MaintenanceService {
  private snapshotSizeCache = { revision: -1, bytes: 0 };

  constructor(
    private readonly kv: KvMember,
    private readonly header: (revision?: number) => Wire,
  ) {}

  /** What Status answers after its header (etcd's StatusResponse; no errors are ever listed). */
  statusBody(): StatusBody {
    const s = this.kv.status();
    const dbSize = this.dbSizeBytes();
    return {
      version: etcdVersion,
      dbSize,
      leader: s.lead,
      raftIndex: s.commit,
      raftTerm: s.term,
      raftAppliedIndex: s.applied,
      dbSizeInUse: dbSize,
      isLearner: s.confState.learners.includes(this.kv.id),
    };
  }

  status(_w: Wire): Promise<Wire> {
    const body = this.statusBody();
    return Promise.resolve({ header: this.header(), ...body, leader: String(body.leader), errors: [] });
  }

  hash(_w: Wire): Promise<Wire> {
    return Promise.resolve({ header: this.header(), hash: this.kv.hash() });
  }

  async hashKV(w: Wire): Promise<Wire> {
    const r = this.kv.hashKV(int(w.revision));
    return { header: this.header(r.header.revision), hash: r.hash, compact_revision: r.compactRevision };
  }

  /** No alarms are ever raised. Without a header, as etcd 3.4 answers (`alarm list -w json` prints `{}`). */
  alarm(_w: Wire): Promise<Wire> {
    return Promise.resolve({ alarms: [] });
  }

  /** meshkv's store has no free pages to reclaim: success without work. */
  defragment(_w: Wire): Promise<Wire> {
    return Promise.resolve({ header: this.header() });
  }

  async moveLeader(w: Wire): Promise<Wire> {
    const target = int(w.targetID);
    const s = this.kv.status();
    if (s.role !== StateRole.Leader) throw new EtcdApiError(Status.FailedPrecondition, 'etcdserver: not leader');
    if (!s.confState.voters.includes(target)) throw new EtcdApiError(Status.FailedPrecondition, 'etcdserver: bad leader transferee');
    if (target !== this.kv.id) {
      this.kv.transferLeadership(target);
      await this.waitFor(() => this.kv.status().lead === target);
    }
    return { header: this.header() };
  }

  /**
   * A snapshot in etcd's format (a bbolt database with etcd's buckets, then its SHA-256; see
   * snapshot-file.ts), in chunks with the bytes still to come, as etcd streams it. The store is
   * read through an O(1) view taken now (applies go on meanwhile), and written to a temporary
   * file before the first chunk.
   */
  async *snapshot(): AsyncGenerator<Wire> {
    const view = this.kv.storeView();
    try {
      const header = this.header();
      const extras = { members: this.kv.members.list(), authRevision: this.kv.auth.revision };
      for await (const { bytes, remainingBytes } of etcdSnapshotChunks(view, extras, snapshotChunkBytesMax)) {
        yield { header, remaining_bytes: remainingBytes, blob: bytes };
      }
    } finally {
      view.release();
    }
  }

  /**
   * etcd's db size: the backend's file when it has one (LMDB); otherwise the size of the latest
   * snapshot image. Before the first snapshot the store is small (fewer entries than the
   * snapshot interval since it was empty), so it is encoded, at most once per revision.
   */
  dbSizeBytes(): number {
    const backendBytes = this.kv.backendSizeBytes();
    if (backendBytes !== null) return backendBytes;
    const snapshotBytes = this.kv.snapshotBytes();
    if (snapshotBytes > 0) return snapshotBytes;
    const revision = this.kv.currentRevision;
    if (this.snapshotSizeCache.revision !== revision) {
      this.snapshotSizeCache = { revision, bytes: this.kv.snapshotImage().length };
    }
    return this.snapshotSizeCache.bytes;
  }

  private async waitFor(done: () => boolean, timeoutMs = 7000): Promise<void> {
    const start = Date.now();
    while (!done()) {
      if (Date.now() - start > timeoutMs) throw new EtcdApiError(Status.Unavailable, 'etcdserver: request timed out');
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}
