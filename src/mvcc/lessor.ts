// Leases. The replicated part (which leases exist, their TTLs, checkpointed remaining TTLs and
// attached keys) changes only through apply operations, in log order, on every member. Expiry
// is decided by the leader alone, from the monotonic time its driver passes in: the leader asks
// `expired(nowMs)` and proposes a LeaseRevoke for each; followers keep every lease forever.

import type { KeyString } from './bytes.ts';
import { Errors } from './errors.ts';
import type { LeaseKeyTracker } from './kv-store.ts';
import type { LeaseCheckpoint } from './types.ts';

/** etcd's MaxLeaseTTL, seconds. */
export const LEASE_TTL_SECONDS_MAX = 9_000_000_000;

export interface LessorConfig {
  /**
   * Grants with a smaller TTL get this one. etcd derives it as ceil(1.5 × election timeout);
   * with etcd's defaults (1 s election timeout) that is 2 s.
   */
  minTtlSeconds: number;
}

export const DEFAULT_LESSOR_CONFIG: LessorConfig = { minTtlSeconds: 2 };

export interface Lease {
  readonly id: bigint;
  /** Granted TTL in seconds, after raising to the minimum. */
  readonly ttlSeconds: number;
  /** Seconds left at the last checkpoint; 0 when none applies. Replicated. */
  remainingTtlSeconds: number;
  /** Local (leader-only) expiry in monotonic ms; Infinity on followers. Not replicated. */
  expiryMs: number;
  /** Keys attached now. Replicated (derived from the keys' records). */
  readonly keys: Set<KeyString>;
}

/** The replicated state of one lease, as snapshots carry it. */
export interface LeaseState {
  id: bigint;
  ttlSeconds: number;
  remainingTtlSeconds: number;
}

export class Lessor implements LeaseKeyTracker {
  private readonly leases = new Map<bigint, Lease>();
  private primary = false;
  /** Next id tried when a grant asks the state machine to pick one; replicated. */
  private nextId = 1n;

  constructor(readonly config: LessorConfig = DEFAULT_LESSOR_CONFIG) {
    if (!(config.minTtlSeconds >= 1)) throw new Error(`lessor: minTtlSeconds ${config.minTtlSeconds} < 1`);
  }

  get isPrimary(): boolean {
    return this.primary;
  }

  get size(): number {
    return this.leases.size;
  }

  lookup(id: bigint): Lease | undefined {
    return this.leases.get(id);
  }

  // ---- replicated operations (called from apply, in log order) ----

  /** Grants a lease; id 0n picks the lowest free id from a replicated counter. */
  grant(id: bigint, ttlSeconds: number, nowMs: number): Lease {
    if (ttlSeconds > LEASE_TTL_SECONDS_MAX) throw Errors.leaseTtlTooLarge();
    let leaseId = id;
    if (leaseId === 0n) {
      while (this.leases.has(this.nextId)) this.nextId++;
      leaseId = this.nextId++;
    }
    if (this.leases.has(leaseId)) throw Errors.leaseExists();
    const lease: Lease = {
      id: leaseId,
      ttlSeconds: Math.max(Math.trunc(ttlSeconds), this.config.minTtlSeconds),
      remainingTtlSeconds: 0,
      expiryMs: Infinity,
      keys: new Set(),
    };
    if (this.primary) refresh(lease, nowMs, 0);
    this.leases.set(leaseId, lease);
    return lease;
  }

  /** Removes a lease and returns its keys, sorted bytewise; the caller deletes them. */
  remove(id: bigint): KeyString[] {
    const lease = this.leases.get(id);
    if (lease === undefined) throw Errors.leaseNotFound();
    this.leases.delete(id);
    return [...lease.keys].sort();
  }

  /** Keys attached to a lease, sorted bytewise. */
  keysOf(id: bigint): KeyString[] {
    const lease = this.leases.get(id);
    if (lease === undefined) throw Errors.leaseNotFound();
    return [...lease.keys].sort();
  }

  /** Applies checkpoints; unknown leases are skipped (they may have been revoked since). */
  checkpoint(checkpoints: readonly LeaseCheckpoint[], nowMs: number): void {
    for (const { ID, remainingTTL } of checkpoints) {
      const lease = this.leases.get(ID);
      if (lease === undefined) continue;
      lease.remainingTtlSeconds = remainingTTL;
      if (this.primary) refresh(lease, nowMs, 0);
    }
  }

  attach(id: bigint, key: KeyString): void {
    const lease = this.leases.get(id);
    if (lease === undefined) throw new Error(`lessor.attach: lease ${id} not found (put must check first)`);
    lease.keys.add(key);
  }

