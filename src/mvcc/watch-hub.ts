// The watch hub: streams the store's changes to watchers in revision order, each transaction
// whole in one response, with no gaps and no duplicates.
//
// A watcher is either synced (it has seen every revision up to the store's current one, and
// receives each new transaction as it is applied) or unsynced (it is behind: its start revision
// is in the past, or its sink refused a response). Unsynced watchers are caught up from the
// store's history by `syncWatchers`, in bounded batches that the member driver runs between
// applies, so writers never wait for a slow reader.

import { inRange, toBinaryString, toRangeEnd, type KeyString, type RangeEnd } from './bytes.ts';
import { WatchCancelReason } from './errors.ts';
import { storedKeyValue } from './apply-kv.ts';
import type { Record } from './key-index.ts';
import type { Change, KvStore } from './kv-store.ts';
import { EventType, FilterType, type Event, type KeyValue, type WatchCreateRequest, type WatchResponse } from './types.ts';

/** etcd's watchBatchMaxRevs: revisions read per catch-up batch. */
export const WATCH_SYNC_REVISIONS_MAX = 1000;

/**
 * Where a watch stream's responses go (one per client stream). `send` must not block.
 * For event responses it may return false (the stream's buffer is full): the hub keeps the
 * watcher's position and re-sends those events later from history. Control responses (created,
 * canceled, compacted, progress) carry no events; their return value is ignored.
 */
export interface WatchSink {
  send(response: WatchResponse): boolean;
}

interface Watcher {
  readonly id: number;
  readonly stream: WatchStream;
  readonly key: KeyString;
  readonly end: RangeEnd;
  readonly prevKv: boolean;
  readonly noPut: boolean;
  readonly noDelete: boolean;
  readonly progressNotify: boolean;
  /**
   * The lowest revision whose events this watcher has not been sent. While synced it may lag
   * behind the store (it moves only when events are sent); a synced watcher has seen everything.
   */
  nextRevision: number;
  synced: boolean;
}

function response(watchId: number, revision: number, fields: Partial<WatchResponse> = {}): WatchResponse {
  return {
    header: { revision },
    watchId,
    created: false,
    canceled: false,
    compactRevision: 0,
    cancelReason: '',
    events: [],
    ...fields,
  };
}

/** An event response: the common case of `response`, without its spread. */
function eventsResponse(watchId: number, revision: number, events: readonly Event[]): WatchResponse {
  return { header: { revision }, watchId, created: false, canceled: false, compactRevision: 0, cancelReason: '', events };
}

/** A put that creates its key: etcd never attaches prev_kv to it. */
function isCreate(record: Record): boolean {
  return record.version !== 0 && record.createRevision === record.main;
}

/** The event of `record` (whose KeyValue is `kv`), with prev_kv read at the revision before it if asked. */
function eventOf(store: KvStore, record: Record, kv: KeyValue, withPrev: boolean): Event {
  const event: Event = { type: record.version === 0 ? EventType.DELETE : EventType.PUT, kv };
  if (withPrev && !isCreate(record)) {
    const prev = store.getAt(record.key, record.main - 1);
    if (prev !== undefined) event.prevKv = store.keyValue(prev);
  }
  return event;
}

function wants(watcher: Watcher, record: Record): boolean {
  if (!inRange(record.key, watcher.key, watcher.end)) return false;
  return record.version === 0 ? !watcher.noDelete : !watcher.noPut;
}

/**
 * The two forms of one change's event (with and without prev_kv), each built on first use.
 * etcd reads prev_kv at the revision before the transaction. That is not always the change's
 * own `prev`: a txn that puts a key and then deletes it with a range_end of "\0" (which etcd's
 * duplicate check lets through) reports the pre-txn value on the delete event.
 */
