// `connect` (the `meshkv/node` export): a client over gRPC (grpc-js) to any etcd v3 endpoint,
// meshkv members or etcd itself.

import type { Client } from '../../src/client/client.ts';
import { connectGrpc, type ConnectGrpcOptions } from '../etcd-api/grpc-connection.ts';
import { ConfigError } from './config.ts';
import type { OneOrMore } from './start-member.ts';

export type ConnectOptions = ConnectGrpcOptions;

/**
 * A Client over etcd's v3 gRPC API to `endpoints` (`host:port` or `http://host:port`; one
 * string may list several, comma-separated): meshkv members or etcd itself.
 */
export function connect(endpoints: OneOrMore, options: ConnectOptions = {}): Client {
  const list = (typeof endpoints === 'string' ? endpoints.split(',') : [...endpoints]).map((e) => e.trim()).filter((e) => e !== '');
  if (list.length === 0) throw new ConfigError('connect: give at least one endpoint, e.g. 127.0.0.1:2379');
  return connectGrpc(list, options);
}
