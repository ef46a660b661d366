// proto.ts, loaded on first use. It brings @grpc/proto-loader, protobufjs and etcd's .proto
// descriptors: about 15 MB of a member's resident memory (docs/benchmarks.md, "A member's
// memory, session 8"), which only the JSON gateway and the rarely called gRPC methods
// (maintenance, cluster, auth, lease revoke and queries) need. The KV, watch, keep-alive and
// lease-grant paths read and write their messages with proto-codec.ts and never load it.

let loading: Promise<typeof import('./proto.ts')> | undefined;

/** proto.ts's exports; the first call loads it, later ones share that load. */
export function loadProto(): Promise<typeof import('./proto.ts')> {
  return (loading ??= import('./proto.ts'));
}