class SharedEvents {
  private kv: KeyValue | null = null;
  private plain: Event | null = null;
  private withPrev: Event | null = null;
  private plainAlone: readonly Event[] | null = null;
  private withPrevAlone: readonly Event[] | null = null;
  constructor(
    readonly change: Change,
    private readonly store: KvStore,
  ) {}
  get(prevKv: boolean): Event {
    const record = this.change.record;
    const kv = (this.kv ??= this.store.keyValue(record));
    if (prevKv) return (this.withPrev ??= eventOf(this.store, record, kv, true));
    return (this.plain ??= eventOf(this.store, record, kv, false));
  }
  /**
   * The event as a one-event list, one array for every watcher whose response holds only it:
   * a transport can encode a response once for all watchers that share its list and watch id.
   */
  alone(prevKv: boolean): readonly Event[] {
    if (prevKv) return (this.withPrevAlone ??= [this.get(true)]);
    return (this.plainAlone ??= [this.get(false)]);
  }
}

export class WatchHub {
  /** Synced single-key watchers by key, and synced range watchers. */
  private readonly syncedByKey = new Map<KeyString, Set<Watcher>>();
  private readonly syncedRanges = new Set<Watcher>();
  private readonly unsynced = new Set<Watcher>();
  private readonly progressPending = new Set<WatchStream>();

  /** `store` is read on every use: a snapshot restore replaces the store. */
  constructor(private readonly store: () => KvStore) {}

  openStream(sink: WatchSink): WatchStream {
    return new WatchStream(this, sink);
  }

  get unsyncedCount(): number {
    return this.unsynced.size;
  }

  /** Delivers one applied write transaction to the synced watchers. Called by the state machine. */
  notify(revision: number, changes: readonly Change[]): void {
    if (this.syncedByKey.size === 0 && this.syncedRanges.size === 0) return;
    const store = this.store();
    // A watcher's list is its first event's shared one-event list until a second event comes.
    const batches = new Map<Watcher, readonly Event[]>();
    for (const change of changes) {
      // Events are built once per change and shared by every watcher (they are read-only).
      const events = new SharedEvents(change, store);
      const byKey = this.syncedByKey.get(change.record.key);
      if (byKey !== undefined) for (const w of byKey) this.collect(batches, w, revision, events);
      for (const w of this.syncedRanges) this.collect(batches, w, revision, events);
    }
    for (const [watcher, events] of batches) {
      if (watcher.stream.sink.send(eventsResponse(watcher.id, revision, events))) {
        watcher.nextRevision = revision + 1;
      } else {
        watcher.nextRevision = revision;
        this.unsync(watcher);
      }
    }
  }

  private collect(batches: Map<Watcher, readonly Event[]>, w: Watcher, revision: number, shared: SharedEvents): void {
    if (revision < w.nextRevision || !wants(w, shared.change.record)) return;
    const events = batches.get(w);
    if (events === undefined) batches.set(w, shared.alone(w.prevKv));
    // A one-event list is the shared one: the watcher's second event gets it a list of its own.
    else if (events.length === 1) batches.set(w, [events[0]!, shared.get(w.prevKv)]);
    else (events as Event[]).push(shared.get(w.prevKv));
  }

  /**
   * Catches unsynced watchers up from history: reads at most `revisionsMax` revisions, sends each
   * watcher its events as one response, and moves watchers that reach the current revision to
   * synced. Watchers whose next revision was compacted get a compacted response and are
   * canceled. Returns how many watchers remain unsynced.
   */
  syncWatchers(revisionsMax = WATCH_SYNC_REVISIONS_MAX): number {
    if (!(revisionsMax >= 1)) throw new Error(`syncWatchers: revisionsMax ${revisionsMax} < 1`);
    const store = this.store();
    const current = store.currentRevision;
    const compact = store.compactRevision;
    let from = Infinity;
    for (const w of [...this.unsynced]) {
      if (w.nextRevision < compact) {
        this.remove(w);
        // etcd 3.4 leaves the header revision of this response at 0.
        w.stream.sink.send(response(w.id, 0, { compactRevision: compact, canceled: true }));
      } else {
        from = Math.min(from, w.nextRevision);
      }
    }
    if (this.unsynced.size > 0) {
      const to = Math.min(current, from + revisionsMax - 1);
      const participants = [...this.unsynced].filter((w) => w.nextRevision <= to);
      const batches = new Map<Watcher, Event[]>();
      store.forEachRevision(from, to, (main, records) => {
        for (const record of records) {
          let kv: KeyValue | null = null;
          for (const w of participants) {
            if (w.nextRevision > main || !wants(w, record)) continue;
            let events = batches.get(w);
            if (events === undefined) batches.set(w, (events = []));
            events.push(eventOf(store, record, (kv ??= storedKeyValue(record)), w.prevKv));
          }
        }
      });
      for (const w of participants) {
        const events = batches.get(w);
        if (events !== undefined && !w.stream.sink.send(response(w.id, current, { events }))) continue;
        w.nextRevision = to + 1;
      }
      for (const w of [...this.unsynced]) if (w.nextRevision > current) this.sync(w);
    }
    for (const stream of [...this.progressPending]) stream.maybeSendProgress();
    return this.unsynced.size;
  }

