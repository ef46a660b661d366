// Errors of the etcd API adapters: every failure leaves as an EtcdApiError with etcd's gRPC
// status code and exact message, whatever layer raised it.

import { GrpcStatus } from '../../src/grpc-status.ts';
import { MvccError } from '../../src/mvcc/errors.ts';
import { MemberError } from '../../src/server/member.ts';
import { AuthError } from '../../src/server/auth-store.ts';

/** gRPC status codes (the one table, src/grpc-status.ts). */
export const Status = GrpcStatus;

export class EtcdApiError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/** Maps any failure to etcd's status code and message. */
export function toApiError(err: unknown): EtcdApiError {
  if (err instanceof EtcdApiError) return err;
  if (err instanceof MvccError || err instanceof AuthError) return new EtcdApiError(err.code, err.message);
  if (err instanceof MemberError) {
    // etcd answers timeouts, a stopped server and a missing leader with Unavailable.
    return new EtcdApiError(Status.Unavailable, err.message);
  }
  return new EtcdApiError(Status.Unknown, err instanceof Error ? err.message : String(err));
}
