// Builders for single operations: get, getAll, put, delete. Each is awaitable (it runs itself)
// and usable inside a transaction (op()).

import {
  SortOrder,
  SortTarget,
  type DeleteRangeRequest,
  type DeleteRangeResponse,
  type KeyValue,
  type PutRequest,
  type PutResponse,
  type RangeRequest,
  type RangeResponse,
  type RequestOp,
} from '../mvcc/types.ts';
import { prefixRange, RANGE_END_ALL, toBytes, toText, type Bytes } from './bytes.ts';
import type { Connection } from './connection.ts';
import { checkConsistency, type Consistency } from './consistency.ts';

/** Anything that can be one operation of a transaction. */
export interface Operation {
  op(): Promise<RequestOp>;
}

/** A lease id, or something that will produce one (a Lease, whose grant may still be running). */
export type LeaseRef = bigint | number | Promise<bigint> | { grant(): Promise<bigint> };

async function leaseId(ref: LeaseRef): Promise<bigint> {
  if (typeof ref === 'bigint') return ref;
  if (typeof ref === 'number') return BigInt(ref);
  if (ref instanceof Promise) return ref;
  return ref.grant();
}

/** Runs `exec` when awaited, so `await client.put(k).value(v)` works like etcd3's builders. */
abstract class Runnable<T> implements PromiseLike<T> {
  abstract exec(): Promise<unknown>;
  protected abstract result(): Promise<T>;

  then<A = T, B = never>(onFulfilled?: ((value: T) => A | PromiseLike<A>) | null, onRejected?: ((reason: unknown) => B | PromiseLike<B>) | null): Promise<A | B> {
    return this.result().then(onFulfilled, onRejected);
  }
}

abstract class RangeOptions<T> extends Runnable<T> {
  protected readonly request: RangeRequest;

  constructor(
    protected readonly connection: Connection,
    key: Uint8Array,
  ) {
    super();
    this.request = { key };
  }

  /** Read the store as it was at `revision` (which must not be compacted). */
  revision(revision: number): this {
    this.request.revision = revision;
    return this;
  }

  /** Read from the member's local state, without a linearizable barrier: faster, maybe stale. */
  serializable(enabled = true): this {
    this.request.serializable = enabled;
    return this;
  }

  /**
   * 'linearizable' waits for a quorum's barrier; 'local' is serializable() by its offline-first
   * name: this member's replica answers at once, offline too, with the revision it reflects in
   * the response's header (docs/offline.md). Unset: the client's choice.
   */
  consistency(c: Consistency): this {
    this.request.serializable = checkConsistency(c) === 'local';
    return this;
  }

  minModRevision(revision: number): this {
    this.request.minModRevision = revision;
    return this;
  }

  maxModRevision(revision: number): this {
    this.request.maxModRevision = revision;
    return this;
  }

  minCreateRevision(revision: number): this {
    this.request.minCreateRevision = revision;
    return this;
  }

  maxCreateRevision(revision: number): this {
    this.request.maxCreateRevision = revision;
    return this;
  }

  exec(): Promise<RangeResponse> {
    return this.connection.range({ ...this.request });
  }

  async op(): Promise<RequestOp> {
    return { requestRange: { ...this.request } };
  }
}

/** `client.get(key)`: one key. Awaiting it gives the value as a string, or null. */
export class SingleRangeBuilder extends RangeOptions<string | null> implements Operation {
  constructor(connection: Connection, key: Bytes) {
    super(connection, toBytes(key));
  }

  /** The whole KeyValue, or null. */
  async kv(): Promise<KeyValue | null> {
    const res = await this.exec();
    return res.kvs[0] ?? null;
  }

  async buffer(): Promise<Uint8Array | null> {
    return (await this.kv())?.value ?? null;
  }

  async string(): Promise<string | null> {
    const kv = await this.kv();
    return kv === null ? null : toText(kv.value);
  }

  async json<T = unknown>(): Promise<T | null> {
    const s = await this.string();
    return s === null ? null : (JSON.parse(s) as T);
  }

  async number(): Promise<number | null> {
    const s = await this.string();
    return s === null ? null : Number(s);
  }

  async exists(): Promise<boolean> {
    this.request.countOnly = true;
    return (await this.exec()).count > 0;
  }

  protected result(): Promise<string | null> {
    return this.string();
  }
}

export type SortTargetName = 'key' | 'version' | 'create' | 'mod' | 'value';
export type SortOrderName = 'none' | 'asc' | 'desc';

const sortTargets: Record<SortTargetName, SortTarget> = {
  key: SortTarget.KEY,
  version: SortTarget.VERSION,
  create: SortTarget.CREATE,
  mod: SortTarget.MOD,
  value: SortTarget.VALUE,
};
const sortOrders: Record<SortOrderName, SortOrder> = { none: SortOrder.NONE, asc: SortOrder.ASCEND, desc: SortOrder.DESCEND };

/** `client.getAll()`: a range of keys (every key unless narrowed). Awaiting it gives {key: value}. */
export class MultiRangeBuilder extends RangeOptions<Record<string, string>> implements Operation {
  constructor(connection: Connection) {
    super(connection, new Uint8Array([0]));
    this.request.rangeEnd = RANGE_END_ALL;
  }

  /** Every key that starts with `prefix`. */
  prefix(prefix: Bytes): this {
    Object.assign(this.request, prefixRange(toBytes(prefix)));
    return this;
  }

