// etcd's strict reconfiguration check (--strict-reconfig-check, on by default in etcd 3.4): the
// member that receives MemberAdd or MemberRemove refuses a change that would leave the cluster
// without a quorum of started members, or of members it has been connected to for a while.
// "Started" means the member has published its name; "connected" means this member's peer link
// to it has been up for at least healthIntervalMs (etcd's HealthInterval).

import { EtcdApiError, Status } from './errors.ts';

export const healthIntervalMs = 5000;

export interface ReconfigView {
  self: number;
  voters: readonly number[];
  learners: readonly number[];
  /** The member has started: it published its name. */
  isStarted(id: number): boolean;
  /** Since when this member's link to `id` has been up (ms), or null when it is down. */
  activeSince(id: number): number | null;
  now: number;
}

export const notEnoughStarted = () =>
  new EtcdApiError(Status.FailedPrecondition, 'etcdserver: re-configuration failed due to not enough started members');
export const unhealthyCluster = () => new EtcdApiError(Status.Unavailable, 'etcdserver: unhealthy cluster');

const quorum = (n: number) => Math.floor(n / 2) + 1;

function connectedSinceInterval(v: ReconfigView, id: number): boolean {
  if (id === v.self) return true;
  const since = v.activeSince(id);
  return since !== null && since <= v.now - healthIntervalMs;
}

/** Throws etcd's refusal when adding a member (a learner skips the started-quorum rule). */
export function checkAdd(v: ReconfigView, isLearner: boolean): void {
  if (!isLearner) {
    const started = v.voters.filter((id) => v.isStarted(id)).length;
    const members = v.voters.length + 1;
    // etcd lets a one-member cluster grow to two, to restore a cluster from one member's data.
    const growingFromOne = started === 1 && members === 2;
    if (!growingFromOne && started < quorum(members)) throw notEnoughStarted();
  }
  if (!v.voters.every((id) => connectedSinceInterval(v, id))) throw unhealthyCluster();
}

/** Throws etcd's refusal when removing member `id` (removing a learner is never refused). */
export function checkRemove(v: ReconfigView, id: number): void {
  if (v.learners.includes(id)) return;
  const rest = v.voters.filter((m) => m !== id);
  if (rest.filter((m) => v.isStarted(m)).length < quorum(rest.length)) throw notEnoughStarted();
  // A member that is down is not part of the active quorum, so removing it is safe.
  if (id !== v.self && v.activeSince(id) === null) return;
  const active = v.voters.filter((m) => connectedSinceInterval(v, m)).length;
  if (active - 1 < quorum(v.voters.length - 1)) throw unhealthyCluster();
}
