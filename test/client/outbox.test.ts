// The outbox (src/client/outbox.ts) in Node, on a real in-process cluster, over a store in memory
// (the tab's is IndexedDB: test/e2e/offline.test.ts): guarded writes queued while the member is
// cut off drain when it is back, each committed or a conflict with the current value; a member
// that dies between applying a batch and the outbox hearing it leaves the entries pending, and
// the outbox reopened on another member hears their first outcomes, applied once.

import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../adapters/clock/system.ts';
import { MemoryHub } from '../../adapters/transport/memory.ts';
import { Outbox, type OutboxMember } from '../../src/client/outbox.ts';
import { ConnectivityWatch } from '../../src/server/connectivity.ts';
import type { KvMember } from '../../src/server/kv-member.ts';
import { startSteadyTrio } from '../helpers/kv-members.ts';
import { MemoryOutboxLedger, MemoryOutboxStore, SingleOutboxPeers } from '../helpers/memory-outbox.ts';
import { waitFor } from './helpers.ts';

const b = (s: string) => new TextEncoder().encode(s);
const text = (u: Uint8Array) => new TextDecoder().decode(u);
const running: KvMember[] = [];
const cleanups: (() => void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) c();
  for (const m of running.splice(0)) await m.stop();
});

async function cluster() {
  const { members, transports } = await startSteadyTrio(new MemoryHub());
  running.push(...members);
  await waitFor('a leader', () => members.find((m) => m.isLeader()));
  return { members, transports };
}

/** An outbox on `kv` over `store`; `member` may wrap it (to fail after a proposal applied). */
async function openOutbox(kv: KvMember, store: MemoryOutboxStore, member: OutboxMember = kv, ledger?: MemoryOutboxLedger, log?: (level: string, msg: string) => void): Promise<Outbox> {
  const watch = new ConnectivityWatch(kv, systemClock, 20);
  const outbox = await Outbox.open({
    kv: member,
    connectivity: () => watch.current(),
    onConnectivity: (fn) => watch.onChange(fn),
    clock: systemClock,
    wallClockMs: () => Date.now(),
    store,
    peers: new SingleOutboxPeers(store),
    ledger,
    log,
    drainCheckMs: 100,
  });
  cleanups.push(() => {
    outbox.close();
    watch.stop();
  });
  return outbox;
}

