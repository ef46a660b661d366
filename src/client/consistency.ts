// Per-client read consistency and fail-fast offline (docs/offline.md), as a Connection
// decorator, so every feature built on the connection gets them. `linearizable` (etcd's
// default) reads through a ReadIndex barrier and needs a quorum; `local` is etcd's serializable
// read: this member's replica answers at once, online or offline, with the revision it
// reflects in the response header. A range that sets `serializable` itself keeps its choice.
// With a connectivity source and `failFastOffline`, a request that needs a quorum fails at once
// with OfflineError while the member is offline, instead of after the request timeout.

import type { Connectivity } from '../server/connectivity.ts';
import type {
  CompactionRequest,
  CompactionResponse,
  DeleteRangeRequest,
  DeleteRangeResponse,
  LeaseGrantRequest,
  LeaseGrantResponse,
  LeaseLeasesResponse,
  LeaseRevokeRequest,
  LeaseRevokeResponse,
  LeaseTimeToLiveResponse,
  PutRequest,
  PutResponse,
  RangeRequest,
  RangeResponse,
  TxnRequest,
  TxnResponse,
} from '../mvcc/types.ts';
import type { Connection, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseTimeToLiveRequest, WatchChannel, WatchStreamHandlers } from './connection.ts';
import { OfflineError } from './errors.ts';

export type Consistency = 'linearizable' | 'local';

export interface ConsistencyOptions {
  /** Reads that do not choose: 'linearizable' (default) or 'local'. */
  consistency: Consistency;
  /** The member's connectivity (a browser member's `connectivity()`); without it nothing fails fast. */
  connectivity?: () => Connectivity;
  /** While offline, refuse linearizable reads and writes at once with OfflineError (default false: they wait for the request timeout). */
  failFastOffline: boolean;
}

export function checkConsistency(c: unknown): Consistency {
  if (c !== 'linearizable' && c !== 'local') throw new TypeError(`consistency must be 'linearizable' or 'local', not ${JSON.stringify(c)}`);
  return c;
}

export class ConsistentConnection implements Connection {
  constructor(
    private readonly inner: Connection,
    private readonly opts: ConsistencyOptions,
  ) {}

  async range(request: RangeRequest): Promise<RangeResponse> {
    const serializable = request.serializable ?? this.opts.consistency === 'local';
    if (!serializable) this.maybeFailFast('a linearizable read');
    return this.inner.range({ ...request, serializable });
  }

  async put(request: PutRequest): Promise<PutResponse> {
    this.maybeFailFast('a write');
    return this.inner.put(request);
  }

  async deleteRange(request: DeleteRangeRequest): Promise<DeleteRangeResponse> {
    this.maybeFailFast('a write');
    return this.inner.deleteRange(request);
  }

  async txn(request: TxnRequest): Promise<TxnResponse> {
    this.maybeFailFast('a txn');
    return this.inner.txn(request);
  }

  async compact(request: CompactionRequest): Promise<CompactionResponse> {
    this.maybeFailFast('a compaction');
    return this.inner.compact(request);
  }

  async leaseGrant(request: LeaseGrantRequest): Promise<LeaseGrantResponse> {
    this.maybeFailFast('a lease grant');
    return this.inner.leaseGrant(request);
  }

  async leaseRevoke(request: LeaseRevokeRequest): Promise<LeaseRevokeResponse> {
    this.maybeFailFast('a lease revoke');
    return this.inner.leaseRevoke(request);
  }

  leaseKeepAlive(request: LeaseKeepAliveRequest): Promise<LeaseKeepAliveResponse> {
    return this.inner.leaseKeepAlive(request);
  }

  leaseTimeToLive(request: LeaseTimeToLiveRequest): Promise<LeaseTimeToLiveResponse> {
    return this.inner.leaseTimeToLive(request);
  }

  leaseLeases(): Promise<LeaseLeasesResponse> {
    return this.inner.leaseLeases();
  }

  /** Watches deliver what the member applies, online or offline: nothing to decide here. */
  watch(handlers: WatchStreamHandlers): WatchChannel {
    return this.inner.watch(handlers);
  }

  close(): void {
    this.inner.close();
  }

  /** Throws OfflineError when asked to fail fast and the member is offline (the async callers turn it into a rejection). */
  private maybeFailFast(what: string): void {
    if (!this.opts.failFastOffline || this.opts.connectivity === undefined) return;
    const c = this.opts.connectivity();
    if (c.state === 'offline') throw new OfflineError(what, c.stalenessMs);
  }
}
