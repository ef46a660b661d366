// The Client over gRPC against a real meshkv member: watches (and their resume when the gRPC
// server restarts), leases on the shared keep-alive stream, and loss when the server goes away.

import { describe, expect, it } from 'vitest';
import type { LeaseKeepAliveResponse } from '../../src/client/connection.ts';
import { EtcdCompactedError, LeaseLostError, type EtcdError } from '../../src/client/errors.ts';
import type { KeyValue } from '../../src/mvcc/types.ts';
import { grpcMember, sleep, text, waitFor } from './helpers.ts';

const enc = new TextEncoder();

describe('client over gRPC: watch', () => {
  it('callbacks see puts and deletes with previous values, and stop after cancel', async () => {
    const c = (await grpcMember()).client();
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
  });

  it('async iteration yields every event of a prefix in order, from the start revision', async () => {
    const c = (await grpcMember()).client();
    const first = await c.put('p/0').value('0');
    for (let i = 1; i < 5; i++) await c.put(`p/${i}`).value(String(i));
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
    expect(w.isCanceled).toBe(true);
  });

  it('resumes after the gRPC server restarts on the same port: no gaps, no duplicates', async () => {
    const m = await grpcMember();
    const c = m.client();
    const w = await c.watch().prefix('r/').create();
    const revisions: number[] = [];
    const values: string[] = [];
    w.on('put', (kv: KeyValue) => (revisions.push(kv.modRevision), values.push(text(kv.value))));
    let disconnects = 0;
    w.on('disconnected', () => disconnects++);
    for (let i = 0; i < 3; i++) await c.put(`r/${i}`).value(String(i));
    await waitFor('events before the restart', () => values.length === 3);
    await m.stopServing();
    await waitFor('the watcher to notice', () => disconnects > 0);
    // Written while no gRPC server runs: the resumed watch must replay them.
    for (let i = 3; i < 6; i++) await m.kv.put({ key: enc.encode(`r/${i}`), value: enc.encode(String(i)) });
    await m.startServing();
    await w.next('connected');
    for (let i = 6; i < 9; i++) await c.put(`r/${i}`).value(String(i));
    await waitFor('every event', () => values.length >= 9);
    await sleep(50);
    expect(values).toEqual(Array.from({ length: 9 }, (_, i) => String(i)));
    expect(new Set(revisions).size).toBe(9);
    expect(revisions).toEqual([...revisions].sort((a, b) => a - b));
  });

  it('a watch from a compacted revision ends with EtcdCompactedError naming the compaction', async () => {
    const c = (await grpcMember()).client();
    const first = await c.put('c').value('1');
    const last = await c.put('c').value('2');
    await c.compact(last.header.revision);
    const w = await c.watch().key('c').startRevision(first.header.revision).create();
    const viaIterator = (async () => {
      for await (const ev of w) void ev;
    })().catch((e: unknown) => e);
    const err = await viaIterator;
    expect(err).toBeInstanceOf(EtcdCompactedError);
    expect((err as EtcdCompactedError).compactRevision).toBe(last.header.revision);
  });
});

describe('client over gRPC: lease', () => {
  it('keeps leases alive over one stream past their TTL; revoke deletes their keys', async () => {
    const c = (await grpcMember()).client();
    const a = c.lease(1);
    const b = c.lease(1);
    const [idA, idB] = [await a.grant(), await b.grant()];
    const renewals: LeaseKeepAliveResponse[] = [];
    a.on('keepaliveSucceeded', (r) => renewals.push(r));
    b.on('keepaliveSucceeded', (r) => renewals.push(r));
    await a.put('session/a').value('1');
    await b.put('session/b').value('1');
    await sleep(2500);
    expect(await c.getAll().prefix('session/').keys()).toEqual(['session/a', 'session/b']);
    expect(renewals.filter((r) => r.ID === idA).length).toBeGreaterThanOrEqual(4);
    expect(renewals.filter((r) => r.ID === idB).length).toBeGreaterThanOrEqual(4);
    expect(renewals.every((r) => r.TTL === 1)).toBe(true);
    await a.revoke();
    expect(await c.get('session/a').exists()).toBe(false);
    expect(await c.get('session/b').exists()).toBe(true);
  });

  it('is lost when the server goes away for longer than its TTL', async () => {
    const m = await grpcMember();
    const c = m.client([m.endpoint], { connectTimeoutMs: 200 });
    const lease = c.lease(1);
    const id = await lease.grant();
    const failures: EtcdError[] = [];
    lease.on('keepaliveFailed', (e) => failures.push(e));
    const lost = lease.next('lost');
    await sleep(500);
    expect(lease.isLost).toBe(false);
    await m.stopServing();
    const [err] = await lost;
    expect(err).toBeInstanceOf(LeaseLostError);
    expect(err.leaseId).toBe(id);
    expect(failures.length).toBeGreaterThan(0);
    // The member expired it too: nothing was renewing it.
    let held = true;
    for (let i = 0; i < 100 && held; i++, await sleep(20)) held = (await m.kv.leaseLeases()).leases.some((l) => l.ID === id);
    expect(held).toBe(false);
  });
});
