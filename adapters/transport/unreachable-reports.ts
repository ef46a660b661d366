// Telling Raft which peers cannot be reached (the unreachable half of DeliveryReports,
// src/seams.ts), for transports that know when a peer's link is down: a message to a peer with
// no link up, or one dropped because it could never be written, is reported, and the leader
// moves that peer's progress to probe (one append per heartbeat until it answers) instead of
// pipelining appends into a dead link, as etcd's rafthttp does with ReportUnreachable.
//
// Reports go out after the send call returns (a microtask later): the member hears them outside
// its Ready handling, as it hears the simulated transport's, one per peer per send.

import type { MemberId } from '../../src/raft/types.ts';
import type { DeliveryReport, DeliveryReports } from '../../src/seams.ts';

export class UnreachableReports implements DeliveryReports {
  /** Only 'unreachable' reports: a whole snapshot sent counts as delivered (the member's default). */
  readonly reportsSnapshots = false;
  private listener: ((report: DeliveryReport) => void) | null = null;
  /** Peers to report, each with whether a link that was up went down (DeliveryReport's linkLost). */
  private pending: Map<MemberId, boolean> | null = null;
  /** Reports made since the transport started (for tests and metrics). */
  reported = 0;

  onDeliveryReport(fn: (report: DeliveryReport) => void): void {
    this.listener = fn;
  }

  /** `peer` could not be reached by a message of this send, or (`linkLost`) its link went down. */
  note(peer: MemberId, linkLost = false): void {
    if (this.pending === null) {
      this.pending = new Map();
      queueMicrotask(() => this.flush());
    }
    this.pending.set(peer, linkLost || (this.pending.get(peer) ?? false));
  }

  private flush(): void {
    const peers = this.pending ?? new Map<MemberId, boolean>();
    this.pending = null;
    for (const [peer, linkLost] of peers) {
      this.reported++;
      this.listener?.(linkLost ? { kind: 'unreachable', peer, linkLost } : { kind: 'unreachable', peer });
    }
  }
}
