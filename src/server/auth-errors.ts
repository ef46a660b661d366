// etcd's auth errors (api/v3rpc/rpctypes: codes and messages), for the auth store, the token
// checks and the client's in-process connection.

import { GrpcStatus } from '../grpc-status.ts';

export class AuthError extends Error {
  override readonly name = 'AuthError';
  constructor(
    readonly code: GrpcStatus,
    message: string,
  ) {
    super(message);
  }
}

function define(code: GrpcStatus, message: string): () => AuthError {
  return () => new AuthError(code, message);
}

/** etcd's auth errors, codes and messages as api/v3rpc/rpctypes has them. */
export const AuthErrors = {
  rootUserNotExist: define(GrpcStatus.FailedPrecondition, 'etcdserver: root user does not exist'),
  rootRoleNotExist: define(GrpcStatus.FailedPrecondition, 'etcdserver: root user does not have root role'),
  userAlreadyExist: define(GrpcStatus.FailedPrecondition, 'etcdserver: user name already exists'),
  userEmpty: define(GrpcStatus.InvalidArgument, 'etcdserver: user name is empty'),
  userNotFound: define(GrpcStatus.FailedPrecondition, 'etcdserver: user name not found'),
  roleAlreadyExist: define(GrpcStatus.FailedPrecondition, 'etcdserver: role name already exists'),
  roleNotFound: define(GrpcStatus.FailedPrecondition, 'etcdserver: role name not found'),
  roleEmpty: define(GrpcStatus.InvalidArgument, 'etcdserver: role name is empty'),
  authFailed: define(GrpcStatus.InvalidArgument, 'etcdserver: authentication failed, invalid user ID or password'),
  permissionDenied: define(GrpcStatus.PermissionDenied, 'etcdserver: permission denied'),
  roleNotGranted: define(GrpcStatus.FailedPrecondition, 'etcdserver: role is not granted to the user'),
  permissionNotGranted: define(GrpcStatus.FailedPrecondition, 'etcdserver: permission is not granted to the role'),
  authNotEnabled: define(GrpcStatus.FailedPrecondition, 'etcdserver: authentication is not enabled'),
  invalidAuthToken: define(GrpcStatus.Unauthenticated, 'etcdserver: invalid auth token'),
  authOldRevision: define(GrpcStatus.InvalidArgument, 'etcdserver: revision of auth store is old'),
  invalidAuthMgmt: define(GrpcStatus.InvalidArgument, 'etcdserver: invalid auth management'),
} as const;
