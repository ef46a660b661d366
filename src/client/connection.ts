// The seam between the client API and a member: etcd's v3 RPCs, one method each, with the
// request and response messages of src/mvcc/types.ts. An in-process connection calls KvMembers
// directly; a gRPC connection maps each method onto the service call of the same name.
//
// Contract for every implementation:
// - Errors are EtcdError values (src/client/errors.ts) carrying etcd's gRPC code and message.
// - A method never retries a write whose outcome is unknown; retrying is the caller's choice.

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
  WatchCreateRequest,
  WatchResponse,
} from '../mvcc/types.ts';
import type { EtcdError } from './errors.ts';

/** etcdserverpb.LeaseKeepAliveRequest. */
export interface LeaseKeepAliveRequest {
  ID: bigint;
}

/** etcdserverpb.LeaseKeepAliveResponse. TTL 0 means the lease does not exist (any more). */
export interface LeaseKeepAliveResponse {
  header: { revision: number };
  ID: bigint;
  TTL: number;
}

/** etcdserverpb.LeaseTimeToLiveRequest. */
export interface LeaseTimeToLiveRequest {
  ID: bigint;
  keys?: boolean;
}

/** etcdserverpb.WatchRequest: exactly one member is set. */
export type WatchRequest =
  | { createRequest: WatchCreateRequest }
  | { cancelRequest: { watchId: number } }
  | { progressRequest: Record<string, never> };

export interface WatchStreamHandlers {
  /** Responses in the order the member sent them; never called after `onClosed`. */
  onResponse(response: WatchResponse): void;
  /** The stream broke (member stopped, connection lost). Called at most once, never after close(). */
  onClosed(error: EtcdError): void;
}

/** One bidirectional watch stream (etcd's Watch RPC). Its watch ids are its own. */
export interface WatchChannel {
  send(request: WatchRequest): void;
  /** Ends the stream from the client side; no handler is called afterwards. */
  close(): void;
}

export interface Connection {
  range(request: RangeRequest): Promise<RangeResponse>;
  put(request: PutRequest): Promise<PutResponse>;
  deleteRange(request: DeleteRangeRequest): Promise<DeleteRangeResponse>;
  txn(request: TxnRequest): Promise<TxnResponse>;
  compact(request: CompactionRequest): Promise<CompactionResponse>;

  leaseGrant(request: LeaseGrantRequest): Promise<LeaseGrantResponse>;
  leaseRevoke(request: LeaseRevokeRequest): Promise<LeaseRevokeResponse>;
  /**
   * One keep-alive round trip. etcd's LeaseKeepAlive is a bidirectional stream; a gRPC
   * connection keeps one stream open and answers each call with the next response for that ID.
   */
  leaseKeepAlive(request: LeaseKeepAliveRequest): Promise<LeaseKeepAliveResponse>;
  leaseTimeToLive(request: LeaseTimeToLiveRequest): Promise<LeaseTimeToLiveResponse>;
  leaseLeases(): Promise<LeaseLeasesResponse>;

  /**
   * Opens a watch stream. Never throws: a stream that cannot be opened reports `onClosed`
   * asynchronously, so callers have a single failure path.
   */
  watch(handlers: WatchStreamHandlers): WatchChannel;

  /** Releases the connection's resources; open watch channels are closed without onClosed. */
  close(): void;
}
