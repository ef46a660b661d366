// The client: one API over any Connection (in-process members, or gRPC via adapters/etcd-api/grpc-connection.ts).

import type { CompactionResponse } from '../mvcc/types.ts';
import type { Clock } from '../seams.ts';
import { toBytes, type Bytes } from './bytes.ts';
import type { Connection } from './connection.ts';
import { follow, type FollowHandlers, type FollowOptions, type Following } from './follow.ts';
import { checkConsistency, ConsistentConnection, type Consistency } from './consistency.ts';
import type { Connectivity } from '../server/connectivity.ts';
import { Election, type ElectionOptions } from './election.ts';
import { Lease, type LeaseOptions } from './lease.ts';
import { Lock, type LockOptions } from './lock.ts';
import { DeleteBuilder, MultiRangeBuilder, PutBuilder, SingleRangeBuilder } from './kv.ts';
import { NamespacedConnection } from './namespace.ts';
import { TxnBuilder, type Comparator, type CompareKey, type CompareTargetName } from './txn.ts';
import { WatchBuilder, WatchManager, WATCH_RETRY_MS_DEFAULT } from './watch.ts';

export interface ClientOptions {
  connection: Connection;
  /** The only source of time: lease keep-alives and watch retries run on it. */
  clock: Clock;
  /** Wait between attempts to re-open a broken watch stream. */
  watchRetryMs?: number;
  /**
   * Reads that do not choose (see the builders' consistency()): 'linearizable' (default,
   * etcd's) or 'local' (serializable from the member's own replica; works offline).
   */
  consistency?: Consistency;
  /** The member's connectivity, for failFastOffline and connectivity() (a browser member passes its own). */
  connectivity?: () => Connectivity;
  /** While offline, refuse linearizable reads and writes at once with OfflineError instead of after the request timeout. */
  failFastOffline?: boolean;
}

export class Client {
  readonly connection: Connection;
  private readonly clock: Clock;
  private readonly watches: WatchManager;
  private readonly ownLeases = new Set<Lease>();
  private readonly views: Client[] = [];

  constructor(private readonly options: ClientOptions) {
    const consistency = checkConsistency(options.consistency ?? 'linearizable');
    const failFastOffline = options.failFastOffline ?? false;
    if (failFastOffline && options.connectivity === undefined) throw new TypeError('Client: failFastOffline needs a connectivity source');
    this.connection =
      consistency === 'linearizable' && !failFastOffline ? options.connection : new ConsistentConnection(options.connection, { consistency, failFastOffline, connectivity: options.connectivity });
    this.clock = options.clock;
    this.watches = new WatchManager(this.connection, this.clock, options.watchRetryMs ?? WATCH_RETRY_MS_DEFAULT);
  }

  /** Online (a leader with a quorum is heard) or offline, and how stale local reads may be; null without a connectivity source. */
  connectivity(): Connectivity | null {
    return this.options.connectivity?.() ?? null;
  }

  /** The same client with other consistency or fail-fast choices (sharing the connection, which close() of this client closes). */
  with(choices: { consistency?: Consistency; failFastOffline?: boolean }): Client {
    const view = new Client({ ...this.options, ...choices });
    this.views.push(view);
    return view;
  }

  // ---- kv ----

  /** One key: `await client.get(k)` is its value as a string, or null. */
  get(key: Bytes): SingleRangeBuilder {
    return new SingleRangeBuilder(this.connection, key);
  }

  /** Many keys: every key unless narrowed with prefix() or range(). */
  getAll(): MultiRangeBuilder {
    return new MultiRangeBuilder(this.connection);
  }

  put(key: Bytes): PutBuilder {
    return new PutBuilder(this.connection, key);
  }

  delete(): DeleteBuilder {
    return new DeleteBuilder(this.connection);
  }

  /** A transaction whose first compare is this one; add more with and(). */
  if(key: CompareKey, target: CompareTargetName, comparator: Comparator, value: Bytes | number | bigint): TxnBuilder {
    return new TxnBuilder(this.connection).and(key, target, comparator, value);
  }

  /** A transaction with no compares (its then() branch always runs). */
  txn(): TxnBuilder {
    return new TxnBuilder(this.connection);
  }

  /** Drops history below `revision`; reads and watches before it fail with EtcdCompactedError. */
  compact(revision: number, physical = false): Promise<CompactionResponse> {
    return this.connection.compact({ revision, physical });
  }

  // ---- watch, lease ----

  watch(): WatchBuilder {
    return new WatchBuilder(this.watches);
  }

  /**
   * A snapshot of the keys under `prefix`, then every change after it, resumed after
   * `fromRevision` when given; a compacted gap is reported (onReset) and followed by a fresh
   * snapshot (docs/offline.md).
   */
  follow(prefix: Bytes, handlers: FollowHandlers, options: FollowOptions = {}): Promise<Following> {
    return follow(this, prefix, handlers, options);
  }

  /** Grants a lease (at once) and, by default, keeps it alive every TTL/3. */
  lease(ttlSeconds: number, options: LeaseOptions = {}): Lease {
    const lease = new Lease(this.connection, this.clock, ttlSeconds, options, (l) => this.ownLeases.delete(l));
    this.ownLeases.add(lease);
    return lease;
  }

  /** The ids of every lease the cluster holds. */
  async leases(): Promise<bigint[]> {
    return (await this.connection.leaseLeases()).leases.map((l) => l.ID);
  }

  // ---- recipes ----

  /** A mutex shared with every client (etcdctl lock included) that locks the same name. */
  lock(name: string, options: LockOptions = {}): Lock {
    return new Lock(this, name, options);
  }

  election(name: string, options: ElectionOptions = {}): Election {
    return new Election(this, name, options);
  }

  /**
   * A view of the keys under `prefix`: keys are given and returned without it (watch events
   * included). Leases are shared with the whole keyspace, as in etcd.
   */
  namespace(prefix: Bytes): Client {
    const view = new Client({ ...this.options, connection: new NamespacedConnection(this.connection, toBytes(prefix)) });
    this.views.push(view);
    return view;
  }

  /**
   * Cancels this client's watchers and stops its leases' keep-alives (the leases expire on
   * their own), then closes the connection. Namespace views share the connection and close too.
   */
  close(): void {
    for (const view of this.views) view.closeOwn();
    this.closeOwn();
    this.connection.close();
  }

  private closeOwn(): void {
    this.watches.close();
    for (const lease of [...this.ownLeases]) lease.release();
  }
}
