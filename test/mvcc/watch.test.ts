import { describe, expect, it } from 'vitest';
import { EventType, FilterType, type WatchResponse, type WatchSink } from '../../src/mvcc/index.ts';
import { Harness, b, str } from './helpers.ts';

/** A sink that records responses and can refuse event responses while "full". */
class RecordingSink implements WatchSink {
  readonly responses: WatchResponse[] = [];
  full = false;
  send(response: WatchResponse): boolean {
    if (this.full && response.events.length > 0) return false;
    this.responses.push(response);
    return true;
  }
  events(watchId: number): { type: number; key: string; value: string; mod: number; prev?: string }[] {
    return this.responses
      .filter((r) => r.watchId === watchId)
      .flatMap((r) =>
        r.events.map((e) => ({
          type: e.type,
          key: str(e.kv.key),
          value: str(e.kv.value),
          mod: e.kv.modRevision,
          ...(e.prevKv ? { prev: str(e.prevKv.value) } : {}),
        })),
      );
  }
}

describe('watch hub', () => {
  it('a watch on a key gets created, then each change as it is applied', () => {
    const h = new Harness();
    const sink = new RecordingSink();
    const stream = h.sm.watchHub.openStream(sink);
    const id = stream.watch({ key: b('a') });
    expect(id).toBe(0);
    expect(sink.responses[0]).toMatchObject({ watchId: 0, created: true, header: { revision: 1 } });
    h.put('a', '1');
    h.put('b', '1');
    h.del('a');
    expect(sink.events(0)).toEqual([
      { type: EventType.PUT, key: 'a', value: '1', mod: 2 },
      { type: EventType.DELETE, key: 'a', value: '', mod: 4 },
    ]);
    expect(sink.responses[1].header.revision).toBe(2);
  });

  it('prefix watch with prev_kv; a txn arrives whole in one response', () => {
    const h = new Harness();
    h.put('p/a', 'old');
    const sink = new RecordingSink();
    const stream = h.sm.watchHub.openStream(sink);
    const id = stream.watch({ key: b('p/'), rangeEnd: b('p0'), prevKv: true });
    h.ok({
      kind: 'txn',
      request: {
        success: [
          { requestPut: { key: b('p/a'), value: b('new') } },
          { requestPut: { key: b('p/b'), value: b('x') } },
          { requestPut: { key: b('q'), value: b('x') } },
        ],
      },
    });
    const eventResponses = sink.responses.filter((r) => r.events.length > 0);
    expect(eventResponses.length).toBe(1);
    expect(sink.events(id)).toEqual([
      { type: EventType.PUT, key: 'p/a', value: 'new', mod: 3, prev: 'old' },
      { type: EventType.PUT, key: 'p/b', value: 'x', mod: 3 },
    ]);
  });

  it("watchers of one event share it; a watcher with more of the txn's events gets them all, the others still one", () => {
    const h = new Harness();
    const sinks = [new RecordingSink(), new RecordingSink(), new RecordingSink()];
    const [onA, alsoOnA, prefix] = sinks.map((sink) => h.sm.watchHub.openStream(sink));
    onA!.watch({ key: b('p/a') });
    alsoOnA!.watch({ key: b('p/a') });
    prefix!.watch({ key: b('p/'), rangeEnd: b('p0') });
    h.ok({
      kind: 'txn',
      request: { success: [{ requestPut: { key: b('p/a'), value: b('1') } }, { requestPut: { key: b('p/b'), value: b('2') } }] },
    });
    h.put('p/a', '3');
    const events = (i: number) => sinks[i]!.events(0).map((e) => `${e.key}=${e.value}@${e.mod}`);
    expect(events(0)).toEqual(['p/a=1@2', 'p/a=3@3']);
    expect(events(1)).toEqual(['p/a=1@2', 'p/a=3@3']);
    expect(events(2)).toEqual(['p/a=1@2', 'p/b=2@2', 'p/a=3@3']);
    // The single-event responses of a revision share one list (a transport encodes it once).
    const at = (i: number, revision: number) => sinks[i]!.responses.find((r) => r.header.revision === revision && r.events.length > 0)!;
    expect(at(0, 2).events).toBe(at(1, 2).events);
    expect(at(0, 3).events).toBe(at(2, 3).events);
  });

  it('replays history from a start revision, then continues live, with no gaps or duplicates', () => {
    const h = new Harness();
    for (let i = 0; i < 10; i++) h.put('k', `${i}`); // revisions 2..11
    const sink = new RecordingSink();
    const stream = h.sm.watchHub.openStream(sink);
    const id = stream.watch({ key: b('k'), startRevision: 5, prevKv: true });
    h.put('k', 'live-before-sync'); // 12: the watcher is unsynced, so this comes from history
    expect(sink.events(id)).toEqual([]);
    expect(h.sm.watchHub.syncWatchers(3)).toBe(1);
    expect(sink.events(id).map((e) => e.mod)).toEqual([5, 6, 7]);
    expect(sink.events(id)[0].prev).toBe('2');
    while (h.sm.watchHub.syncWatchers(3) > 0);
    h.put('k', 'live'); // 13
    expect(sink.events(id).map((e) => e.mod)).toEqual([5, 6, 7, 8, 9, 10, 11, 12, 13]);
  });

  it('a slow watcher falls back to history and catches up without blocking writers', () => {
    const h = new Harness();
    const sink = new RecordingSink();
    const stream = h.sm.watchHub.openStream(sink);
    const id = stream.watch({ key: b('a'), rangeEnd: b('z') });
    h.put('a', '1'); // 2
    sink.full = true;
    for (let i = 0; i < 5; i++) h.put(`k${i}`, 'v'); // 3..7 refused
    expect(h.sm.currentRevision).toBe(7);
    expect(h.sm.watchHub.unsyncedCount).toBe(1);
    expect(h.sm.watchHub.syncWatchers()).toBe(1);
    sink.full = false;
    expect(h.sm.watchHub.syncWatchers()).toBe(0);
    h.put('b', '1'); // 8
    expect(sink.events(id).map((e) => e.mod)).toEqual([2, 3, 4, 5, 6, 7, 8]);
  });

  it('a watch from a compacted revision gets a compacted, canceled response', () => {
    const h = new Harness();
    for (let i = 0; i < 5; i++) h.put('a', `${i}`); // 2..6
    h.ok({ kind: 'compaction', request: { revision: 4 } });
    const sink = new RecordingSink();
    const stream = h.sm.watchHub.openStream(sink);
    const id = stream.watch({ key: b('a'), startRevision: 3 });
    h.sm.watchHub.syncWatchers();
    expect(sink.responses.at(-1)).toMatchObject({ watchId: id, canceled: true, compactRevision: 4, header: { revision: 0 } });
    expect(stream.watchIds).toEqual([]);
    // Starting at the compact revision itself is allowed.
    const ok = stream.watch({ key: b('a'), startRevision: 4 });
    h.sm.watchHub.syncWatchers();
    expect(sink.events(ok).map((e) => e.mod)).toEqual([4, 5, 6]);
  });

  it('NOPUT and NODELETE filters', () => {
    const h = new Harness();
    const sink = new RecordingSink();
    const stream = h.sm.watchHub.openStream(sink);
    const noPut = stream.watch({ key: b('a'), filters: [FilterType.NOPUT] });
    const noDelete = stream.watch({ key: b('a'), filters: [FilterType.NODELETE] });
    h.put('a', '1');
    h.del('a');
    expect(sink.events(noPut).map((e) => e.type)).toEqual([EventType.DELETE]);
    expect(sink.events(noDelete).map((e) => e.type)).toEqual([EventType.PUT]);
  });

  it('cancel stops events and answers canceled; unknown ids are ignored', () => {
    const h = new Harness();
    const sink = new RecordingSink();
    const stream = h.sm.watchHub.openStream(sink);
    const id = stream.watch({ key: b('a') });
    expect(stream.cancel(id)).toBe(true);
    expect(sink.responses.at(-1)).toMatchObject({ watchId: id, canceled: true });
    expect(stream.cancel(id)).toBe(false);
    h.put('a', '1');
    expect(sink.events(id)).toEqual([]);
  });

  it('client-chosen ids; a duplicate id or an empty range is refused with a reason', () => {
    const h = new Harness();
    const sink = new RecordingSink();
    const stream = h.sm.watchHub.openStream(sink);
    expect(stream.watch({ key: b('a'), watchId: 7 })).toBe(7);
    expect(stream.watch({ key: b('a'), watchId: 7 })).toBe(-1);
    expect(sink.responses.at(-1)).toMatchObject({
      created: true,
      canceled: true,
      cancelReason: 'mvcc: duplicate watch ID provided on the WatchStream',
    });
    expect(stream.watch({ key: b('b'), rangeEnd: b('a') })).toBe(-1);
    expect(sink.responses.at(-1)?.cancelReason).toBe('mvcc: watcher range is empty');
  });

  it('progress notify goes to synced watchers that asked for it', () => {
    const h = new Harness();
    h.put('a', '1');
    const sink = new RecordingSink();
    const stream = h.sm.watchHub.openStream(sink);
    const withProgress = stream.watch({ key: b('a'), progressNotify: true });
    stream.watch({ key: b('b') });
    h.sm.watchHub.progressNotify();
    const progress = sink.responses.filter((r) => !r.created && r.events.length === 0);
    expect(progress.map((r) => [r.watchId, r.header.revision])).toEqual([[withProgress, 2]]);
  });

  it('a progress request is answered once every watcher of the stream is synced', () => {
    const h = new Harness();
    for (let i = 0; i < 3; i++) h.put('a', `${i}`);
    const sink = new RecordingSink();
    const stream = h.sm.watchHub.openStream(sink);
    stream.watch({ key: b('a'), startRevision: 2 });
    stream.requestProgress();
    expect(sink.responses.filter((r) => r.watchId === -1)).toEqual([]);
    h.sm.watchHub.syncWatchers();
    const progress = sink.responses.filter((r) => r.watchId === -1);
    expect(progress.map((r) => r.header.revision)).toEqual([4]);
    // The history events came first.
    expect(sink.responses.findIndex((r) => r.watchId === -1)).toBeGreaterThan(
      sink.responses.findIndex((r) => r.events.length > 0),
    );
  });

  it('a watch with a future start revision sees only events from that revision on', () => {
    const h = new Harness();
    const sink = new RecordingSink();
    const stream = h.sm.watchHub.openStream(sink);
    const id = stream.watch({ key: b('a'), startRevision: 4 });
    h.put('a', '1'); // 2
    h.put('a', '2'); // 3
    h.put('a', '3'); // 4
    expect(sink.events(id).map((e) => e.mod)).toEqual([4]);
  });

  it('lease revocation deletes arrive as one response', () => {
    const h = new Harness();
    h.ok({ kind: 'leaseGrant', request: { ID: 1n, TTL: 60 } });
    h.put('a', '1', { lease: 1n });
    h.put('b', '1', { lease: 1n });
    const sink = new RecordingSink();
    const id = h.sm.watchHub.openStream(sink).watch({ key: b('\0'), rangeEnd: b('\0') });
    h.ok({ kind: 'leaseRevoke', request: { ID: 1n } });
    const withEvents = sink.responses.filter((r) => r.events.length > 0);
    expect(withEvents.length).toBe(1);
    expect(sink.events(id).map((e) => [e.type, e.key, e.mod])).toEqual([
      [EventType.DELETE, 'a', 4],
      [EventType.DELETE, 'b', 4],
    ]);
  });

  it('prev_kv is the key before the txn; a put that creates its key has none (checked against etcd 3.4)', () => {
    const h = new Harness();
    h.put('b', 'v1'); // 2
    const sink = new RecordingSink();
    const id = h.sm.watchHub.openStream(sink).watch({ key: b('\0'), rangeEnd: b('\0'), prevKv: true });
    const all = { key: b('a'), rangeEnd: new Uint8Array([0]) };
    // etcd's duplicate check takes range_end "\0" literally, so these txns are accepted.
    h.ok({ kind: 'txn', request: { success: [{ requestPut: { key: b('b'), value: b('v2') } }, { requestDeleteRange: all }] } }); // 3
    h.put('b', 'v3'); // 4
    h.ok({ kind: 'txn', request: { success: [{ requestDeleteRange: all }, { requestPut: { key: b('b'), value: b('v4') } }] } }); // 5
    expect(sink.events(id)).toEqual([
      { type: EventType.PUT, key: 'b', value: 'v2', mod: 3, prev: 'v1' },
      // The delete's prev_kv is the value before the txn, not the txn's own put.
      { type: EventType.DELETE, key: 'b', value: '', mod: 3, prev: 'v1' },
      { type: EventType.PUT, key: 'b', value: 'v3', mod: 4 },
      { type: EventType.DELETE, key: 'b', value: '', mod: 5, prev: 'v3' },
      // Recreated in the same txn: a create event, so no prev_kv.
      { type: EventType.PUT, key: 'b', value: 'v4', mod: 5 },
    ]);
  });

  it('closing a stream removes its watchers silently', () => {
    const h = new Harness();
    const sink = new RecordingSink();
    const stream = h.sm.watchHub.openStream(sink);
    stream.watch({ key: b('a') });
    stream.close();
    const count = sink.responses.length;
    h.put('a', '1');
    expect(sink.responses.length).toBe(count);
  });
});