  /** Keys in [start, end). */
  range(start: Bytes, end: Bytes): this {
    this.request.key = toBytes(start);
    this.request.rangeEnd = toBytes(end);
    return this;
  }

  /** Every key (the default). */
  all(): this {
    this.request.key = new Uint8Array([0]);
    this.request.rangeEnd = RANGE_END_ALL;
    return this;
  }

  limit(count: number): this {
    this.request.limit = count;
    return this;
  }

  sort(target: SortTargetName, order: SortOrderName = 'asc'): this {
    this.request.sortTarget = sortTargets[target];
    this.request.sortOrder = sortOrders[order];
    return this;
  }

  async kvs(): Promise<KeyValue[]> {
    return (await this.exec()).kvs;
  }

  async keys(): Promise<string[]> {
    this.request.keysOnly = true;
    return (await this.kvs()).map((kv) => toText(kv.key));
  }

  async keyBuffers(): Promise<Uint8Array[]> {
    this.request.keysOnly = true;
    return (await this.kvs()).map((kv) => kv.key);
  }

  async strings(): Promise<Record<string, string>> {
    return Object.fromEntries((await this.kvs()).map((kv) => [toText(kv.key), toText(kv.value)]));
  }

  async buffers(): Promise<Map<string, Uint8Array>> {
    return new Map((await this.kvs()).map((kv) => [toText(kv.key), kv.value]));
  }

  async json<T = unknown>(): Promise<Record<string, T>> {
    return Object.fromEntries((await this.kvs()).map((kv) => [toText(kv.key), JSON.parse(toText(kv.value)) as T]));
  }

  async numbers(): Promise<Record<string, number>> {
    return Object.fromEntries((await this.kvs()).map((kv) => [toText(kv.key), Number(toText(kv.value))]));
  }

  /** How many keys the range holds (ignores limit). */
  async count(): Promise<number> {
    this.request.countOnly = true;
    return (await this.exec()).count;
  }

  protected result(): Promise<Record<string, string>> {
    return this.strings();
  }
}

/** `client.put(key)`. Awaiting it writes the key. */
export class PutBuilder extends Runnable<PutResponse> implements Operation {
  private readonly request: PutRequest;
  private leaseRef: LeaseRef | null = null;

  constructor(
    private readonly connection: Connection,
    key: Bytes,
  ) {
    super();
    this.request = { key: toBytes(key), value: new Uint8Array(0) };
  }

  /** Numbers are written as their decimal text. */
  value(value: Bytes | number): this {
    this.request.value = toBytes(typeof value === 'number' ? String(value) : value);
    return this;
  }

  /** Attach the key to a lease; it is deleted when the lease expires or is revoked. */
  lease(lease: LeaseRef): this {
    this.leaseRef = lease;
    return this;
  }

  /** Keep the key's current lease (etcd's ignore_lease). */
  ignoreLease(): this {
    this.request.ignoreLease = true;
    return this;
  }

  /** Keep the key's current value (etcd's ignore_value): with a lease, only re-attaches it. */
  ignoreValue(): this {
    this.request.ignoreValue = true;
    delete this.request.value;
    return this;
  }

  /** Writes and resolves with the value the key held before, or null if it did not exist. */
  async getPrevious(): Promise<KeyValue | null> {
    this.request.prevKv = true;
    return (await this.exec()).prevKv ?? null;
  }

  async exec(): Promise<PutResponse> {
    return this.connection.put(await this.build());
  }

  async op(): Promise<RequestOp> {
    return { requestPut: await this.build() };
  }

  protected result(): Promise<PutResponse> {
    return this.exec();
  }

  private async build(): Promise<PutRequest> {
    const request = { ...this.request };
    if (this.leaseRef !== null) request.lease = await leaseId(this.leaseRef);
    return request;
  }
}

/** `client.delete()`: pick the keys with key(), prefix(), range() or all(). Awaiting it deletes them. */
export class DeleteBuilder extends Runnable<DeleteRangeResponse> implements Operation {
  private request: DeleteRangeRequest | null = null;

  constructor(private readonly connection: Connection) {
    super();
  }

  key(key: Bytes): this {
    this.request = { key: toBytes(key) };
    return this;
  }

  prefix(prefix: Bytes): this {
    this.request = prefixRange(toBytes(prefix));
    return this;
  }

  range(start: Bytes, end: Bytes): this {
    this.request = { key: toBytes(start), rangeEnd: toBytes(end) };
    return this;
  }

  all(): this {
    this.request = { key: new Uint8Array([0]), rangeEnd: RANGE_END_ALL };
    return this;
  }

  /** Deletes and resolves with the deleted key-values. */
  async getPrevious(): Promise<KeyValue[]> {
    return (await this.exec(true)).prevKvs;
  }

  exec(prevKv = false): Promise<DeleteRangeResponse> {
    return this.connection.deleteRange({ ...this.build(), prevKv });
  }

  async op(): Promise<RequestOp> {
    return { requestDeleteRange: this.build() };
  }

  protected result(): Promise<DeleteRangeResponse> {
    return this.exec();
  }

  private build(): DeleteRangeRequest {
    if (this.request === null) throw new TypeError('delete: choose the keys with key(), prefix(), range() or all()');
    return { ...this.request };
  }
}
