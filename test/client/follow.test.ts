// Client.follow across an offline period on real in-process members: a member cut off from its
// peers and healed delivers every change it missed, in order, once; when the cluster compacted
// meanwhile and the member caught up from a snapshot, the app gets the compacted error and a
// fresh snapshot of the range.

import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../adapters/clock/system.ts';
import { MemoryHub } from '../../adapters/transport/memory.ts';
import { Client } from '../../src/client/client.ts';
import { EtcdCompactedError } from '../../src/client/errors.ts';
import { InProcessConnection } from '../../src/client/local-connection.ts';
import type { KvMember } from '../../src/server/kv-member.ts';
import { startKvMember, steadyTimings } from '../helpers/kv-members.ts';
import { waitFor } from '../helpers/wait.ts';

const running: KvMember[] = [];
const clients: Client[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const m of running.splice(0)) await m.stop();
});

const text = (b: Uint8Array) => new TextDecoder().decode(b);


async function setUp() {
  const hub = new MemoryHub();
  const ids = [1, 2, 3];
  const transports = ids.map((id) => hub.connect(id));
  const ms = await Promise.all(ids.map((id, i) => startKvMember(hub, id, ids, { transport: transports[i], snapshotEntries: 20, snapshotKeepEntries: 0, ...steadyTimings })));
  running.push(...ms);
  const leader = await waitFor('a leader', () => ms.find((m) => m.isLeader()));
  const i = ms.findIndex((m) => m !== leader);
  const local = new Client({ connection: new InProcessConnection([ms[i]], { clock: systemClock }), clock: systemClock, consistency: 'local' });
  const writer = new Client({ connection: new InProcessConnection(ms, { clock: systemClock, preferred: ms.indexOf(leader) }), clock: systemClock });
  clients.push(local, writer);
  const seen = { snapshots: [] as { values: Record<string, string>; revision: number }[], events: [] as { key: string; value: string; revision: number }[], resets: [] as number[] };
  const handlers = {
    onSnapshot: (kvs: { key: Uint8Array; value: Uint8Array }[], revision: number) => seen.snapshots.push({ values: Object.fromEntries(kvs.map((kv) => [text(kv.key), text(kv.value)])), revision }),
    onEvent: (e: { key: string; value: string; revision: number }) => seen.events.push({ key: e.key, value: e.value, revision: e.revision }),
    onReset: (err: EtcdCompactedError, after: number) => {
      expect(err).toBeInstanceOf(EtcdCompactedError);
      seen.resets.push(after);
    },
  };
  const cutOff = () => {
    for (const m of ms) if (m !== ms[i]) transports[i].faults.block(m.id);
  };
  return { ms, leader, member: ms[i], local, writer, seen, handlers, cutOff, heal: () => transports[i].faults.heal() };
}

describe('follow', () => {
  it('resumes after an offline period with every missed change, in order, once', async () => {
    const t = await setUp();
    await t.writer.put('f/a').value('1');
    await waitFor('applied', () => t.member.currentRevision === t.leader.currentRevision);
    const following = await t.local.follow('f/', t.handlers);
    expect(t.seen.snapshots).toEqual([{ values: { 'f/a': '1' }, revision: 2 }]);
    t.cutOff();
    for (let i = 0; i < 10; i++) await t.writer.put(`f/${i % 3}`).value(`v${i}`);
    await t.writer.put('g/outside').value('x');
    expect(t.seen.events).toEqual([]);
    t.heal();
    await waitFor('ten events', () => t.seen.events.length >= 10 || undefined, 15_000);
    expect(t.seen.events).toEqual(Array.from({ length: 10 }, (_, i) => ({ key: `f/${i % 3}`, value: `v${i}`, revision: 3 + i })));
    expect(following.lastRevision).toBe(12);
    expect(t.seen.resets).toEqual([]);
    await following.close();
  });

  it('resumes from a saved revision, and reports a compacted gap with a fresh snapshot', async () => {
    const t = await setUp();
    for (let i = 0; i < 5; i++) await t.writer.put(`f/${i}`).value(`a${i}`);
    await waitFor('applied', () => t.member.currentRevision === t.leader.currentRevision);
    // Resumed from revision 4 (as an app that saved it): the changes after it, no snapshot.
    const following = await t.local.follow('f/', t.handlers, { fromRevision: 4 });
    await waitFor('events after 4', () => t.seen.events.length >= 2 || undefined);
    expect(t.seen.events.map((e) => e.revision)).toEqual([5, 6]);
    expect(t.seen.snapshots).toEqual([]);

    t.cutOff();
    // A compaction, then enough entries that the leader's next snapshot holds it and its log no
    // longer has what the follower lacks: the follower catches up from that snapshot.
    for (let i = 0; i < 40; i++) await t.writer.put(`f/${i % 4}`).value(`b${i}`);
    await t.writer.compact(t.leader.currentRevision);
    const compactedAt = t.leader.status().applied;
    for (let i = 40; i < 70; i++) await t.writer.put(`f/${i % 4}`).value(`b${i}`);
    await waitFor('the leader snapshotted past the compaction', () => t.leader.status().applied > compactedAt + 20 || undefined);
    t.heal();
    await waitFor('a reset and a fresh snapshot', () => t.seen.snapshots.length === 1 || undefined, 20_000);
    expect(t.seen.resets).toEqual([6]);
    const expected = { 'f/0': 'b68', 'f/1': 'b69', 'f/2': 'b66', 'f/3': 'b67', 'f/4': 'a4' };
    // The fresh snapshot is at the revision the member had restored; the changes after it follow.
    await waitFor('caught up', () => following.lastRevision === t.leader.currentRevision || undefined);
    const snap = t.seen.snapshots[0];
    const after = t.seen.events.filter((e) => e.revision > snap.revision);
    expect(after.map((e) => e.revision)).toEqual(after.map((_, k) => snap.revision + 1 + k));
    expect({ ...snap.values, ...Object.fromEntries(after.map((e) => [e.key, e.value])) }).toEqual(expected);
    // And it goes on from there.
    await t.writer.put('f/9').value('after');
    await waitFor('the next event', () => t.seen.events.at(-1)?.value === 'after' || undefined);
    expect(t.seen.events.at(-1)!.revision).toBe(t.leader.currentRevision);
    await following.close();
  });
});
