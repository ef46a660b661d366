// Watches: a builder, the Watcher users hold, and the manager that multiplexes a client's
// watchers over one watch stream and re-creates them on a new stream when it breaks.
//
// Resuming: each watcher remembers the next revision it has not seen (`nextRevision`). Events
// arrive whole-revision at a time, so after the last event of revision r the watcher has seen
// everything up to r; a new stream's watch starts at r + 1. Events below `nextRevision` are
// dropped, so a member that resends history cannot produce duplicates.

import { EventType, FilterType, type KeyValue, type WatchCreateRequest, type WatchResponse } from '../mvcc/types.ts';
import type { Clock } from '../seams.ts';
import { prefixRange, RANGE_END_ALL, toBytes, toText, type Bytes } from './bytes.ts';
import type { Connection, WatchChannel } from './connection.ts';
import { Emitter } from './emitter.ts';
import { EtcdCompactedError, EtcdWatchCanceledError, WatchBufferOverflowError, type EtcdError } from './errors.ts';
import { AsyncQueue } from './queue.ts';
import { after } from './timers.ts';

/** Events held for a watcher's async iterator before it is declared overflowed. */
export const WATCH_EVENTS_BUFFERED_MAX = 10_000;
/** Wait between attempts to re-open a watch stream after one failed before any watch was created. */
export const WATCH_RETRY_MS_DEFAULT = 100;

/** One change, as the async iterator yields it. */
export class WatchEvent {
  constructor(
    readonly type: 'put' | 'delete',
    readonly kv: KeyValue,
    readonly prevKv: KeyValue | undefined,
  ) {}

  /** The key as UTF-8 text. */
  get key(): string {
    return toText(this.kv.key);
  }

  /** The value as UTF-8 text ('' for a delete). */
  get value(): string {
    return toText(this.kv.value);
  }

  get revision(): number {
    return this.kv.modRevision;
  }
}

type WatcherEvents = {
  /** The watch was created on a stream: first, and again after every resume. */
  connected: [response: WatchResponse];
  /** The stream broke; the watcher will resume on a new one. */
  disconnected: [error: EtcdError];
  /** Every response with events (after duplicate filtering). */
  data: [response: WatchResponse];
  put: [kv: KeyValue, prevKv: KeyValue | undefined];
  delete: [kv: KeyValue, prevKv: KeyValue | undefined];
  /** The watch ended for good: compacted start revision (EtcdCompactedError) or refused. */
  error: [error: EtcdError];
  /** The watcher was canceled by the client. */
  end: [];
};

export class Watcher extends Emitter<WatcherEvents> implements AsyncIterable<WatchEvent> {
  /** The watch id on the current stream; null while (re)connecting. */
  id: number | null = null;
  /** The lowest revision this watcher has not seen; 0 until the first watch is created "from now". */
  private nextRevision: number;
  private ended = false;
  private readonly queue = new AsyncQueue<WatchEvent>(
    WATCH_EVENTS_BUFFERED_MAX,
    () => new WatchBufferOverflowError(WATCH_EVENTS_BUFFERED_MAX),
    () => void this.cancel(),
  );
  private readonly created: Promise<void>;
  private settleCreated!: { resolve: () => void; reject: (e: EtcdError) => void };

  /** @internal */
  constructor(
    private readonly manager: WatchManager,
    private readonly request: WatchCreateRequest,
  ) {
    super();
    this.nextRevision = request.startRevision ?? 0;
    this.created = new Promise((resolve, reject) => (this.settleCreated = { resolve, reject }));
    this.created.catch(() => {}); // failures also reach 'error' and the iterator
  }

  /**
   * The last revision this watcher has fully seen (it resumes after it), or null before the
   * first watch was created.
   */
  get lastRevision(): number | null {
    return this.nextRevision === 0 ? null : this.nextRevision - 1;
  }

  /** True once the watcher ended: canceled by the client, or ended by an error. */
  get isCanceled(): boolean {
    return this.ended;
  }

  /** Stops the watch. Events still in flight are dropped; the async iterator finishes. */
  async cancel(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    this.manager.unregister(this);
    this.queue.end();
    this.settleCreated.reject(new EtcdWatchCanceledError('watch canceled by the client'));
    this.emit('end');
  }

