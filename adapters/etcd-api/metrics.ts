// Prometheus text exposition of a few of etcd's gauges, counters and histograms, named as etcd
// names them, so dashboards built for etcd read a meshkv member.

import type { Histogram } from '../../src/server/histogram.ts';
import { StateRole } from '../../src/raft/types.ts';
import type { EtcdApi } from './api.ts';

export function metricsText(api: EtcdApi): string {
  const kv = api.kv;
  const s = kv.status();
  const m = kv.metrics();
  const lines: string[] = [];
  const metric = (name: string, type: 'gauge' | 'counter', help: string, value: number) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, `${name} ${value}`);
  };
  metric('etcd_server_has_leader', 'gauge', 'Whether or not a leader exists. 1 is existence, 0 is not.', s.lead !== 0 ? 1 : 0);
  metric('etcd_server_is_leader', 'gauge', 'Whether or not this member is a leader. 1 if is, 0 otherwise.', s.role === StateRole.Leader ? 1 : 0);
  metric('etcd_server_leader_changes_seen_total', 'counter', 'The number of leader changes seen.', api.leaderChanges);
  metric('etcd_server_proposals_committed_total', 'gauge', 'The total number of consensus proposals committed.', s.commit);
  metric('etcd_server_proposals_applied_total', 'gauge', 'The total number of consensus proposals applied.', s.applied);
  metric('etcd_server_proposals_pending', 'gauge', 'The current number of pending proposals to commit.', m.proposalsPending);
  metric('etcd_server_proposals_failed_total', 'counter', 'The total number of failed proposals seen.', m.proposalsFailed);
  metric('meshkv_raft_term', 'gauge', 'The current Raft term.', s.term);
  metric('etcd_debugging_mvcc_keys_total', 'gauge', 'Total number of keys.', m.keys);
  metric('etcd_debugging_mvcc_watcher_total', 'gauge', 'Total number of watchers.', api.watcherCount);
  metric('etcd_debugging_mvcc_db_total_size_in_bytes', 'gauge', 'Total size of the underlying database in bytes.', api.dbSizeBytes());
  const histogram = (name: string, help: string, h: Histogram) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} histogram`);
    h.boundsMs.forEach((bound, i) => lines.push(`${name}_bucket{le="${bound / 1000}"} ${h.counts[i]}`));
    lines.push(`${name}_bucket{le="+Inf"} ${h.count}`, `${name}_sum ${h.sum / 1000}`, `${name}_count ${h.count}`);
  };
  histogram('etcd_disk_wal_fsync_duration_seconds', 'The latency distributions of fsync called by WAL.', m.syncMs);
  histogram('meshkv_server_apply_duration_seconds', 'The latency distributions of applying one batch of committed entries.', m.applyMs);
  histogram('meshkv_server_snapshot_duration_seconds', 'The time each snapshot held up the Ready loop (snapshot file, log cut).', m.snapshotMs);
  return lines.join('\n') + '\n';
}
