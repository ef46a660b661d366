// Leader election with clientv3/concurrency's Election semantics and key layout
// (`<name>/<leaseIdHex>`, value = the proclaimed value), so etcdctl elect sees the same leader.

import type { KeyValue, ResponseHeader } from '../mvcc/types.ts';
import { toText } from './bytes.ts';
import type { Client } from './client.ts';
import { contenderKey, firstCreated, SESSION_TTL_SECONDS_DEFAULT, waitDeletes } from './concurrency.ts';
import { Emitter } from './emitter.ts';
import { ClientClosedError, ElectionNotLeaderError, WatchBufferOverflowError, type EtcdError } from './errors.ts';
import type { Lease } from './lease.ts';
import { AsyncQueue } from './queue.ts';
import type { Watcher } from './watch.ts';

export interface ElectionOptions {
  /** TTL of the campaign's session lease: a crashed leader is replaced after this. */
  ttlSeconds?: number;
}

/** Leader values held for an observer's async iterator. */
export const OBSERVED_VALUES_BUFFERED_MAX = 1000;

export class Election {
  private readonly prefix: string;
  private lease: Lease | null = null;
  private leaderKey: string | null = null;
  private leaderRevision = 0;
  private abort: AbortController | null = null;
  /** The header of the response that made this client leader. */
  header: ResponseHeader | null = null;

  /** @internal Use client.election(name). */
  constructor(
    private readonly client: Client,
    readonly name: string,
    private readonly options: ElectionOptions = {},
  ) {
    this.prefix = `${name}/`;
  }

  /** True between a successful campaign() and resign() or the loss of the session lease. */
  get isLeader(): boolean {
    return this.header !== null && this.leaderKey !== null;
  }

  /**
   * Puts this client's candidacy with `value` and waits until it is the leader. Rejects if
   * resign() is called meanwhile.
   */
  async campaign(value: string): Promise<void> {
    if (this.abort !== null) throw new Error(`election ${this.name}: campaign() while already campaigning or leading`);
    const abort = (this.abort = new AbortController());
    const lease = (this.lease ??= this.newSession());
    try {
      const key = contenderKey(this.prefix, await lease.grant());
      abort.signal.throwIfAborted();
      const c = this.client;
      const res = await c.if(key, 'Create', '==', 0).then(c.put(key).value(value).lease(lease)).else(c.get(key)).commit();
      this.leaderKey = key;
      this.leaderRevision = res.header.revision;
      if (!res.succeeded) {
        const op = res.responses[0];
        const kv = 'responseRange' in op ? op.responseRange.kvs[0] : undefined;
        if (kv !== undefined) {
          this.leaderRevision = kv.createRevision;
          if (toText(kv.value) !== value) await this.proclaim(value);
        }
      }
      await waitDeletes(c, this.prefix, this.leaderRevision - 1, abort.signal);
      this.header = res.header;
    } catch (err) {
      if (abort.signal.aborted) throw new ClientClosedError(`election ${this.name} campaign`);
      await this.resign();
      throw err;
    }
  }

  /** The campaign's session lease. */
  get session(): Lease | null {
    return this.lease;
  }

  /** A session lease whose loss ends this client's leadership (its key is gone with it). */
  private newSession(): Lease {
    const lease = this.client.lease(this.options.ttlSeconds ?? SESSION_TTL_SECONDS_DEFAULT);
    lease.on('lost', () => {
      if (this.lease !== lease) return;
      this.leaderKey = null;
      this.header = null;
    });
    return lease;
  }

  /** Changes the leader's value without an election; only the leader may. */
  async proclaim(value: string): Promise<void> {
    const key = this.leaderKey;
    if (key === null || this.lease === null) throw new ElectionNotLeaderError();
    const c = this.client;
    const res = await c.if(key, 'Create', '==', this.leaderRevision).then(c.put(key).value(value).lease(this.lease)).commit();
    if (!res.succeeded) {
      this.leaderKey = null;
      throw new ElectionNotLeaderError();
    }
  }

  /**
   * Gives up leadership (or a pending campaign): deletes the key if it is still ours, and
   * revokes the session lease.
   */
  async resign(): Promise<void> {
    this.abort?.abort();
    this.abort = null;
    const key = this.leaderKey;
    const lease = this.lease;
    this.leaderKey = null;
    this.lease = null;
    this.header = null;
    if (key !== null) {
      const c = this.client;
      await c.if(key, 'Create', '==', this.leaderRevision).then(c.delete().key(key)).commit();
    }
    await lease?.revoke();
  }

  /** The current leader's value, or null when nobody leads. */
  async leader(): Promise<string | null> {
    const kv = await this.leaderKv();
    return kv === null ? null : toText(kv.value);
  }

  /** The current leader's key-value (key `<name>/<leaseIdHex>`), or null. */
  async leaderKv(): Promise<KeyValue | null> {
    return (await firstCreated(this.client, this.prefix)).kv ?? null;
  }

  /** Follows the leader: each new leader and each proclaimed value, in order. */
  observe(): ElectionObserver {
    return new ElectionObserver(this.client, this.prefix);
  }
}

type ObserverEvents = {
  /** A (new) leader, or a new value proclaimed by the current one. */
  change: [value: string, kv: KeyValue];
  error: [error: EtcdError];
};

/** clientv3/concurrency's Observe: yields the leader's value whenever it changes. */
export class ElectionObserver extends Emitter<ObserverEvents> implements AsyncIterable<string> {
  private readonly queue = new AsyncQueue<string>(
    OBSERVED_VALUES_BUFFERED_MAX,
    () => new WatchBufferOverflowError(OBSERVED_VALUES_BUFFERED_MAX),
    () => this.cancel(),
  );
  private watcher: Watcher | null = null;
  private canceled = false;

  /** @internal */
  constructor(
    private readonly client: Client,
    private readonly prefix: string,
  ) {
    super();
    this.run().catch((err: EtcdError) => {
      if (this.canceled) return;
      this.canceled = true;
      this.queue.fail(err);
      this.emit('error', err);
    });
  }

  cancel(): void {
    if (this.canceled) return;
    this.canceled = true;
    this.queue.end();
    void this.watcher?.cancel();
  }

  [Symbol.asyncIterator](): AsyncIterator<string> {
    return this.queue.iterator();
  }

  private report(kv: KeyValue): void {
    const value = toText(kv.value);
    this.queue.push(value);
    this.emit('change', value, kv);
  }

  private async run(): Promise<void> {
    while (!this.canceled) {
      const first = await firstCreated(this.client, this.prefix);
      let leader = first.kv;
      if (leader === undefined) {
        // Nobody leads: wait for the first candidate's put.
        const w = await this.watch((b) => b.prefix(this.prefix).startRevision(first.header.revision));
        for await (const e of w) {
          if (e.type === 'put') {
            leader = e.kv;
            break;
          }
        }
        if (leader === undefined) return; // canceled
      }
      this.report(leader);
      // Follow that leader's key until it is deleted.
      const { key, modRevision } = leader;
      const w = await this.watch((b) => b.key(key).startRevision(modRevision + 1));
      for await (const e of w) {
        if (e.type === 'delete') break;
        this.report(e.kv);
      }
    }
  }

  private async watch(build: (b: ReturnType<Client['watch']>) => ReturnType<Client['watch']>): Promise<Watcher> {
    const w = await build(this.client.watch()).create();
    if (this.canceled) await w.cancel();
    this.watcher = w;
    return w;
  }
}