  /**
   * Reads what `syncWatchers(revisionsMax)` would read and changes nothing: the plan of a
   * catch-up over an asynchronous backend (src/backend/prefetched.ts).
   */
  planSync(revisionsMax = WATCH_SYNC_REVISIONS_MAX): void {
    const store = this.store();
    const compact = store.compactRevision;
    const catching = [...this.unsynced].filter((w) => w.nextRevision >= compact);
    if (catching.length === 0) return;
    const from = Math.min(...catching.map((w) => w.nextRevision));
    const to = Math.min(store.currentRevision, from + revisionsMax - 1);
    const prevKv = catching.some((w) => w.prevKv && w.nextRevision <= to);
    store.forEachRevision(from, to, (_main, records) => {
      if (!prevKv) return;
      for (const record of records) {
        const prev = isCreate(record) ? undefined : store.getAt(record.key, record.main - 1);
        if (prev !== undefined) store.value(prev);
      }
    });
  }

  /** Whether some watcher asked for prev_kv: then every write reads its keys' previous values. */
  get prevKvWatched(): boolean {
    for (const w of this.unsynced) if (w.prevKv) return true;
    for (const w of this.syncedRanges) if (w.prevKv) return true;
    for (const set of this.syncedByKey.values()) for (const w of set) if (w.prevKv) return true;
    return false;
  }

  /** Sends an empty response to every synced watcher created with progress_notify. */
  progressNotify(): void {
    const revision = this.store().currentRevision;
    const notify = (w: Watcher): void => {
      if (w.progressNotify) w.stream.sink.send(response(w.id, revision));
    };
    for (const set of this.syncedByKey.values()) set.forEach(notify);
    this.syncedRanges.forEach(notify);
  }

  /**
   * After a snapshot restore: every watcher catches up from the new store's history. Synced
   * watchers had seen everything up to `previousRevision` (their own position may be older: it
   * only moves when they are sent events).
   */
  restored(previousRevision: number): void {
    const synced = [...this.syncedRanges];
    for (const set of this.syncedByKey.values()) synced.push(...set);
    for (const w of synced) {
      w.nextRevision = Math.max(w.nextRevision, previousRevision + 1);
      this.unsync(w);
    }
  }

  // ---- used by WatchStream ----

  /** @internal */
  add(watcher: Watcher): void {
    if (watcher.nextRevision > this.store().currentRevision) this.sync(watcher);
    else this.unsynced.add(watcher);
  }

  /** @internal */
  remove(watcher: Watcher): void {
    this.unsynced.delete(watcher);
    this.detachSynced(watcher);
    watcher.stream.forget(watcher.id);
  }

  /** @internal */
  currentRevision(): number {
    return this.store().currentRevision;
  }

  /** @internal */
  awaitProgress(stream: WatchStream, pending: boolean): void {
    if (pending) this.progressPending.add(stream);
    else this.progressPending.delete(stream);
  }

