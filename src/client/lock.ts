// A distributed mutex with clientv3/concurrency's Mutex semantics and key layout
// (`<name>/<leaseIdHex>`), so it excludes etcdctl lock holders of the same name and vice versa.

import type { ResponseHeader } from '../mvcc/types.ts';
import type { Client } from './client.ts';
import { contenderKey, SESSION_TTL_SECONDS_DEFAULT, waitDeletes } from './concurrency.ts';
import { ClientClosedError, SessionExpiredError } from './errors.ts';
import type { Lease } from './lease.ts';

export interface LockOptions {
  /** TTL of the session lease that holds the lock's key; a crashed holder frees it after this. */
  ttlSeconds?: number;
}

export class Lock {
  private readonly prefix: string;
  private lease: Lease | null = null;
  private key: string | null = null;
  private abort: AbortController | null = null;
  /** The header of the response that made this client the holder. */
  header: ResponseHeader | null = null;

  /** @internal Use client.lock(name). */
  constructor(
    private readonly client: Client,
    readonly name: string,
    private readonly options: LockOptions = {},
  ) {
    this.prefix = `${name}/`;
  }

  /** The key this client holds or waits with (`<name>/<leaseIdHex>`), or null. */
  get ownKey(): string | null {
    return this.key;
  }

  /** The session lease behind the lock (its 'lost' event means the lock is lost too). */
  get session(): Lease | null {
    return this.lease;
  }

  /**
   * Waits until this client holds the lock. Rejects if release() is called meanwhile, or if
   * waiting fails; in both cases nothing is left behind.
   */
  async acquire(): Promise<void> {
    if (this.abort !== null) throw new Error(`lock ${this.name}: acquire() while already acquiring or holding it`);
    const abort = (this.abort = new AbortController());
    const lease = (this.lease = this.client.lease(this.options.ttlSeconds ?? SESSION_TTL_SECONDS_DEFAULT));
    try {
      const key = (this.key = contenderKey(this.prefix, await lease.grant()));
      abort.signal.throwIfAborted();
      const c = this.client;
      const owner = c.getAll().prefix(this.prefix).sort('create', 'asc').limit(1);
      const res = await c
        .if(key, 'Create', '==', 0)
        .then(c.put(key).value('').lease(lease), owner)
        .else(c.get(key), owner)
        .commit();
      let myRevision = res.header.revision;
      if (!res.succeeded) {
        const mine = res.responses[0];
        myRevision = 'responseRange' in mine ? mine.responseRange.kvs[0].createRevision : myRevision;
      }
      const ownerOp = res.responses[1];
      const ownerKv = 'responseRange' in ownerOp ? ownerOp.responseRange.kvs[0] : undefined;
      if (ownerKv === undefined || ownerKv.createRevision === myRevision) {
        this.header = res.header;
        return;
      }
      await waitDeletes(c, this.prefix, myRevision - 1, abort.signal);
      // The session may have expired while we waited, taking our key with it (etcd 3.5 checks too).
      const own = await c.get(key).exec();
      if (own.kvs.length === 0) throw new SessionExpiredError();
      this.header = own.header;
    } catch (err) {
      await this.cleanUp();
      throw abort.signal.aborted ? new ClientClosedError(`lock ${this.name}`) : err;
    }
  }

  /** Gives the lock up (or stops waiting for it): deletes the key and revokes the session lease. */
  async release(): Promise<void> {
    if (this.abort === null) return;
    this.abort.abort();
    await this.cleanUp();
  }

  /** Runs `fn` while holding the lock. */
  async do<T>(fn: () => Promise<T> | T): Promise<T> {
    await this.acquire();
    try {
      return await fn();
    } finally {
      await this.release();
    }
  }

  private async cleanUp(): Promise<void> {
    const key = this.key;
    const lease = this.lease;
    this.key = null;
    this.lease = null;
    this.abort = null;
    this.header = null;
    if (key !== null) await this.client.delete().key(key);
    await lease?.revoke();
  }
}
