// The simulator's building blocks behave as the documentation says: if these were wrong, the
// checkers would be checking a different system than the one described.

import { describe, expect, it } from 'vitest';
import { Prng } from './prng.ts';
import { EventQueue } from './event-queue.ts';
import { SimStorage } from './storage.ts';
import { SimNetwork } from './network.ts';
import { KvStateMachine, encodeOpProposal, type OpProposal } from './state-machine.ts';
import { EntryType, MessageType, emptyConfState, newMessage } from '../../src/raft/types.ts';
import type { Entry, Message, Snapshot } from '../../src/raft/types.ts';

const entry = (index: number, term: number, text = `e${index}`): Entry => ({
  index,
  term,
  type: EntryType.Normal,
  data: new TextEncoder().encode(text),
});
const snapshot = (index: number, term: number): Snapshot => ({
  metadata: { index, term, confState: { ...emptyConfState(), voters: [1, 2, 3] } },
  data: new Uint8Array(0),
});

describe('Prng', () => {
  it('replays a seed and keeps sub-streams independent of each other', () => {
    const a = Prng.derive(7, 'network');
    const b = Prng.derive(7, 'network');
    const seqA = Array.from({ length: 8 }, () => a.nextU32());
    expect(Array.from({ length: 8 }, () => b.nextU32())).toEqual(seqA);
    // Drawing from another stream does not shift this one.
    const c = Prng.derive(7, 'network');
    const other = Prng.derive(7, 'faults');
    other.nextU32();
    expect(Array.from({ length: 8 }, () => c.nextU32())).toEqual(seqA);
    expect(Prng.derive(8, 'network').nextU32()).not.toBe(seqA[0]);
  });

  it('stays in range', () => {
    const p = new Prng(1);
    for (let i = 0; i < 1000; i++) {
      const x = p.range(3, 5);
      expect(x >= 3 && x <= 5 && Number.isInteger(x)).toBe(true);
      const f = p.next();
      expect(f >= 0 && f < 1).toBe(true);
    }
    expect(() => p.int(0)).toThrow();
  });
});

describe('EventQueue', () => {
  it('orders by time, then by insertion', () => {
    const q = new EventQueue<string>();
    q.push(5, 'c');
    q.push(1, 'a');
    q.push(5, 'd');
    q.push(1, 'b');
    q.push(3, 'x');
    const out: string[] = [];
    for (let e = q.pop(); e; e = q.pop()) out.push(e.payload);
    expect(out).toEqual(['a', 'b', 'x', 'c', 'd']);
  });
});

describe('SimStorage', () => {
  it('replaces entries at the same or later indexes', () => {
    const s = new SimStorage();
    s.save({ hardState: { term: 1, vote: 1, commit: 0 }, entries: [entry(1, 1), entry(2, 1), entry(3, 1)], snapshot: null }, true);
    s.save({ hardState: null, entries: [entry(2, 2, 'new')], snapshot: null }, true);
    expect(s.lastIndex()).toBe(2);
    expect(s.term(2)).toBe(2);
    expect(s.entry(3)).toBeNull();
    expect(() => s.save({ hardState: null, entries: [entry(5, 2)], snapshot: null }, true)).toThrow(/log ends at 2/);
  });

  it('keeps entries after its own snapshot, and drops the whole log for a received one', () => {
    const own = new SimStorage();
    own.save({ hardState: { term: 1, vote: 0, commit: 3 }, entries: [entry(1, 1), entry(2, 1), entry(3, 1)], snapshot: null }, true);
    own.saveSnapshot(snapshot(2, 1));
    expect(own.snapshotIndex()).toBe(2);
    expect(own.entry(2)).toBeNull();
    expect(own.entry(3)?.term).toBe(1);

    const received = new SimStorage();
    received.save({ hardState: null, entries: [entry(1, 1), entry(2, 1), entry(3, 1)], snapshot: null }, true);
    received.save({ hardState: null, entries: [], snapshot: snapshot(2, 4) }, true);
    expect(received.lastIndex()).toBe(2);
    expect(received.term(2)).toBe(4);
    expect(received.persistedHardState().commit).toBe(2);
  });

  it('a crash may lose what was saved without a sync, never what was synced', () => {
    const s = new SimStorage();
    s.save({ hardState: { term: 2, vote: 1, commit: 0 }, entries: [entry(1, 2)], snapshot: null }, true);
    s.save({ hardState: { term: 2, vote: 1, commit: 1 }, entries: [], snapshot: null }, false);
    expect(s.crash(false)).toBe(false);
    expect(s.persistedHardState().commit).toBe(1);
    expect(s.crash(true)).toBe(true);
    expect(s.persistedHardState().commit).toBe(0);
    expect(s.entry(1)?.term).toBe(2);
    expect(s.crash(true)).toBe(false);
  });

  it('hands out copies: a restart cannot see later in-memory changes', () => {
    const s = new SimStorage();
    s.save({ hardState: { term: 2, vote: 1, commit: 1 }, entries: [entry(1, 2)], snapshot: null }, true);
    const loaded = s.load();
    s.save({ hardState: { term: 3, vote: 2, commit: 1 }, entries: [entry(2, 3)], snapshot: null }, true);
    expect(loaded.hardState.term).toBe(2);
    expect(loaded.entries.length).toBe(1);
  });
});

