// Errors are values with etcd's gRPC status code and etcd's exact message, because clients map
// the message text back to typed errors (clientv3's rpctypes).

import { GrpcStatus } from '../grpc-status.ts';

/** gRPC status codes (the one table, src/grpc-status.ts). */
export const GrpcCode = GrpcStatus;
export type GrpcCode = GrpcStatus;

export class MvccError extends Error {
  override readonly name = 'MvccError';
  constructor(
    readonly code: GrpcCode,
    message: string,
  ) {
    super(message);
  }
}

function define(code: GrpcCode, message: string): () => MvccError {
  return () => new MvccError(code, message);
}

/** One factory per etcd error; each call makes a fresh error (stack traces stay honest). */
export const Errors = {
  emptyKey: define(GrpcCode.InvalidArgument, 'etcdserver: key is not provided'),
  keyNotFound: define(GrpcCode.InvalidArgument, 'etcdserver: key not found'),
  valueProvided: define(GrpcCode.InvalidArgument, 'etcdserver: value is provided'),
  leaseProvided: define(GrpcCode.InvalidArgument, 'etcdserver: lease is provided'),
  tooManyOps: define(GrpcCode.InvalidArgument, 'etcdserver: too many operations in txn request'),
  duplicateKey: define(GrpcCode.InvalidArgument, 'etcdserver: duplicate key given in txn request'),
  requestTooLarge: define(GrpcCode.InvalidArgument, 'etcdserver: request is too large'),
  compacted: define(GrpcCode.OutOfRange, 'etcdserver: mvcc: required revision has been compacted'),
  futureRevision: define(GrpcCode.OutOfRange, 'etcdserver: mvcc: required revision is a future revision'),
  leaseNotFound: define(GrpcCode.NotFound, 'etcdserver: requested lease not found'),
  leaseExists: define(GrpcCode.FailedPrecondition, 'etcdserver: lease already exists'),
  leaseTtlTooLarge: define(GrpcCode.OutOfRange, 'etcdserver: too large lease TTL'),
  /** A leader-only lessor operation on a member that is not the leader (etcd: ErrNotPrimary). */
  notPrimary: define(GrpcCode.Unavailable, 'not a primary lessor'),
} as const;

/** Watch errors are cancel reasons in a WatchResponse, not status errors (etcd's mvcc errors). */
export const WatchCancelReason = {
  duplicateId: 'mvcc: duplicate watch ID provided on the WatchStream',
  emptyRange: 'mvcc: watcher range is empty',
} as const;
