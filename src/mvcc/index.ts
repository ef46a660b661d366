// The MVCC key-value state machine with etcd v3 semantics. Re-exports only.
export { MvccStateMachine, type ApplyContext, type ApplyResult, type StateMachineOptions } from './state-machine.ts';
export { WatchHub, WatchStream, WATCH_SYNC_REVISIONS_MAX, type WatchSink } from './watch-hub.ts';
export {
  Lessor,
  DEFAULT_LESSOR_CONFIG,
  LEASE_TTL_SECONDS_MAX,
  type Lease,
  type LeaseState,
  type LessorConfig,
} from './lessor.ts';
export { SnapshotView, SnapshotDecodeError, SNAPSHOT_FORMAT, SNAPSHOT_FRAME_RECORDS_MAX, checkSnapshotFrames, decodeSnapshot } from './snapshot.ts';
export { validateRequest, requestSizeBytes, DEFAULT_LIMITS, type Limits } from './validate.ts';
export { MvccError, Errors, GrpcCode, WatchCancelReason } from './errors.ts';
export { INITIAL_REVISION, NO_COMPACTION } from './kv-store.ts';
export * from './types.ts';
