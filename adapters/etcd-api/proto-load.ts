// proto.ts, loaded on first use. It brings @grpc/proto-loader, protobufjs and etcd's .proto
// descriptors: about 10 MB of a member's resident memory (docs/benchmarks.md, "A member's
// memory, session 8"), which only the JSON gateway and the rarely called gRPC methods
// (maintenance but Status, cluster, auth, lease revoke and queries) need. The KV, watch,
// keep-alive, lease-grant and Status paths use proto-codec.ts and never load it.

let loading: Promise<typeof import('./proto.ts')> | undefined;

/** proto.ts's exports; the first call loads it, later ones share that load. */
export function loadProto(): Promise<typeof import('./proto.ts')> {
  return (loading ??= (async () => {
    // Two pieces of about 0.1 s of CPU each (evaluating protobufjs, then parsing the .proto
    // files), with a turn of the event loop between them for the member's timers and peers.
    await import('@grpc/proto-loader');
    await new Promise((resolve) => setImmediate(resolve));
    return import('./proto.ts');
  })());
}