  /**
   * Yields every event from the watch's start. Events are buffered from creation (at most
   * WATCH_EVENTS_BUFFERED_MAX, then the iterator throws WatchBufferOverflowError); breaking out
   * of the loop cancels the watcher. A compacted start revision or a refused watch is thrown.
   */
  [Symbol.asyncIterator](): AsyncIterator<WatchEvent> {
    return this.queue.iterator();
  }

  // ---- used by WatchManager ----

  /** @internal */
  waitCreated(): Promise<void> {
    return this.created;
  }

  /** @internal The request that (re)creates this watch where it left off. */
  createRequest(): WatchCreateRequest {
    return { ...this.request, startRevision: this.nextRevision, watchId: 0 };
  }

  /** @internal */
  onCreated(response: WatchResponse): void {
    if (this.nextRevision === 0) this.nextRevision = response.header.revision + 1;
    this.settleCreated.resolve();
    this.emit('connected', response);
  }

  /** @internal */
  onEvents(response: WatchResponse): void {
    if (this.ended) return;
    const events = response.events.filter((e) => e.kv.modRevision >= this.nextRevision);
    if (events.length === 0) return;
    this.nextRevision = events[events.length - 1].kv.modRevision + 1;
    this.emit('data', events.length === response.events.length ? response : { ...response, events });
    for (const e of events) {
      if (this.ended) return; // a listener canceled the watcher
      const type = e.type === EventType.DELETE ? 'delete' : 'put';
      this.queue.push(new WatchEvent(type, e.kv, e.prevKv));
      if (type === 'put') this.emit('put', e.kv, e.prevKv);
      else this.emit('delete', e.kv, e.prevKv);
    }
  }

  /** @internal */
  onDisconnected(error: EtcdError): void {
    this.id = null;
    if (!this.ended) this.emit('disconnected', error);
  }

  /** @internal The watch ended on the server's side. */
  fail(error: EtcdError): void {
    if (this.ended) return;
    this.ended = true;
    this.manager.unregister(this);
    this.queue.fail(error);
    this.settleCreated.reject(error);
    this.emit('error', error);
  }
}

/** `client.watch()`: choose what to watch, then create(). */
export class WatchBuilder {
  private readonly request: WatchCreateRequest = { key: new Uint8Array(0) };
  private chosen = false;

  /** @internal */
  constructor(private readonly manager: WatchManager) {}

  key(key: Bytes): this {
    this.request.key = toBytes(key);
    delete this.request.rangeEnd;
    this.chosen = true;
    return this;
  }

  prefix(prefix: Bytes): this {
    Object.assign(this.request, prefixRange(toBytes(prefix)));
    this.chosen = true;
    return this;
  }

  /** Keys in [start, end). */
  range(start: Bytes, end: Bytes): this {
    this.request.key = toBytes(start);
    this.request.rangeEnd = toBytes(end);
    this.chosen = true;
    return this;
  }

  all(): this {
    this.request.key = new Uint8Array([0]);
    this.request.rangeEnd = RANGE_END_ALL;
    this.chosen = true;
    return this;
  }

  /** Replay history from `revision` (inclusive) before live events. */
  startRevision(revision: number): this {
    if (!(Number.isInteger(revision) && revision > 0)) throw new TypeError(`watch: startRevision ${revision} is not a positive integer`);
    this.request.startRevision = revision;
    return this;
  }

  /** Attach each changed key's previous key-value to its event. */
  withPreviousKV(): this {
    this.request.prevKv = true;
    return this;
  }

  /** Leave out one kind of event. */
  ignore(...kinds: ('put' | 'delete')[]): this {
    const filters = new Set(this.request.filters ?? []);
    for (const kind of kinds) filters.add(kind === 'put' ? FilterType.NOPUT : FilterType.NODELETE);
    this.request.filters = [...filters];
    return this;
  }

  /** Ask the member for periodic empty responses while idle (etcd's progress_notify). */
  progressNotify(): this {
    this.request.progressNotify = true;
    return this;
  }

  /** Creates the watch; resolves once the member confirmed it. */
  async create(): Promise<Watcher> {
    if (!this.chosen) throw new TypeError('watch: choose the keys with key(), prefix(), range() or all()');
    const watcher = new Watcher(this.manager, { ...this.request });
    this.manager.register(watcher);
    await watcher.waitCreated();
    return watcher;
  }
}

