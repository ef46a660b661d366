// Watches through the Client: callbacks, async iteration, filters, resume after the member
// serving the stream stops, compaction.

import { describe, expect, it } from 'vitest';
import { EtcdCompactedError, type EtcdError } from '../../src/client/errors.ts';
import type { WatchEvent } from '../../src/client/watch.ts';
import type { KeyValue } from '../../src/mvcc/types.ts';
import { cluster, sleep, text, waitFor } from './helpers.ts';

describe('client watch', () => {
  it('callbacks see puts and deletes with previous values, and stop after cancel', async () => {
    const c = (await cluster()).client();
    const seen: string[] = [];
    const w = await c.watch().key('k').withPreviousKV().create();
    w.on('put', (kv: KeyValue, prev: KeyValue | undefined) => seen.push(`put ${text(kv.value)} prev=${prev ? text(prev.value) : '-'}`));
    w.on('delete', (kv: KeyValue, prev: KeyValue | undefined) => seen.push(`delete prev=${prev ? text(prev.value) : '-'}`));
    await c.put('k').value('1');
    await c.put('other').value('x');
    await c.put('k').value('2');
    await c.delete().key('k');
    await waitFor('three events', () => seen.length === 3);
    expect(seen).toEqual(['put 1 prev=-', 'put 2 prev=1', 'delete prev=2']);
    await w.cancel();
    await c.put('k').value('3');
    await sleep(50);
    expect(seen).toHaveLength(3);
    expect(w.isCanceled).toBe(true);
  });

  it('async iteration yields every event of a prefix in order, from the start revision', async () => {
    const c = (await cluster()).client();
    const first = await c.put('p/0').value('0');
    for (let i = 1; i < 5; i++) await c.put(`p/${i}`).value(String(i));
    await c.put('q').value('not in the prefix');
    const w = await c.watch().prefix('p/').startRevision(first.header.revision).create();
    const writer = (async () => {
      for (let i = 5; i < 10; i++) await c.put(`p/${i}`).value(String(i));
    })();
    const got: string[] = [];
    for await (const ev of w) {
      got.push(`${ev.key}=${ev.value}`);
      if (got.length === 10) break;
    }
    await writer;
    expect(got).toEqual(Array.from({ length: 10 }, (_, i) => `p/${i}=${i}`));
    expect(w.isCanceled).toBe(true); // leaving the loop cancels the watcher
  });

  it('ignore() filters out puts or deletes; data carries whole transactions', async () => {
    const c = (await cluster()).client();
    const deletes: string[] = [];
    const onlyDeletes = await c.watch().prefix('f/').ignore('put').create();
    onlyDeletes.on('delete', (kv: KeyValue) => deletes.push(text(kv.key)));
    const batches: number[] = [];
    const all = await c.watch().prefix('f/').create();
    all.on('data', (r) => batches.push(r.events.length));
    await c.txn().then(c.put('f/a').value('1'), c.put('f/b').value('2')).commit();
    await c.delete().prefix('f/');
    await waitFor('two responses', () => batches.length === 2);
    await waitFor('deletes', () => deletes.length === 2);
    expect(deletes).toEqual(['f/a', 'f/b']);
    expect(batches).toEqual([2, 2]);
    expect(all.lastRevision).toBe((await c.getAll().exec()).header.revision);
  });

  it('resumes on another member after the one serving it stops, with no gaps or duplicates', async () => {
    const tc = await cluster();
    const leader = await tc.leader();
    // Serve the watch from a follower, and write through a client on the leader.
    const followerIndex = tc.members.findIndex((m) => m !== leader);
    const watching = tc.client(followerIndex);
    const writer = tc.client(tc.members.indexOf(leader));
    const w = await watching.watch().prefix('r/').create();
    const events: WatchEvent[] = [];
    const disconnects: EtcdError[] = [];
    let connects = 0;
    w.on('disconnected', (e) => disconnects.push(e));
    w.on('connected', () => connects++);
    const iterated = (async () => {
      for await (const ev of w) {
        events.push(ev);
        if (events.length === 40) return;
      }
    })();
    for (let i = 0; i < 20; i++) await writer.put(`r/${i}`).value(String(i));
    await waitFor('the first 20 events', () => events.length >= 20);
    // Cut the follower off so it misses the next writes, then stop it: the resumed watch must
    // replay them from another member's history.
    const followerId = tc.members[followerIndex].id;
    tc.transports.forEach((t, i) => {
      if (i !== followerIndex) t.faults.block(followerId);
    });
    for (const m of tc.members) if (m.id !== followerId) tc.transports[followerIndex].faults.block(m.id);
    for (let i = 20; i < 40; i++) await writer.put(`r/${i}`).value(String(i));
    expect(events).toHaveLength(20);
    await tc.members[followerIndex].stop();
    await iterated;
    expect(events.map((e) => e.key)).toEqual(Array.from({ length: 40 }, (_, i) => `r/${i}`));
    const revisions = events.map((e) => e.revision);
    expect(new Set(revisions).size).toBe(40);
    expect(revisions).toEqual([...revisions].sort((a, b) => a - b));
    expect(disconnects.map((e) => e.message)).toEqual(['etcdserver: server stopped']);
    expect(connects).toBe(1); // the resume ('connected' is not emitted for the first create, made before on())
  });

  it('resumes after the stream breaks mid-way even when a different member is behind', async () => {
    const tc = await cluster();
    const c = tc.client(0);
    const w = await c.watch().key('x').create();
    const values: string[] = [];
    w.on('put', (kv: KeyValue) => values.push(text(kv.value)));
    await c.put('x').value('a');
    await waitFor('a', () => values.length === 1);
    await tc.members[0].stop();
    // A write forwarded to a leader that just died is lost and times out (as in etcd): wait
    // for the survivors to agree on a leader first.
    await tc.leader();
    await c.put('x').value('b');
    await c.put('x').value('c');
    await waitFor('b and c', () => values.length === 3);
    expect(values).toEqual(['a', 'b', 'c']);
  });

  it('a compacted start revision ends the watch with an error carrying compactRevision', async () => {
    const c = (await cluster()).client();
    const first = await c.put('c').value('1');
    await c.put('c').value('2');
    const last = await c.put('c').value('3');
    await c.compact(last.header.revision);
    const w = await c.watch().key('c').startRevision(first.header.revision).create();
    const viaCallback = w.next('error');
    const viaIterator = (async () => {
      for await (const ev of w) void ev;
    })().catch((e: unknown) => e);
    const [err] = await viaCallback;
    expect(err).toBeInstanceOf(EtcdCompactedError);
    expect((err as EtcdCompactedError).compactRevision).toBe(last.header.revision);
    expect(await viaIterator).toBe(err);
  });

  it('a namespaced watch sees keys without the prefix', async () => {
    const c = (await cluster()).client();
    const app = c.namespace('app/');
    const w = await app.watch().prefix('').withPreviousKV().create();
    const seen: string[] = [];
    w.on('put', (kv: KeyValue, prev: KeyValue | undefined) => seen.push(`${text(kv.key)} ${prev ? text(prev.key) : '-'}`));
    await c.put('elsewhere').value('0');
    await app.put('a').value('1');
    await c.put('app/a').value('2');
    await waitFor('two puts', () => seen.length === 2);
    expect(seen).toEqual(['a -', 'a a']);
  });
});
