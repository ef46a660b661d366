// Forwards to the leader what only the leader can answer (lease keep-alives, learner
// promotion), over etcd's own gRPC API on the leader's advertised client URL: a follower
// answers its clients as etcd's followers do, without a peer-level RPC of our own.
//
// grpc-js and the protos load on the first forward: a member that never forwards (a leader, a
// cluster without leases) never holds them (~20 MB of resident memory, docs/benchmarks.md).

import type * as grpc from '@grpc/grpc-js';
import { EtcdApiError, Status } from './errors.ts';
import { loadProto } from './proto-load.ts';

type Wire = Record<string, any>;

/** Metadata on forwarded calls: a member that is not the leader refuses them instead of forwarding again. */
export const forwardedMetadataKey = 'meshkv-forwarded';
/** A forwarded call fails after this long (etcd's request timeout is 7 s including the forward). */
export const forwardTimeoutMs = 5000;
/** Leader clients kept open at once; leaders change rarely, so a small bound suffices. */
const clientsMax = 8;

type ServiceClient = grpc.Client & Record<string, (...args: any[]) => any>;

interface Grpc {
  grpc: typeof grpc;
  services: Record<'Lease' | 'Cluster', grpc.ServiceClientConstructor>;
}

let loading: Promise<Grpc> | undefined;

function loadGrpc(): Promise<Grpc> {
  return (loading ??= Promise.all([import('@grpc/grpc-js'), loadProto()]).then(([grpc, { packageDefinition }]) => ({
    grpc,
    services: (grpc.loadPackageDefinition(packageDefinition) as unknown as { etcdserverpb: Grpc['services'] }).etcdserverpb,
  })));
}

export class LeaderClients {
  private readonly clients = new Map<string, { lease: ServiceClient; cluster: ServiceClient }>();
  /** Set by close(): a forward still loading grpc-js then fails instead of opening a client. */
  private closed = false;

  /** One keep-alive for lease `id` on the member serving `url`. */
  async keepAlive(url: string, id: string): Promise<Wire> {
    const { grpc, lease } = await this.client(url);
    return new Promise((resolve, reject) => {
      const metadata = new grpc.Metadata();
      metadata.set(forwardedMetadataKey, '1');
      const call: grpc.ClientDuplexStream<Wire, Wire> = lease.LeaseKeepAlive(metadata, { deadline: Date.now() + forwardTimeoutMs });
      let done = false;
      call.on('data', (r: Wire) => {
        if (done) return;
        done = true;
        resolve(r);
        call.end();
      });
      call.on('error', (err: grpc.ServiceError) => {
        if (done) return;
        done = true;
        reject(forwardError(err));
      });
      call.on('end', () => {
        if (!done) {
          done = true;
          reject(new EtcdApiError(Status.Unavailable, 'etcdserver: leader closed the keep-alive stream'));
        }
      });
      call.write({ ID: id });
    });
  }

  /** Promotes learner `id` on the member serving `url`, as the caller holding auth `token` (if any). */
  async promote(url: string, id: string, token: string | undefined): Promise<Wire> {
    const { grpc, cluster } = await this.client(url);
    return new Promise((resolve, reject) => {
      const metadata = new grpc.Metadata();
      metadata.set(forwardedMetadataKey, '1');
      if (token !== undefined) metadata.set('token', token);
      cluster.MemberPromote({ ID: id }, metadata, { deadline: Date.now() + forwardTimeoutMs }, (err: grpc.ServiceError | null, r: Wire) =>
        err ? reject(forwardError(err)) : resolve(r),
      );
    });
  }

  close(): void {
    this.closed = true;
    this.closeClients();
  }

  private closeClients(): void {
    for (const c of this.clients.values()) {
      c.lease.close();
      c.cluster.close();
    }
    this.clients.clear();
  }

  private async client(url: string): Promise<{ grpc: typeof grpc; lease: ServiceClient; cluster: ServiceClient }> {
    const { grpc, services } = await loadGrpc();
    if (this.closed) throw new EtcdApiError(Status.Unavailable, 'etcdserver: server stopped');
    let c = this.clients.get(url);
    if (c === undefined) {
      if (this.clients.size >= clientsMax) this.closeClients();
      const target = new URL(url).host;
      const credentials = grpc.credentials.createInsecure();
      c = { lease: new services.Lease(target, credentials) as ServiceClient, cluster: new services.Cluster(target, credentials) as ServiceClient };
      this.clients.set(url, c);
    }
    return { grpc, ...c };
  }
}

/** The leader's answer keeps etcd's code and message; a failed connection reads as a lost leader. */
function forwardError(err: grpc.ServiceError): EtcdApiError {
  if (err.code === Status.Unavailable || err.code === Status.DeadlineExceeded) {
    return new EtcdApiError(Status.Unavailable, err.details?.startsWith('etcdserver:') ? err.details : 'etcdserver: leader changed');
  }
  return new EtcdApiError(err.code, err.details);
}
