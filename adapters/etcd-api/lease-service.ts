// etcd's Lease service over a KvMember: LeaseGrant, LeaseRevoke, LeaseKeepAlive (one message
// of the stream), LeaseTimeToLive, LeaseLeases. Who may revoke is decided in auth-gate.ts.

import { Errors, MvccError } from '../../src/mvcc/errors.ts';
import type { KvMember } from '../../src/server/kv-member.ts';
import type { LeaderClients } from './leader-client.ts';
import { int, int64, type Wire } from './server-wire.ts';

export class LeaseService {
  constructor(
    private readonly kv: KvMember,
    private readonly header: (revision?: number) => Wire,
    private readonly leaderClients: LeaderClients,
    private readonly leaderClientUrl: () => string,
  ) {}

  async leaseGrant(w: Wire): Promise<Wire> {
    const r = await this.kv.leaseGrant({ TTL: int(w.TTL), ID: int64(w.ID) });
    return { header: this.header(r.header.revision), ID: r.ID.toString(), TTL: r.TTL, error: r.error };
  }

  async leaseRevoke(w: Wire): Promise<Wire> {
    const r = await this.kv.leaseRevoke(int64(w.ID));
    return { header: this.header(r.header.revision) };
  }

  /**
   * One keep-alive; a lease that does not exist answers TTL 0, which clients read as "not found".
   * Only the leader's clock decides expiry, so a follower forwards the keep-alive to the
   * leader's client URL (once: a forwarded call that finds no leader here fails).
   */
  async leaseKeepAlive(w: Wire, forwarded = false): Promise<Wire> {
    const id = int64(w.ID);
    const TTL = await this.keepAlive(id, forwarded);
    return { header: this.header(), ID: id.toString(), TTL };
  }

  /** leaseKeepAlive on a decoded lease id (the gRPC server's codec): the TTL left, 0 for no such lease. */
  async keepAlive(id: bigint, forwarded = false): Promise<number> {
    if (!forwarded && !this.kv.isLeader()) {
      const r = await this.leaderClients.keepAlive(this.leaderClientUrl(), id.toString());
      return int(r.TTL);
    }
    try {
      return (await this.kv.leaseKeepAlive(id)).TTL;
    } catch (err) {
      if (err instanceof MvccError && err.message === Errors.leaseNotFound().message) return 0;
      throw err;
    }
  }

  async leaseTimeToLive(w: Wire): Promise<Wire> {
    const r = await this.kv.leaseTimeToLive(int64(w.ID), w.keys === true);
    return { header: this.header(r.header.revision), ID: r.ID.toString(), TTL: r.TTL, grantedTTL: r.grantedTTL, keys: r.keys };
  }

  async leaseLeases(_w: Wire): Promise<Wire> {
    const r = await this.kv.leaseLeases();
    return { header: this.header(r.header.revision), leases: r.leases.map((l) => ({ ID: l.ID.toString() })) };
  }
}
