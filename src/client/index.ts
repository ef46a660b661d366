// The isomorphic client API. Re-exports only.
export { Client, type ClientOptions } from './client.ts';
export type { Connection, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseTimeToLiveRequest, WatchChannel, WatchRequest, WatchStreamHandlers } from './connection.ts';
export { InProcessConnection, toEtcdError, type InProcessConnectionOptions } from './local-connection.ts';
export { NamespacedConnection } from './namespace.ts';
export { Following, type FollowHandlers, type FollowOptions } from './follow.ts';
export { ConsistentConnection, type Consistency, type ConsistencyOptions } from './consistency.ts';
export type { Connectivity } from '../server/connectivity.ts';
export { SingleRangeBuilder, MultiRangeBuilder, PutBuilder, DeleteBuilder, type Operation, type LeaseRef, type SortOrderName, type SortTargetName } from './kv.ts';
export { TxnBuilder, compare, type CompareKey, type CompareTargetName, type Comparator, type TxnOperation } from './txn.ts';
export { WatchBuilder, Watcher, WatchEvent, WATCH_EVENTS_BUFFERED_MAX } from './watch.ts';
export { Lease, type LeaseOptions } from './lease.ts';
export { Lock, type LockOptions } from './lock.ts';
export { Election, ElectionObserver, type ElectionOptions } from './election.ts';
export { prefixEnd, type Bytes } from './bytes.ts';
export * from './errors.ts';
