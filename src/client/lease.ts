// Leases: granted on creation, kept alive every TTL/3 by default, and declared lost when the
// server says the lease is gone or no keep-alive has succeeded for a whole TTL.

import type { LeaseTimeToLiveResponse } from '../mvcc/types.ts';
import type { Clock } from '../seams.ts';
import type { Bytes } from './bytes.ts';
import type { Connection, LeaseKeepAliveResponse } from './connection.ts';
import { Emitter } from './emitter.ts';
import { EtcdLeaseNotFoundError, LeaseLostError, type EtcdError } from './errors.ts';
import { PutBuilder } from './kv.ts';

export interface LeaseOptions {
  /** Send keep-alives every TTL/3 until revoked, released or lost. Default true. */
  autoKeepAlive?: boolean;
}

type LeaseEvents = {
  keepaliveSucceeded: [response: LeaseKeepAliveResponse];
  /** One keep-alive failed; the lease is not lost until 'lost'. */
  keepaliveFailed: [error: EtcdError];
  /**
   * The lease is gone or must be assumed gone: the server answered that it does not exist, no
   * keep-alive succeeded for a whole TTL, or the grant failed. Not emitted after revoke().
   */
  lost: [error: LeaseLostError];
};

type LeaseState = 'granting' | 'alive' | 'lost' | 'revoked' | 'released';

export class Lease extends Emitter<LeaseEvents> {
  private readonly granted: Promise<bigint>;
  private state: LeaseState = 'granting';
  private id: bigint | null = null;
  /** The TTL the server granted (it raises TTLs below its minimum). */
  private grantedTtlSeconds: number;
  /**
   * When the newest request that renewed the lease was sent: the server's TTL runs from a
   * moment after it, so lastRenewalMs + TTL never overestimates the time left.
   */
  private lastRenewalMs = 0;
  private lastError: EtcdError | undefined;
  private stopKeepAlive: (() => void) | null = null;
  private keepAliveInFlight = false;

  /** @internal Use client.lease(ttl). */
  constructor(
    private readonly connection: Connection,
    private readonly clock: Clock,
    readonly ttlSeconds: number,
    private readonly options: LeaseOptions = {},
    /** Called once when the lease is revoked, released or lost (the client stops tracking it). */
    private readonly onFinished: (lease: Lease) => void = () => {},
  ) {
    super();
    if (!(Number.isInteger(ttlSeconds) && ttlSeconds > 0)) throw new TypeError(`lease: TTL ${ttlSeconds} is not a positive integer of seconds`);
    this.grantedTtlSeconds = ttlSeconds;
    this.granted = this.doGrant();
    this.granted.catch(() => {}); // reported through 'lost' and to whoever awaits grant()
  }

  /** The lease id once granted. */
  grant(): Promise<bigint> {
    return this.granted;
  }

  /** The lease id in lowercase hex, as etcdctl prints it. */
  async idHex(): Promise<string> {
    return (await this.granted).toString(16);
  }

  get isLost(): boolean {
    return this.state === 'lost';
  }

  get isRevoked(): boolean {
    return this.state === 'revoked';
  }

  /** A put of `key` attached to this lease. */
  put(key: Bytes): PutBuilder {
    return new PutBuilder(this.connection, key).lease(this.granted);
  }

  /** Renews the lease once. Resolves with the server's answer; a lease that is gone is lost. */
  async keepaliveOnce(): Promise<LeaseKeepAliveResponse> {
    const id = await this.granted;
    const sentMs = this.clock.now();
    let res: LeaseKeepAliveResponse;
    try {
      res = await this.connection.leaseKeepAlive({ ID: id });
    } catch (err) {
      this.lastError = err as EtcdError;
      if (this.state === 'alive') this.emit('keepaliveFailed', err as EtcdError);
      throw err;
    }
    if (res.TTL <= 0) {
      const err = new EtcdLeaseNotFoundError();
      this.lose(err);
      throw err;
    }
    this.lastRenewalMs = Math.max(this.lastRenewalMs, sentMs);
    if (this.state === 'alive') this.emit('keepaliveSucceeded', res);
    return res;
  }

  /** Seconds left (floored), or -1 if the lease has expired or was revoked. */
  async ttl(): Promise<number> {
    return (await this.timeToLive()).TTL;
  }

  async timeToLive(keys = false): Promise<LeaseTimeToLiveResponse> {
    return this.connection.leaseTimeToLive({ ID: await this.granted, keys });
  }

  /** Stops keep-alives and revokes the lease: its keys are deleted. Revoking a gone lease is not an error. */
  async revoke(): Promise<void> {
    this.stop('revoked');
    let id: bigint;
    try {
      id = await this.granted;
    } catch {
      return; // never granted: nothing to revoke
    }
    try {
      await this.connection.leaseRevoke({ ID: id });
    } catch (err) {
      if (!(err instanceof EtcdLeaseNotFoundError)) throw err;
    }
  }

  /** Stops keep-alives without revoking: the lease expires after its TTL. */
  release(): void {
    this.stop('released');
  }

  private async doGrant(): Promise<bigint> {
    const sentMs = this.clock.now();
    let res;
    try {
      res = await this.connection.leaseGrant({ TTL: this.ttlSeconds, ID: 0n });
    } catch (err) {
      this.lose(err as EtcdError);
      throw err;
    }
    this.id = res.ID;
    this.grantedTtlSeconds = res.TTL;
    this.lastRenewalMs = sentMs;
    if (this.state !== 'granting') return res.ID; // revoked or released while granting
    this.state = 'alive';
    if (this.options.autoKeepAlive ?? true) {
      const intervalMs = Math.max(1, Math.floor((this.grantedTtlSeconds * 1000) / 3));
      this.stopKeepAlive = this.clock.every(intervalMs, () => this.onKeepAliveTick());
    }
    return res.ID;
  }

  private onKeepAliveTick(): void {
    if (this.state !== 'alive') return;
    if (this.clock.now() - this.lastRenewalMs >= this.grantedTtlSeconds * 1000) {
      this.lose(this.lastError);
      return;
    }
    if (this.keepAliveInFlight) return;
    this.keepAliveInFlight = true;
    this.keepaliveOnce()
      .catch(() => {}) // reported through 'keepaliveFailed' or 'lost'
      .finally(() => (this.keepAliveInFlight = false));
  }

  private lose(cause: EtcdError | undefined): void {
    if (this.state !== 'alive' && this.state !== 'granting') return;
    this.stop('lost');
    this.emit('lost', new LeaseLostError(this.id ?? 0n, cause));
  }

  private stop(state: LeaseState): void {
    if (this.state === 'alive' || this.state === 'granting') {
      this.state = state;
      this.onFinished(this);
    }
    this.stopKeepAlive?.();
    this.stopKeepAlive = null;
  }
}
