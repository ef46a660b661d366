// Requests and responses of the key-value state machine. They mirror etcd's etcdserverpb and
// mvccpb messages field for field, in camelCase; optional fields default to proto3's zero.
// Revisions are numbers (exact up to 2^53); lease ids are bigint (int64 on the wire).

export interface ResponseHeader {
  /** The store revision the response reflects. The server adds cluster/member id and term. */
  revision: number;
}

/** mvccpb.KeyValue. A deleted key in a watch event has only key and modRevision set. */
export interface KeyValue {
  key: Uint8Array;
  createRevision: number;
  modRevision: number;
  /** 1 on creation, +1 per put; a delete resets the key's generation. */
  version: number;
  value: Uint8Array;
  /** 0n when no lease is attached. */
  lease: bigint;
}

export const SortOrder = { NONE: 0, ASCEND: 1, DESCEND: 2 } as const;
export type SortOrder = (typeof SortOrder)[keyof typeof SortOrder];

export const SortTarget = { KEY: 0, VERSION: 1, CREATE: 2, MOD: 3, VALUE: 4 } as const;
export type SortTarget = (typeof SortTarget)[keyof typeof SortTarget];

export interface RangeRequest {
  key: Uint8Array;
  /** Empty: just `key`. "\0": every key >= `key`. Otherwise the exclusive end. */
  rangeEnd?: Uint8Array;
  /** 0: no limit. */
  limit?: number;
  /** 0: the current revision. */
  revision?: number;
  sortOrder?: SortOrder;
  sortTarget?: SortTarget;
  /** Read locally without a linearizable barrier: meaningful to the server only. */
  serializable?: boolean;
  keysOnly?: boolean;
  countOnly?: boolean;
  minModRevision?: number;
  maxModRevision?: number;
  minCreateRevision?: number;
  maxCreateRevision?: number;
}

export interface RangeResponse {
  header: ResponseHeader;
  kvs: KeyValue[];
  /** More keys matched than `limit` returned. */
  more: boolean;
  /** Keys in the range at the revision, before the min/max revision filters (etcd's rule). */
  count: number;
}

export interface PutRequest {
  key: Uint8Array;
  value?: Uint8Array;
  lease?: bigint;
  prevKv?: boolean;
  ignoreValue?: boolean;
  ignoreLease?: boolean;
}

export interface PutResponse {
  header: ResponseHeader;
  prevKv?: KeyValue;
}

export interface DeleteRangeRequest {
  key: Uint8Array;
  rangeEnd?: Uint8Array;
  prevKv?: boolean;
}

export interface DeleteRangeResponse {
  header: ResponseHeader;
  deleted: number;
  prevKvs: KeyValue[];
}

export const CompareResult = { EQUAL: 0, GREATER: 1, LESS: 2, NOT_EQUAL: 3 } as const;
export type CompareResult = (typeof CompareResult)[keyof typeof CompareResult];

export const CompareTarget = { VERSION: 0, CREATE: 1, MOD: 2, VALUE: 3, LEASE: 4 } as const;
export type CompareTarget = (typeof CompareTarget)[keyof typeof CompareTarget];

/** etcdserverpb.Compare; the target_union oneof is flattened: set the field `target` names. */
export interface Compare {
  result: CompareResult;
  target: CompareTarget;
  key: Uint8Array;
  version?: number;
  createRevision?: number;
  modRevision?: number;
  value?: Uint8Array;
  lease?: bigint;
  /** With a range end, the compare holds only if it holds for every key in the range. */
  rangeEnd?: Uint8Array;
}

/** etcdserverpb.RequestOp: exactly one member is set. */
export type RequestOp =
  | { requestRange: RangeRequest }
  | { requestPut: PutRequest }
  | { requestDeleteRange: DeleteRangeRequest }
  | { requestTxn: TxnRequest };

export type ResponseOp =
  | { responseRange: RangeResponse }
  | { responsePut: PutResponse }
  | { responseDeleteRange: DeleteRangeResponse }
  | { responseTxn: TxnResponse };

export interface TxnRequest {
  compare?: Compare[];
  success?: RequestOp[];
  failure?: RequestOp[];
}