  detach(id: bigint, key: KeyString): void {
    // A lease revoked while its keys are being deleted is already gone: nothing to detach.
    this.leases.get(id)?.keys.delete(key);
  }

  // ---- leader-side operations (local, not replicated) ----

  /**
   * Becoming leader: every lease expires no sooner than now + extendMs + its (remaining) TTL, so
   * none expires early because the previous leader's clock is unknown.
   */
  promote(nowMs: number, extendMs: number): void {
    this.primary = true;
    for (const lease of this.leases.values()) refresh(lease, nowMs, extendMs);
  }

  /** Losing leadership: no lease expires here until promoted again. */
  demote(): void {
    this.primary = false;
    for (const lease of this.leases.values()) lease.expiryMs = Infinity;
  }

  /** Keep-alive: restarts the lease's TTL from now; returns the TTL in seconds. */
  renew(id: bigint, nowMs: number): { ttlSeconds: number; checkpoint: LeaseCheckpoint | null } {
    if (!this.primary) throw Errors.notPrimary();
    const lease = this.leases.get(id);
    // An expired lease is about to be revoked through the log: it no longer exists for clients.
    if (lease === undefined || lease.expiryMs <= nowMs) throw Errors.leaseNotFound();
    // A checkpointed remaining TTL must be cleared through the log so every member agrees.
    const checkpoint = lease.remainingTtlSeconds > 0 ? { ID: id, remainingTTL: 0 } : null;
    lease.expiryMs = nowMs + lease.ttlSeconds * 1000;
    return { ttlSeconds: lease.ttlSeconds, checkpoint };
  }

  /**
   * Ids of leases expired at `nowMs`, oldest expiry first, at most `leasesMax` (the driver
   * paces revocations, as etcd's leaseRevokeRate does). Leader only; O(leases).
   */
  expired(nowMs: number, leasesMax: number): bigint[] {
    if (!this.primary) return [];
    const due: Lease[] = [];
    for (const lease of this.leases.values()) if (lease.expiryMs <= nowMs) due.push(lease);
    due.sort((a, b) => a.expiryMs - b.expiryMs || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return due.slice(0, leasesMax).map((lease) => lease.id);
  }

  /** Seconds left (floored) on the leader; the granted TTL on a follower. -1 if unknown/expired. */
  remainingSeconds(id: bigint, nowMs: number): number {
    const lease = this.leases.get(id);
    if (lease === undefined) return -1;
    if (lease.expiryMs === Infinity) return lease.remainingTtlSeconds > 0 ? lease.remainingTtlSeconds : lease.ttlSeconds;
    const leftMs = lease.expiryMs - nowMs;
    return leftMs <= 0 ? -1 : Math.floor(leftMs / 1000);
  }

  /** Checkpoints of every lease's remaining TTL at `nowMs`, for the leader to propose. */
  checkpoints(nowMs: number): LeaseCheckpoint[] {
    if (!this.primary) return [];
    const result: LeaseCheckpoint[] = [];
    for (const lease of this.leases.values()) {
      const remaining = Math.ceil((lease.expiryMs - nowMs) / 1000);
      if (remaining > 0 && remaining < lease.ttlSeconds) result.push({ ID: lease.id, remainingTTL: remaining });
    }
    return result;
  }

  ids(): bigint[] {
    return [...this.leases.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }

  // ---- snapshot ----

  state(): { leases: LeaseState[]; nextId: bigint } {
    const leases: LeaseState[] = [];
    for (const id of this.ids()) {
      const lease = this.leases.get(id)!;
      leases.push({ id, ttlSeconds: lease.ttlSeconds, remainingTtlSeconds: lease.remainingTtlSeconds });
    }
    return { leases, nextId: this.nextId };
  }

  /** Replaces all leases (not their keys: the restored store re-attaches those). */
  restore(leases: readonly LeaseState[], nextId: bigint): void {
    this.leases.clear();
    for (const state of leases) {
      this.leases.set(state.id, {
        id: state.id,
        ttlSeconds: state.ttlSeconds,
        remainingTtlSeconds: state.remainingTtlSeconds,
        expiryMs: Infinity,
        keys: new Set(),
      });
    }
    this.nextId = nextId;
    this.primary = false;
  }
}

function refresh(lease: Lease, nowMs: number, extendMs: number): void {
  const seconds = lease.remainingTtlSeconds > 0 ? lease.remainingTtlSeconds : lease.ttlSeconds;
  lease.expiryMs = nowMs + extendMs + seconds * 1000;
}