/**
 * Multiplexes a client's watchers over one watch stream. Creates go one at a time, because a
 * created response names no request (etcd's clients do the same). When the stream breaks,
 * every live watcher is re-created on a new stream from its next revision.
 */
export class WatchManager {
  private channel: WatchChannel | null = null;
  private readonly active = new Set<Watcher>();
  private createQueue: Watcher[] = [];
  private awaitingCreated: Watcher | null = null;
  private readonly byId = new Map<number, Watcher>();
  /** Streams that broke in a row before any watch was created on them. */
  private failuresInARow = 0;
  private cancelRetry: (() => void) | null = null;

  constructor(
    private readonly connection: Connection,
    private readonly clock: Clock,
    private readonly retryMs = WATCH_RETRY_MS_DEFAULT,
  ) {}

  /** @internal */
  register(watcher: Watcher): void {
    this.active.add(watcher);
    this.createQueue.push(watcher);
    this.pump();
  }

  /** @internal */
  unregister(watcher: Watcher): void {
    if (!this.active.delete(watcher)) return;
    this.createQueue = this.createQueue.filter((w) => w !== watcher);
    if (this.active.size === 0) {
      this.closeChannel();
      return;
    }
    if (watcher.id !== null && this.channel !== null) this.channel.send({ cancelRequest: { watchId: watcher.id } });
  }

  close(): void {
    for (const w of [...this.active]) void w.cancel();
    this.closeChannel();
  }

  private pump(): void {
    if (this.cancelRetry !== null || this.awaitingCreated !== null) return;
    const next = this.createQueue.shift();
    if (next === undefined) return;
    const channel = this.channel ?? this.open();
    this.awaitingCreated = next;
    channel.send({ createRequest: next.createRequest() });
  }

  private open(): WatchChannel {
    const channel: WatchChannel = this.connection.watch({
      onResponse: (r) => {
        if (this.channel === channel) this.onResponse(r);
      },
      onClosed: (e) => {
        if (this.channel === channel) this.onClosed(e);
      },
    });
    this.channel = channel;
    return channel;
  }

  private onResponse(r: WatchResponse): void {
    if (r.created) {
      const w = this.awaitingCreated;
      this.awaitingCreated = null;
      if (w !== null && this.active.has(w)) {
        if (r.canceled) {
          w.fail(new EtcdWatchCanceledError(r.cancelReason || 'watch refused'));
        } else {
          this.failuresInARow = 0;
          w.id = r.watchId;
          this.byId.set(r.watchId, w);
          w.onCreated(r);
        }
      } else if (!r.canceled && this.channel !== null) {
        // Canceled while its create was in flight.
        this.channel.send({ cancelRequest: { watchId: r.watchId } });
      }
      this.pump();
      return;
    }
    if (r.watchId === -1) return; // a stream-wide progress response: no watcher needs it
    const w = this.byId.get(r.watchId);
    if (w === undefined) return;
    if (r.canceled) {
      this.byId.delete(r.watchId);
      if (r.compactRevision > 0) w.fail(new EtcdCompactedError(r.compactRevision));
      else w.fail(new EtcdWatchCanceledError(r.cancelReason || 'watch canceled by the server'));
      return;
    }
    w.onEvents(r);
  }

  private onClosed(error: EtcdError): void {
    this.channel = null;
    this.byId.clear();
    this.awaitingCreated = null;
    this.createQueue = [...this.active];
    for (const w of this.active) w.onDisconnected(error);
    if (this.active.size === 0) return;
    this.failuresInARow++;
    if (this.failuresInARow === 1) {
      this.pump();
      return;
    }
    // The member we reach cannot serve a watch yet: wait before trying again.
    this.cancelRetry = after(this.clock, this.retryMs, () => {
      this.cancelRetry = null;
      this.pump();
    });
  }

  private closeChannel(): void {
    this.cancelRetry?.();
    this.cancelRetry = null;
    this.channel?.close();
    this.channel = null;
    this.byId.clear();
    this.awaitingCreated = null;
    this.createQueue = [];
    this.failuresInARow = 0;
  }
}
