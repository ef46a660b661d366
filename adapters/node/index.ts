// meshkv/node: a member embedded in a Node program, and a gRPC client to any etcd v3 endpoint.
// The client API itself (Client, compare, typed errors) is the `meshkv` export. Re-exports only.
export { startMember, type StartMemberOptions, type Member, type MemberStatus, type LogFn } from './start-member.ts';
export { connect, type ConnectOptions } from './connect.ts';
export { ConfigError } from './config.ts';
export { StartError } from './node-member.ts';
export { ListenError } from '../etcd-api/listener.ts';
export { StorageError } from '../storage/errors.ts';