  private sync(w: Watcher): void {
    this.unsynced.delete(w);
    w.synced = true;
    if (w.end === null) {
      let set = this.syncedByKey.get(w.key);
      if (set === undefined) this.syncedByKey.set(w.key, (set = new Set()));
      set.add(w);
    } else {
      this.syncedRanges.add(w);
    }
  }

  private unsync(w: Watcher): void {
    this.detachSynced(w);
    w.synced = false;
    this.unsynced.add(w);
  }

  private detachSynced(w: Watcher): void {
    if (!w.synced) return;
    w.synced = false;
    if (w.end === null) {
      const set = this.syncedByKey.get(w.key);
      set?.delete(w);
      if (set?.size === 0) this.syncedByKey.delete(w.key);
    } else {
      this.syncedRanges.delete(w);
    }
  }
}

/** One client watch stream: creates and cancels watchers whose responses go to one sink. */
export class WatchStream {
  private readonly watchers = new Map<number, Watcher>();
  private nextWatchId = 0;
  private closed = false;

  constructor(
    private readonly hub: WatchHub,
    readonly sink: WatchSink,
  ) {}

  /**
   * Creates a watcher and sends its created response (canceled, with a reason, if the request
   * is refused). Returns the watch id, or -1 if refused.
   */
  watch(request: WatchCreateRequest): number {
    this.assertOpen();
    const current = this.hub.currentRevision();
    const key = toBinaryString(request.key);
    const end = toRangeEnd(request.rangeEnd);
    let id = request.watchId ?? 0;
    let refusal = '';
    if (end !== null && end !== '' && key >= end) refusal = WatchCancelReason.emptyRange;
    else if (id !== 0 && this.watchers.has(id)) refusal = WatchCancelReason.duplicateId;
    if (refusal !== '') {
      this.sink.send(response(-1, current, { created: true, canceled: true, cancelReason: refusal }));
      return -1;
    }
    if (id === 0) {
      while (this.watchers.has(this.nextWatchId)) this.nextWatchId++;
      id = this.nextWatchId++;
    }
    const filters = request.filters ?? [];
    const start = request.startRevision ?? 0;
    const watcher: Watcher = {
      id,
      stream: this,
      key,
      end,
      prevKv: request.prevKv ?? false,
      noPut: filters.includes(FilterType.NOPUT),
      noDelete: filters.includes(FilterType.NODELETE),
      progressNotify: request.progressNotify ?? false,
      nextRevision: start <= 0 ? current + 1 : start,
      synced: false,
    };
    this.watchers.set(id, watcher);
    this.sink.send(response(id, current, { created: true }));
    this.hub.add(watcher);
    return id;
  }

  /** Cancels a watcher and sends its canceled response; false if the id is unknown. */
  cancel(watchId: number): boolean {
    this.assertOpen();
    const watcher = this.watchers.get(watchId);
    if (watcher === undefined) return false;
    this.hub.remove(watcher);
    this.sink.send(response(watchId, this.hub.currentRevision(), { canceled: true }));
    return true;
  }

  /**
   * Asks for a progress response (watch id -1) carrying the current revision. It is sent once
   * every watcher of the stream is synced, so its revision never runs ahead of undelivered events.
   */
  requestProgress(): void {
    this.assertOpen();
    this.hub.awaitProgress(this, true);
    this.maybeSendProgress();
  }

  /** Removes every watcher without sending anything. */
  close(): void {
    if (this.closed) return;
    for (const watcher of [...this.watchers.values()]) this.hub.remove(watcher);
    this.hub.awaitProgress(this, false);
    this.closed = true;
  }

  get watchIds(): number[] {
    return [...this.watchers.keys()];
  }

  /** @internal */
  forget(watchId: number): void {
    this.watchers.delete(watchId);
  }

  /** @internal */
  maybeSendProgress(): void {
    for (const w of this.watchers.values()) if (!w.synced) return;
    this.hub.awaitProgress(this, false);
    this.sink.send(response(-1, this.hub.currentRevision()));
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('watchStream: closed');
  }
}
