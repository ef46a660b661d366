// The one table of gRPC status codes meshkv uses, by their gRPC names. etcd picks a code for each
// of its errors (api/v3rpc/rpctypes); the store, the client and the etcd API adapters all take
// their codes from here, so a code cannot differ between them.

export const GrpcStatus = {
  Canceled: 1,
  Unknown: 2,
  InvalidArgument: 3,
  DeadlineExceeded: 4,
  NotFound: 5,
  PermissionDenied: 7,
  ResourceExhausted: 8,
  FailedPrecondition: 9,
  OutOfRange: 11,
  Unimplemented: 12,
  Internal: 13,
  Unavailable: 14,
  DataLoss: 15,
  Unauthenticated: 16,
} as const;
export type GrpcStatus = (typeof GrpcStatus)[keyof typeof GrpcStatus];