describe('the outbox on a Node member', () => {
  it('queues guarded writes while cut off; back online each is committed once or a conflict with the current value', { timeout: 60_000 }, async () => {
    const { members, transports } = await cluster();
    const tabMember = members.find((m) => !m.isLeader())!;
    const other = members.find((m) => m !== tabMember)!;
    await other.put({ key: b('todo/1'), value: b('buy milk') });
    await waitFor('the replica has it', () => tabMember.currentRevision === 2);
    const outbox = await openOutbox(tabMember, new MemoryOutboxStore('node-test-outbox'));

    // Cut off from every peer, both ways.
    const t = transports[members.indexOf(tabMember)];
    for (const peer of [1, 2, 3]) if (peer !== tabMember.id) t.faults.block(peer);
    const watch = new ConnectivityWatch(tabMember, systemClock, 20);
    cleanups.push(() => watch.stop());
    await waitFor('offline', () => watch.current().state === 'offline', 10_000);

    const edit = outbox.begin();
    expect((await edit.get('todo/1')).value).toBe('buy milk');
    edit.put('todo/1', 'buy oat milk');
    const edited = await edit.commit();
    const add = outbox.begin();
    expect((await add.get('todo/2')).value).toBeNull();
    add.put('todo/2', 'call mum');
    const added = await add.commit();
    // Read your own writes: the pending edit is laid over the replica.
    expect(await outbox.get('todo/1')).toMatchObject({ value: 'buy oat milk', pending: true, pendingSeq: edited.seq });
    // Meanwhile the cluster changes todo/2 under the guard of the second entry.
    await other.put({ key: b('todo/2'), value: b('call dad') });

    for (const peer of [1, 2, 3]) if (peer !== tabMember.id) t.faults.heal(peer);
    const [o1, o2] = await Promise.all([edited.outcome, added.outcome]);
    expect(o1.status).toBe('committed');
    expect(o2).toMatchObject({ status: 'conflict' });
    expect(o2.current?.map((kv) => [text(kv.key), text(kv.value)])).toEqual([['todo/2', 'call dad']]);
    const r = await other.range({ key: b('todo/1') });
    expect(text(r.kvs[0].value)).toBe('buy oat milk');
    expect(r.kvs[0].modRevision).toBe(o1.revision);
  });

  it('a member that dies after applying a batch, before the outbox hears it: reopened elsewhere, the entries are applied once', { timeout: 60_000 }, async () => {
    const { members } = await cluster();
    const store = new MemoryOutboxStore('node-test-crash');
    const first = members.find((m) => !m.isLeader())!;
    let applied = 0;
    // The member applies the batch, then its process is gone before the answer reaches the outbox.
    const dying: OutboxMember = {
      range: (r) => first.range(r),
      get currentRevision() {
        return first.currentRevision;
      },
      outboxAppliedSeq: (client) => first.outboxAppliedSeq(client),
      proposeOutboxBatch: async (batch) => {
        await first.proposeOutboxBatch(batch);
        applied += batch.entries.length;
        throw new Error('the member died before answering');
      },
    };
    const outbox = await openOutbox(first, store, dying);
    // Blind puts: only the state machine's per-client sequence stops a retry from applying them again.
    for (let i = 1; i <= 3; i++) await outbox.begin().put(`k${i}`, `v${i}`).commit();
    await waitFor('the batch applied', () => applied >= 3, 10_000);
    outbox.close();
    expect((await store.pending()).length).toBe(3);

    const second = members.find((m) => m !== first)!;
    const revisionBefore = second.currentRevision;
    const reopened = await openOutbox(second, store);
    const outcomes = await Promise.all([1, 2, 3].map((seq) => reopened.outcome(seq)));
    expect(outcomes.map((o) => o.status)).toEqual(['committed', 'committed', 'committed']);
    // Nothing was written again: the retry was answered with the first outcomes.
    expect(second.currentRevision).toBe(revisionBefore);
    for (let i = 1; i <= 3; i++) {
      const r = await second.range({ key: b(`k${i}`) });
      expect(r.kvs[0].version).toBe(1);
      expect(r.kvs[0].modRevision).toBe(outcomes[i - 1].revision);
    }
  });

  it('reports a lost store from its ledger: the unapplied entries, until acknowledged; nothing when every entry was applied', { timeout: 60_000 }, async () => {
    const { members, transports } = await cluster();
    const tabMember = members.find((m) => !m.isLeader())!;
    const ledger = new MemoryOutboxLedger();
    const first = await openOutbox(tabMember, new MemoryOutboxStore('outbox-lost'), tabMember, ledger);
    const applied = await first.begin().put('note/1', 'kept').commit();
    expect((await applied.outcome).status).toBe('committed');

    // Cut off: two more entries stay pending, only in the store.
    const t = transports[members.indexOf(tabMember)];
    for (const peer of [1, 2, 3]) if (peer !== tabMember.id) t.faults.block(peer);
    const watch = new ConnectivityWatch(tabMember, systemClock, 20);
    cleanups.push(() => watch.stop());
    await waitFor('offline', () => watch.current().state === 'offline', 10_000);
    await first.begin().put('note/2', 'gone').commit();
    await first.begin().put('note/3', 'gone too').commit();
    first.close();

    // The store is gone (as Chromium deletes an origin's IndexedDB): the next one is new, with a new client id.
    const logged: string[] = [];
    const reopened = await openOutbox(tabMember, new MemoryOutboxStore('outbox-new'), tabMember, ledger, (_, msg) => logged.push(msg));
    const loss = { client: 'outbox-lost', queuedThroughSeq: 3, appliedThroughSeq: 1 };
    expect(reopened.losses()).toMatchObject([loss]);
    expect(await reopened.pending()).toEqual([]);
    expect(logged.join('\n')).toContain('outbox: the store of client outbox-lost is gone (its entries through 3 were kept only there; applied through 1)');
    // A sibling tab on the new store hears of it too, until one of them acknowledges it.
    const sibling = await openOutbox(tabMember, new MemoryOutboxStore('outbox-new'), tabMember, ledger);
    expect(sibling.losses()).toMatchObject([loss]);
    sibling.acknowledgeLosses();
    expect(reopened.losses()).toEqual([]);

    // Back online, the new store's entries drain; lost again with all of them applied, nothing is reported.
    for (const peer of [1, 2, 3]) if (peer !== tabMember.id) t.faults.heal(peer);
    const later = await reopened.begin().put('note/4', 'kept').commit();
    expect((await later.outcome).status).toBe('committed');
    reopened.close();
    const third = await openOutbox(tabMember, new MemoryOutboxStore('outbox-third'), tabMember, ledger);
    expect(third.losses()).toEqual([]);
    expect(JSON.parse(ledger.text!)).toMatchObject({ client: 'outbox-third', queuedThroughSeq: 0 });
  });

  it('says so when its ledger is unreadable, and starts a new note', { timeout: 60_000 }, async () => {
    const { members } = await cluster();
    const ledger = new MemoryOutboxLedger();
    ledger.text = '{"client": 7';
    const logged: string[] = [];
    const outbox = await openOutbox(members[0], new MemoryOutboxStore('outbox-x'), members[0], ledger, (_, msg) => logged.push(msg));
    expect(logged.join('\n')).toContain('outbox: the ledger is unreadable, so a lost store would go unnoticed this once; it is rewritten');
    expect(outbox.losses()).toEqual([]);
    expect(JSON.parse(ledger.text!)).toEqual({ client: 'outbox-x', queuedThroughSeq: 0, losses: [] });
  });
});
