// meshkv: the isomorphic API — the client, its builders, typed errors and etcd's message types.
// No Node or DOM module is reachable from here (test/package/consumer.test.ts imports it in
// plain Node, and the bundle-size check builds it for the browser). Re-exports only.
export * from './client/index.ts';
export { StateRole, type MemberId } from './raft/types.ts';
export {
  SortOrder,
  SortTarget,
  CompareResult,
  CompareTarget,
  EventType,
  FilterType,
  type ResponseHeader,
  type KeyValue,
  type Event,
  type RangeRequest,
  type RangeResponse,
  type PutRequest,
  type PutResponse,
  type DeleteRangeRequest,
  type DeleteRangeResponse,
  type Compare,
  type RequestOp,
  type ResponseOp,
  type TxnRequest,
  type TxnResponse,
  type CompactionRequest,
  type CompactionResponse,
  type LeaseGrantRequest,
  type LeaseGrantResponse,
  type LeaseRevokeRequest,
  type LeaseRevokeResponse,
  type LeaseTimeToLiveResponse,
  type LeaseStatus,
  type LeaseLeasesResponse,
  type WatchCreateRequest,
  type WatchResponse,
} from './mvcc/types.ts';
export type { Clock } from './seams.ts';