export interface TxnResponse {
  /** The top-level txn's revision; 0 in nested txn responses (etcd leaves those headers empty). */
  header: ResponseHeader;
  succeeded: boolean;
  responses: ResponseOp[];
}

export interface CompactionRequest {
  revision: number;
  /** Wait for the compaction to be durable: meaningful to the server only. */
  physical?: boolean;
}

export interface CompactionResponse {
  header: ResponseHeader;
}

export interface LeaseGrantRequest {
  /** Seconds; raised to the lessor's minimum TTL. */
  TTL: number;
  /** 0n: the state machine assigns one (etcd's server assigns it before proposing). */
  ID?: bigint;
}

export interface LeaseGrantResponse {
  header: ResponseHeader;
  ID: bigint;
  TTL: number;
  error: string;
}

export interface LeaseRevokeRequest {
  ID: bigint;
}

export interface LeaseRevokeResponse {
  header: ResponseHeader;
}

export interface LeaseCheckpoint {
  ID: bigint;
  /** Seconds left when the leader took the checkpoint. */
  remainingTTL: number;
}

export interface LeaseCheckpointRequest {
  checkpoints: LeaseCheckpoint[];
}

export interface LeaseCheckpointResponse {
  header: ResponseHeader;
}

export interface LeaseTimeToLiveResponse {
  header: ResponseHeader;
  ID: bigint;
  /** Seconds left (floored); -1 if the lease does not exist or has expired. */
  TTL: number;
  grantedTTL: number;
  keys: Uint8Array[];
}

export interface LeaseStatus {
  ID: bigint;
}

export interface LeaseLeasesResponse {
  header: ResponseHeader;
  leases: LeaseStatus[];
}

export interface HashKVResponse {
  header: ResponseHeader;
  /** CRC-32C over every stored key-value up to `hashRevision`. */
  hash: number;
  compactRevision: number;
  hashRevision: number;
}

/** A replicated request, as decoded from a Raft entry. */
export type ApplyRequest =
  | { kind: 'range'; request: RangeRequest }
  | { kind: 'put'; request: PutRequest }
  | { kind: 'deleteRange'; request: DeleteRangeRequest }
  | { kind: 'txn'; request: TxnRequest }
  | { kind: 'compaction'; request: CompactionRequest }
  | { kind: 'leaseGrant'; request: LeaseGrantRequest }
  | { kind: 'leaseRevoke'; request: LeaseRevokeRequest }
  | { kind: 'leaseCheckpoint'; request: LeaseCheckpointRequest };

export interface ApplyResponseByKind {
  range: RangeResponse;
  put: PutResponse;
  deleteRange: DeleteRangeResponse;
  txn: TxnResponse;
  compaction: CompactionResponse;
  leaseGrant: LeaseGrantResponse;
  leaseRevoke: LeaseRevokeResponse;
  leaseCheckpoint: LeaseCheckpointResponse;
}

export type ApplyResponse = ApplyResponseByKind[keyof ApplyResponseByKind];

// ---- watch ----

export const FilterType = { NOPUT: 0, NODELETE: 1 } as const;
export type FilterType = (typeof FilterType)[keyof typeof FilterType];

export interface WatchCreateRequest {
  key: Uint8Array;
  rangeEnd?: Uint8Array;
  /** 0: from the next revision. Otherwise replay history from this revision. */
  startRevision?: number;
  progressNotify?: boolean;
  filters?: FilterType[];
  prevKv?: boolean;
  /** 0: the stream assigns one. */
  watchId?: number;
}

export const EventType = { PUT: 0, DELETE: 1 } as const;
export type EventType = (typeof EventType)[keyof typeof EventType];

export interface Event {
  type: EventType;
  kv: KeyValue;
  prevKv?: KeyValue;
}

export interface WatchResponse {
  header: ResponseHeader;
  /** -1 for a stream-wide progress response. */
  watchId: number;
  created: boolean;
  canceled: boolean;
  /** Set (non-zero) when the watch's start revision was compacted; the watch is canceled. */
  compactRevision: number;
  cancelReason: string;
  /** Read-only: watchers of the same revision may share one list. */
  events: readonly Event[];
}