describe('SimNetwork', () => {
  it('loses what a cut link carried, even in flight, and copies what it delivers', () => {
    const delivered: { atMs: number; message: Message }[] = [];
    const drops: string[] = [];
    const net = new SimNetwork(
      new Prng(3),
      (atMs, _sender, message) => delivered.push({ atMs, message }),
      (kind, _m, reason) => {
        if (kind === 'drop') drops.push(reason);
      },
    );
    const m = newMessage(MessageType.App, 2, 1, 1);
    m.entries = [entry(1, 1)];
    net.send(0, 1, m);
    expect(delivered.length).toBe(1);
    expect(delivered[0].atMs).toBeGreaterThanOrEqual(1);
    expect(delivered[0].message).not.toBe(m);
    expect(delivered[0].message.entries[0].data).not.toBe(m.entries[0].data);

    net.block(1, 2);
    expect(net.admits(1, delivered[0].message)).toBe(false);
    net.send(0, 1, m);
    expect(delivered.length).toBe(1);
    // One direction only: the reverse link still works.
    net.send(0, 2, newMessage(MessageType.AppResp, 1, 2, 1));
    expect(delivered.length).toBe(2);
    expect(drops).toEqual(['link cut in flight', 'link cut']);
    net.healAll();
    expect(net.admits(1, delivered[0].message)).toBe(true);
  });
});

describe('KvStateMachine client operations', () => {
  const op = (id: number, input: OpProposal['input']) => encodeOpProposal({ id, input });

  it('applies put, delete and CAS through the MVCC store with etcd revisions, each operation once', () => {
    const sm = new KvStateMachine();
    expect(sm.apply(1, 1, op(1, { f: 'put', key: 'h/a', value: 'x' }))).toEqual({ id: 1, output: { f: 'put', revision: 2 } });
    // The same operation appended twice (a duplicated forward) takes effect once.
    expect(sm.apply(2, 1, op(1, { f: 'put', key: 'h/a', value: 'x' }))).toBeNull();
    expect(sm.apply(3, 1, op(2, { f: 'cas', key: 'h/a', expected: 'y', value: 'z' }))).toEqual({ id: 2, output: { f: 'cas', succeeded: false, value: 'x', revision: 2 } });
    expect(sm.apply(4, 1, op(3, { f: 'cas', key: 'h/a', expected: 'x', value: 'z' }))).toEqual({ id: 3, output: { f: 'cas', succeeded: true, value: null, revision: 3 } });
    expect(sm.apply(5, 1, op(4, { f: 'cas', key: 'h/b', expected: null, value: 'n' }))).toEqual({ id: 4, output: { f: 'cas', succeeded: true, value: null, revision: 4 } });
    expect(sm.apply(6, 1, op(5, { f: 'delete', key: 'h/a' }))).toEqual({ id: 5, output: { f: 'delete', deleted: 1, revision: 5 } });
    expect(sm.apply(7, 1, op(6, { f: 'delete', key: 'h/a' }))).toEqual({ id: 6, output: { f: 'delete', deleted: 0, revision: 5 } });
    expect(sm.read({ f: 'get', key: 'h/a' })).toEqual({ f: 'get', value: null, revision: 5 });
    expect(sm.read({ f: 'range', prefix: 'h/' })).toEqual({ f: 'range', kvs: { 'h/b': 'n' }, revision: 5 });
    // A corrupted payload is not an operation: it only advances the index.
    expect(sm.apply(8, 1, `${op(7, { f: 'put', key: 'h/c', value: 'v' })}-corrupt`)).toBeNull();
  });

  it('remembers applied operations across a snapshot', () => {
    const sm = new KvStateMachine();
    sm.apply(1, 1, op(1, { f: 'put', key: 'h/a', value: 'x' }));
    const restored = new KvStateMachine();
    restored.restore(sm.snapshotData(), 1);
    expect(restored.apply(2, 1, op(1, { f: 'put', key: 'h/a', value: 'x' }))).toBeNull();
    expect(restored.read({ f: 'get', key: 'h/a' })).toEqual({ f: 'get', value: 'x', revision: 2 });
  });
});
