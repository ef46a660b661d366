// A Connection that confines another one to the keys under a prefix, as clientv3/namespace
// does: every key in a request gets the prefix, every key in a response loses it.

import type {
  CompactionRequest,
  CompactionResponse,
  Compare,
  DeleteRangeRequest,
  DeleteRangeResponse,
  Event,
  KeyValue,
  LeaseGrantRequest,
  LeaseGrantResponse,
  LeaseLeasesResponse,
  LeaseRevokeRequest,
  LeaseRevokeResponse,
  LeaseTimeToLiveResponse,
  PutRequest,
  PutResponse,
  RangeRequest,
  RangeResponse,
  RequestOp,
  ResponseOp,
  TxnRequest,
  TxnResponse,
  WatchResponse,
} from '../mvcc/types.ts';
import { concat, prefixEnd, startsWith } from './bytes.ts';
import type {
  Connection,
  LeaseKeepAliveRequest,
  LeaseKeepAliveResponse,
  LeaseTimeToLiveRequest,
  WatchChannel,
  WatchRequest,
  WatchStreamHandlers,
} from './connection.ts';

export class NamespacedConnection implements Connection {
  constructor(
    private readonly inner: Connection,
    private readonly prefix: Uint8Array,
  ) {
    if (prefix.length === 0) throw new Error('namespace: the prefix must not be empty');
  }

  async range(request: RangeRequest): Promise<RangeResponse> {
    return this.stripRange(await this.inner.range(this.prefixRange(request)));
  }

  async put(request: PutRequest): Promise<PutResponse> {
    return this.stripPut(await this.inner.put(this.prefixPut(request)));
  }

  async deleteRange(request: DeleteRangeRequest): Promise<DeleteRangeResponse> {
    return this.stripDelete(await this.inner.deleteRange(this.prefixDelete(request)));
  }

  async txn(request: TxnRequest): Promise<TxnResponse> {
    return this.stripTxn(await this.inner.txn(this.prefixTxn(request)));
  }

  compact(request: CompactionRequest): Promise<CompactionResponse> {
    return this.inner.compact(request);
  }

  leaseGrant(request: LeaseGrantRequest): Promise<LeaseGrantResponse> {
    return this.inner.leaseGrant(request);
  }

  leaseRevoke(request: LeaseRevokeRequest): Promise<LeaseRevokeResponse> {
    return this.inner.leaseRevoke(request);
  }

  leaseKeepAlive(request: LeaseKeepAliveRequest): Promise<LeaseKeepAliveResponse> {
    return this.inner.leaseKeepAlive(request);
  }

  /** Keys outside the namespace are left out: this view cannot name them. */
  async leaseTimeToLive(request: LeaseTimeToLiveRequest): Promise<LeaseTimeToLiveResponse> {
    const res = await this.inner.leaseTimeToLive(request);
    return { ...res, keys: res.keys.filter((k) => startsWith(k, this.prefix)).map((k) => this.strip(k)) };
  }

  leaseLeases(): Promise<LeaseLeasesResponse> {
    return this.inner.leaseLeases();
  }

  watch(handlers: WatchStreamHandlers): WatchChannel {
    const inner = this.inner.watch({
      onResponse: (r) => handlers.onResponse(this.stripWatch(r)),
      onClosed: (e) => handlers.onClosed(e),
    });
    return {
      send: (request: WatchRequest) => {
        if (!('createRequest' in request)) return inner.send(request);
        const c = request.createRequest;
        const [key, rangeEnd] = this.interval(c.key, c.rangeEnd);
        inner.send({ createRequest: { ...c, key, rangeEnd } });
      },
      close: () => inner.close(),
    };
  }

  close(): void {
    this.inner.close();
  }

  // ---- requests ----

  /** clientv3/namespace's prefixInterval: "\0" (to the end of the keyspace) becomes the prefix's end. */
  private interval(key: Uint8Array, end: Uint8Array | undefined): [Uint8Array, Uint8Array | undefined] {
    const k = concat([this.prefix, key]);
    if (end === undefined || end.length === 0) return [k, end];
    if (end.length === 1 && end[0] === 0) return [k, prefixEnd(this.prefix)];
    return [k, concat([this.prefix, end])];
  }

  private prefixRange(r: RangeRequest): RangeRequest {
    const [key, rangeEnd] = this.interval(r.key, r.rangeEnd);
    return { ...r, key, rangeEnd };
  }

  private prefixPut(r: PutRequest): PutRequest {
    return { ...r, key: concat([this.prefix, r.key]) };
  }

  private prefixDelete(r: DeleteRangeRequest): DeleteRangeRequest {
    const [key, rangeEnd] = this.interval(r.key, r.rangeEnd);
    return { ...r, key, rangeEnd };
  }

  private prefixCompare(c: Compare): Compare {
    const [key, rangeEnd] = this.interval(c.key, c.rangeEnd);
    return { ...c, key, rangeEnd };
  }

  private prefixOp(op: RequestOp): RequestOp {
    if ('requestRange' in op) return { requestRange: this.prefixRange(op.requestRange) };
    if ('requestPut' in op) return { requestPut: this.prefixPut(op.requestPut) };
    if ('requestDeleteRange' in op) return { requestDeleteRange: this.prefixDelete(op.requestDeleteRange) };
    return { requestTxn: this.prefixTxn(op.requestTxn) };
  }

  private prefixTxn(r: TxnRequest): TxnRequest {
    return {
      compare: r.compare?.map((c) => this.prefixCompare(c)),
      success: r.success?.map((op) => this.prefixOp(op)),
      failure: r.failure?.map((op) => this.prefixOp(op)),
    };
  }

  // ---- responses ----

  private strip(key: Uint8Array): Uint8Array {
    return key.subarray(this.prefix.length);
  }

  private stripKv(kv: KeyValue): KeyValue {
    return { ...kv, key: this.strip(kv.key) };
  }

  private stripRange(r: RangeResponse): RangeResponse {
    return { ...r, kvs: r.kvs.map((kv) => this.stripKv(kv)) };
  }

  private stripPut(r: PutResponse): PutResponse {
    return r.prevKv ? { ...r, prevKv: this.stripKv(r.prevKv) } : r;
  }

  private stripDelete(r: DeleteRangeResponse): DeleteRangeResponse {
    return { ...r, prevKvs: r.prevKvs.map((kv) => this.stripKv(kv)) };
  }

  private stripOp(op: ResponseOp): ResponseOp {
    if ('responseRange' in op) return { responseRange: this.stripRange(op.responseRange) };
    if ('responsePut' in op) return { responsePut: this.stripPut(op.responsePut) };
    if ('responseDeleteRange' in op) return { responseDeleteRange: this.stripDelete(op.responseDeleteRange) };
    return { responseTxn: this.stripTxn(op.responseTxn) };
  }

  private stripTxn(r: TxnResponse): TxnResponse {
    return { ...r, responses: r.responses.map((op) => this.stripOp(op)) };
  }

  private stripEvent(e: Event): Event {
    const out: Event = { type: e.type, kv: this.stripKv(e.kv) };
    if (e.prevKv) out.prevKv = this.stripKv(e.prevKv);
    return out;
  }

  private stripWatch(r: WatchResponse): WatchResponse {
    return r.events.length === 0 ? r : { ...r, events: r.events.map((e) => this.stripEvent(e)) };
  }
}
