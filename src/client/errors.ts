// Typed errors. Every error from a member carries etcd's gRPC status code and etcd's exact
// message; like clientv3's rpctypes, the message text alone picks the class, so the same
// mapping serves the in-process connection and a gRPC one.

import { GrpcStatus } from '../grpc-status.ts';

/** gRPC status codes (the one table, src/grpc-status.ts). */
export const StatusCode = GrpcStatus;

export class EtcdError extends Error {
  override name = 'EtcdError';
  constructor(
    /** gRPC status code. */
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * An error class made by etcdError. Named so that the published declarations describe each
 * class by it rather than by Error's static side, which under @types/node names Node types.
 */
interface EtcdErrorClass {
  new (): EtcdError;
  readonly etcdMessage: string;
}

/** Declares an error class whose message and code are etcd's. */
function etcdError(name: string, code: number, message: string): EtcdErrorClass {
  const cls = class extends EtcdError {
    static readonly etcdMessage = message;
    override name = name;
    constructor() {
      super(code, message);
    }
  };
  Object.defineProperty(cls, 'name', { value: name });
  return cls;
}

export class EtcdEmptyKeyError extends etcdError('EtcdEmptyKeyError', StatusCode.InvalidArgument, 'etcdserver: key is not provided') {}
export class EtcdKeyNotFoundError extends etcdError('EtcdKeyNotFoundError', StatusCode.InvalidArgument, 'etcdserver: key not found') {}
export class EtcdValueProvidedError extends etcdError('EtcdValueProvidedError', StatusCode.InvalidArgument, 'etcdserver: value is provided') {}
export class EtcdLeaseProvidedError extends etcdError('EtcdLeaseProvidedError', StatusCode.InvalidArgument, 'etcdserver: lease is provided') {}
export class EtcdTooManyOpsError extends etcdError('EtcdTooManyOpsError', StatusCode.InvalidArgument, 'etcdserver: too many operations in txn request') {}
export class EtcdDuplicateKeyError extends etcdError('EtcdDuplicateKeyError', StatusCode.InvalidArgument, 'etcdserver: duplicate key given in txn request') {}
export class EtcdRequestTooLargeError extends etcdError('EtcdRequestTooLargeError', StatusCode.InvalidArgument, 'etcdserver: request is too large') {}
export class EtcdFutureRevisionError extends etcdError('EtcdFutureRevisionError', StatusCode.OutOfRange, 'etcdserver: mvcc: required revision is a future revision') {}
export class EtcdNoSpaceError extends etcdError('EtcdNoSpaceError', StatusCode.ResourceExhausted, 'etcdserver: mvcc: database space exceeded') {}
export class EtcdLeaseNotFoundError extends etcdError('EtcdLeaseNotFoundError', StatusCode.NotFound, 'etcdserver: requested lease not found') {}
export class EtcdLeaseExistsError extends etcdError('EtcdLeaseExistsError', StatusCode.FailedPrecondition, 'etcdserver: lease already exists') {}
export class EtcdLeaseTtlTooLargeError extends etcdError('EtcdLeaseTtlTooLargeError', StatusCode.OutOfRange, 'etcdserver: too large lease TTL') {}
export class EtcdTooManyRequestsError extends etcdError('EtcdTooManyRequestsError', StatusCode.ResourceExhausted, 'etcdserver: too many requests') {}
export class EtcdNoLeaderError extends etcdError('EtcdNoLeaderError', StatusCode.Unavailable, 'etcdserver: no leader') {}
export class EtcdNotLeaderError extends etcdError('EtcdNotLeaderError', StatusCode.FailedPrecondition, 'etcdserver: not leader') {}
export class EtcdLeaderChangedError extends etcdError('EtcdLeaderChangedError', StatusCode.Unavailable, 'etcdserver: leader changed') {}
export class EtcdNotCapableError extends etcdError('EtcdNotCapableError', StatusCode.Unavailable, 'etcdserver: not capable') {}
export class EtcdServerStoppedError extends etcdError('EtcdServerStoppedError', StatusCode.Unavailable, 'etcdserver: server stopped') {}
export class EtcdRequestTimeoutError extends etcdError('EtcdRequestTimeoutError', StatusCode.Unavailable, 'etcdserver: request timed out') {}
export class EtcdTimeoutDueToLeaderFailError extends etcdError('EtcdTimeoutDueToLeaderFailError', StatusCode.Unavailable, 'etcdserver: request timed out, possibly due to previous leader failure') {}
export class EtcdTimeoutDueToConnectionLostError extends etcdError('EtcdTimeoutDueToConnectionLostError', StatusCode.Unavailable, 'etcdserver: request timed out, possibly due to connection lost') {}
export class EtcdUnhealthyError extends etcdError('EtcdUnhealthyError', StatusCode.Unavailable, 'etcdserver: unhealthy cluster') {}
export class EtcdCorruptError extends etcdError('EtcdCorruptError', StatusCode.DataLoss, 'etcdserver: corrupt cluster') {}
export class EtcdPermissionDeniedError extends etcdError('EtcdPermissionDeniedError', StatusCode.PermissionDenied, 'etcdserver: permission denied') {}

/** The revision asked for is below the compaction point. A canceled watch says which that is. */
export class EtcdCompactedError extends EtcdError {
  static readonly etcdMessage = 'etcdserver: mvcc: required revision has been compacted';
  override name = 'EtcdCompactedError';
  constructor(
    /** The store's compaction revision when a watch was canceled; 0 when a read reported it. */
    readonly compactRevision = 0,
  ) {
    super(StatusCode.OutOfRange, EtcdCompactedError.etcdMessage);
  }
}

/** No member can be reached (etcd's clients: "there is no address available"). */
export class EtcdUnavailableError extends EtcdError {
  override name = 'EtcdUnavailableError';
  constructor(message: string) {
    super(StatusCode.Unavailable, message);
  }
}

/** The member canceled a watch for a reason other than compaction (etcd's cancel_reason). */
export class EtcdWatchCanceledError extends EtcdError {
  override name = 'EtcdWatchCanceledError';
  constructor(reason: string) {
    super(StatusCode.FailedPrecondition, reason);
  }
}

/** A lease's keep-alives stopped working before its TTL ran out, or the server dropped it. */
export class LeaseLostError extends EtcdError {
  override name = 'LeaseLostError';
  constructor(
    readonly leaseId: bigint,
    override readonly cause?: Error,
  ) {
    super(StatusCode.NotFound, `lease ${leaseId.toString(16)} lost${cause ? `: ${cause.message}` : ''}`);
  }
}

/** clientv3/concurrency's ErrElectionNotLeader. */
export class ElectionNotLeaderError extends EtcdError {
  override name = 'ElectionNotLeaderError';
  constructor() {
    super(StatusCode.FailedPrecondition, 'election: not leader');
  }
}

/** clientv3/concurrency's ErrElectionNoLeader. */
export class ElectionNoLeaderError extends EtcdError {
  override name = 'ElectionNoLeaderError';
  constructor() {
    super(StatusCode.NotFound, 'election: no leader');
  }
}

/** clientv3/concurrency's ErrSessionExpired: the session lease died while waiting for a lock. */
export class SessionExpiredError extends EtcdError {
  override name = 'SessionExpiredError';
  constructor() {
    super(StatusCode.NotFound, 'session expired');
  }
}

/** The client, or the watcher, lease or recipe, was closed while an operation waited. */
export class ClientClosedError extends EtcdError {
  override name = 'ClientClosedError';
  constructor(what: string) {
    super(StatusCode.Canceled, `${what} was closed`);
  }
}

const byMessage = new Map<string, new () => EtcdError>(
  [
    EtcdEmptyKeyError,
    EtcdKeyNotFoundError,
    EtcdValueProvidedError,
    EtcdLeaseProvidedError,
    EtcdTooManyOpsError,
    EtcdDuplicateKeyError,
    EtcdRequestTooLargeError,
    EtcdFutureRevisionError,
    EtcdNoSpaceError,
    EtcdLeaseNotFoundError,
    EtcdLeaseExistsError,
    EtcdLeaseTtlTooLargeError,
    EtcdTooManyRequestsError,
    EtcdNoLeaderError,
    EtcdNotLeaderError,
    EtcdLeaderChangedError,
    EtcdNotCapableError,
    EtcdServerStoppedError,
    EtcdRequestTimeoutError,
    EtcdTimeoutDueToLeaderFailError,
    EtcdTimeoutDueToConnectionLostError,
    EtcdUnhealthyError,
    EtcdCorruptError,
    EtcdPermissionDeniedError,
    EtcdCompactedError,
  ].map((cls) => [cls.etcdMessage, cls as new () => EtcdError]),
);

/**
 * The typed error for a status from a member: by etcd's message when it is one etcd defines,
 * otherwise a plain EtcdError with the status code.
 */
export function errorFromStatus(code: number, message: string): EtcdError {
  const cls = byMessage.get(message);
  return cls ? new cls() : new EtcdError(code, message);
}

/** A watcher's async iterator fell too far behind; iterating further would skip events. */
export class WatchBufferOverflowError extends EtcdError {
  override name = 'WatchBufferOverflowError';
  constructor(limit: number) {
    super(StatusCode.ResourceExhausted, `watch: more than ${limit} events were waiting for the async iterator`);
  }
}

/**
 * The member is offline (no leader with a quorum) and the client was asked to fail fast
 * (ClientOptions.failFastOffline) rather than wait the request timeout: a linearizable read or
 * a write was refused at once. Local reads still answer (docs/offline.md).
 */
export class OfflineError extends EtcdError {
  override name = 'OfflineError';
  constructor(what: string, stalenessMs: number | null) {
    super(
      StatusCode.Unavailable,
      `meshkv: offline: ${what} needs a leader with a quorum, and this member has heard from none ${stalenessMs === null ? 'since it started' : `for ${Math.round(stalenessMs)} ms`}; read with consistency 'local' or queue the write in the outbox`,
    );
  }
}
