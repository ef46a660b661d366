// The compliance suite every transport adapter runs in its own runtime. It asserts only what
// the Transport seam promises: without faults, every message sent to a known peer arrives,
// intact; local message types never leave a member; the fault switch drops per peer and
// direction until healed; close() stops delivery and may be called again. It does not
// assert ordering. Transports bound their queues, so senders here keep at most
// `windowMessages` undelivered, as Raft's inflight window does.
// Runtime-agnostic: no node:* imports, so a browser runner can run it too.

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EntryType, MessageType, newMessage, type MemberId, type Message } from '../../src/raft/types.ts';
import type { Transport } from '../../src/seams.ts';
import { waitFor } from '../helpers/wait.ts';

export interface TransportCluster {
  /** One transport per id, each able to reach the others, not yet started. */
  transports: Map<MemberId, Transport>;
  /** Closes every transport (and anything the factory made). */
  close(): Promise<void>;
}

export interface ComplianceOptions {
  /** The transport documents that it may deliver a message more than once. */
  mayDuplicate?: boolean;
  /** Messages a sender keeps undelivered at most. */
  windowMessages?: number;
  /** How long to wait before concluding that a dropped message will not arrive. */
  quietMs?: number;
  /** Per-test timeout. */
  testTimeoutMs?: number;
}

const ids: MemberId[] = [1, 2, 3];

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));


/** A heartbeat tagged with `tag` (in `commit`) and `seq` (in `index`), so each one is identifiable. */
function tagged(from: MemberId, to: MemberId, tag: number, seq = 0): Message {
  const m = newMessage(MessageType.Heartbeat, to, from, 1);
  m.commit = tag;
  m.index = seq;
  return m;
}

/** An append whose fields and payload all derive from `seq`, so corruption is detectable. */
function append(from: MemberId, to: MemberId, seq: number): Message {
  const m = newMessage(MessageType.App, to, from, 7);
  m.index = seq;
  m.logTerm = 7;
  m.commit = seq;
  const data = new Uint8Array(16 + (seq % 64));
  for (let i = 0; i < data.length; i++) data[i] = (seq * 31 + i) & 0xff;
  m.entries = [{ term: 7, index: seq + 1, type: EntryType.Normal, data }];
  m.context = seq % 3 === 0 ? new Uint8Array([seq & 0xff, (seq >> 8) & 0xff]) : null;
  return m;
}

/** Deterministic pseudo-random bytes (xorshift32). */
function patternBytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed | 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** Field-for-field equality of two appends, cheaper than a generic deep equal. */
function sameAppend(a: Message, b: Message): boolean {
  const ea = a.entries[0];
  const eb = b.entries[0];
  return (
    a.type === b.type && a.to === b.to && a.from === b.from && a.term === b.term && a.logTerm === b.logTerm && a.index === b.index &&
    a.commit === b.commit && a.reject === b.reject && a.rejectHint === b.rejectHint && a.snapshot === null && a.entries.length === 1 &&
    ea.term === eb.term && ea.index === eb.index && ea.type === eb.type && firstDifference(ea.data, eb.data) === -1 &&
    (a.context === null ? b.context === null : b.context !== null && firstDifference(a.context, b.context) === -1)
  );
}

function firstDifference(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

export function transportCompliance(name: string, makeCluster: (ids: MemberId[]) => Promise<TransportCluster>, options: ComplianceOptions = {}): void {
  const windowMessages = options.windowMessages ?? 1000;
  const quietMs = options.quietMs ?? 150;
  const timeout = options.testTimeoutMs ?? 30_000;
  /** A sender whose window has not moved for this long has lost messages. */
  const stallMs = 10_000;

  describe(`transport compliance: ${name}`, () => {
    let cluster: TransportCluster;
    let t: Map<MemberId, Transport>;
    /** Everything each member received, in arrival order. */
    let inbox: Map<MemberId, Message[]>;
    /** Appends received per `from->to` link. */
    let appendsArrived: Map<string, number>;

    const got = (id: MemberId, pred: (m: Message) => boolean) => inbox.get(id)!.filter(pred);
    const gotTag = (id: MemberId, from: MemberId, tag: number) => got(id, (m) => m.from === from && m.commit === tag && m.type === MessageType.Heartbeat);
    let nextTag = 1;
    const freshTag = () => nextTag++;

    /** Sends one tagged message along every link and waits until all arrived: connections are up. */
    async function warmUp(): Promise<void> {
      const tag = freshTag();
      for (const from of ids) t.get(from)!.send(ids.filter((to) => to !== from).map((to) => tagged(from, to, tag)));
      await waitFor('every link to carry a message', () => ids.every((to) => ids.every((from) => from === to || gotTag(to, from, tag).length > 0)));
    }

    /** Sends a tagged message from → to and waits for it. */
    async function expectLink(from: MemberId, to: MemberId): Promise<void> {
      const tag = freshTag();
      t.get(from)!.send([tagged(from, to, tag)]);
      await waitFor(`a message ${from} -> ${to}`, () => gotTag(to, from, tag).length > 0);
    }

    beforeEach(async () => {
      cluster = await makeCluster(ids);
      t = cluster.transports;
      expect([...t.keys()].sort()).toEqual(ids);
      inbox = new Map(ids.map((id) => [id, []]));
      appendsArrived = new Map();
      for (const id of ids) {
        t.get(id)!.start((m) => {
          inbox.get(id)!.push(m);
          if (m.type === MessageType.App) appendsArrived.set(`${m.from}->${id}`, (appendsArrived.get(`${m.from}->${id}`) ?? 0) + 1);
        });
      }
    });

    afterEach(async () => {
      await cluster.close();
    });

    it('delivers messages between every pair of members, field for field', { timeout }, async () => {
      const sent: Message[] = [];
      for (const from of ids) {
        const out = ids.filter((to) => to !== from).map((to) => append(from, to, from * 10 + to));
        sent.push(...out);
        t.get(from)!.send(out);
      }
      await waitFor('6 appends', () => ids.every((id) => inbox.get(id)!.length === 2));
      for (const m of sent) expect(inbox.get(m.to)!.find((r) => r.from === m.from)).toEqual(m);
    });

    it('drops messages to unknown peers silently', { timeout }, async () => {
      const tag = freshTag();
      expect(() => t.get(1)!.send([tagged(1, 99, tag), tagged(1, 2, tag)])).not.toThrow();
      await waitFor('the message to a known peer', () => gotTag(2, 1, tag).length === 1);
      await sleep(quietMs);
      for (const id of ids) expect(got(id, (m) => m.to === 99)).toEqual([]);
    });

    it('refuses local message types', { timeout }, async () => {
      const local = [MessageType.Hup, MessageType.Beat, MessageType.Prop, MessageType.CheckQuorum, MessageType.SnapStatus, MessageType.Unreachable];
      expect(() => t.get(1)!.send(local.map((type) => newMessage(type, 2, 1, 1)))).not.toThrow();
      await expectLink(1, 2);
      await sleep(quietMs);
      expect(inbox.get(2)!.map((m) => m.type)).toEqual([MessageType.Heartbeat]);
    });

    it('fault switch: blocking out drops only 1 -> 2 until healed', { timeout }, async () => {
      await warmUp();
      const f = t.get(1)!.faults;
      f.block(2, 'out');
      expect([f.isBlocked(2, 'out'), f.isBlocked(2, 'in'), f.isBlocked(3, 'out')]).toEqual([true, false, false]);
      const tag = freshTag();
      t.get(1)!.send([tagged(1, 2, tag), tagged(1, 3, tag)]);
      await expectLink(2, 1); // the other direction still works: the partition is asymmetric
      await waitFor('1 -> 3', () => gotTag(3, 1, tag).length === 1);
      await sleep(quietMs);
      expect(gotTag(2, 1, tag)).toEqual([]);
      f.heal(2);
      expect(f.isBlocked(2, 'out')).toBe(false);
      await expectLink(1, 2);
      await sleep(quietMs);
      expect(gotTag(2, 1, tag)).toEqual([]); // dropped, not delayed
    });

    it('fault switch: blocking in drops only 2 -> 1 until healed', { timeout }, async () => {
      await warmUp();
      const f = t.get(1)!.faults;
      f.block(2, 'in');
      expect([f.isBlocked(2, 'in'), f.isBlocked(2, 'out')]).toEqual([true, false]);
      const tag = freshTag();
      t.get(2)!.send([tagged(2, 1, tag)]);
      t.get(3)!.send([tagged(3, 1, tag)]);
      await expectLink(1, 2);
      await waitFor('3 -> 1', () => gotTag(1, 3, tag).length === 1);
      await sleep(quietMs);
      expect(gotTag(1, 2, tag)).toEqual([]);
      f.heal(2);
      await expectLink(2, 1);
      await sleep(quietMs);
      expect(gotTag(1, 2, tag)).toEqual([]);
    });

    it('fault switch: blocking both ways isolates a member; heal() with no peer heals all', { timeout }, async () => {
      await warmUp();
      const f = t.get(3)!.faults;
      f.block(1);
      f.block(2);
      for (const p of [1, 2]) expect([f.isBlocked(p, 'in'), f.isBlocked(p, 'out')]).toEqual([true, true]);
      const tag = freshTag();
      t.get(3)!.send([tagged(3, 1, tag), tagged(3, 2, tag)]);
      t.get(1)!.send([tagged(1, 3, tag)]);
      t.get(2)!.send([tagged(2, 3, tag)]);
      await expectLink(1, 2);
      await expectLink(2, 1);
      await sleep(quietMs);
      expect([gotTag(1, 3, tag), gotTag(2, 3, tag), gotTag(3, 1, tag), gotTag(3, 2, tag)]).toEqual([[], [], [], []]);
      f.heal();
      expect([f.isBlocked(1, 'in'), f.isBlocked(2, 'out')]).toEqual([false, false]);
      await warmUp();
    });

    it('carries an 8 MiB snapshot byte-exact, with small messages around it', { timeout }, async () => {
      await warmUp();
      const snap = newMessage(MessageType.Snap, 2, 1, 5);
      const data = patternBytes(8 * 1024 * 1024, 42);
      snap.snapshot = {
        metadata: { index: 1234, term: 5, confState: { voters: [1, 2, 3], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false } },
        data,
      };
      const tag = freshTag();
      t.get(1)!.send([tagged(1, 2, tag, 1), snap, tagged(1, 2, tag, 2)]);
      await waitFor('the snapshot', () => got(2, (m) => m.type === MessageType.Snap).length > 0 && gotTag(2, 1, tag).length === 2);
      const received = got(2, (m) => m.type === MessageType.Snap);
      expect(received.length).toBe(1);
      const r = received[0];
      expect({ ...r, snapshot: { ...r.snapshot!, data: null } }).toEqual({ ...snap, snapshot: { ...snap.snapshot, data: null } });
      expect(r.snapshot!.data.length).toBe(data.length);
      expect(firstDifference(r.snapshot!.data, data)).toBe(-1);
    });

    it('delivers 10k messages per sender, intact and without duplicates', { timeout }, async () => {
      const count = 10_000;
      const senders: [MemberId, MemberId][] = [
        [1, 2],
        [3, 2],
        [2, 1],
      ];
      const arrived = (from: MemberId, to: MemberId) => appendsArrived.get(`${from}->${to}`) ?? 0;
      await Promise.all(
        senders.map(async ([from, to]) => {
          let sent = 0;
          let progressMs = Date.now();
          let lastArrived = 0;
          while (sent < count) {
            if (sent - arrived(from, to) >= windowMessages) {
              if (arrived(from, to) !== lastArrived) {
                lastArrived = arrived(from, to);
                progressMs = Date.now();
              } else if (Date.now() - progressMs > stallMs) {
                throw new Error(`${from} -> ${to}: ${lastArrived} of ${sent} sent arrived, none in the last ${stallMs} ms`);
              }
              await sleep(1);
              continue;
            }
            const batch: Message[] = [];
            const end = Math.min(count, sent + 100, arrived(from, to) + windowMessages);
            for (; sent < end; sent++) batch.push(append(from, to, sent));
            t.get(from)!.send(batch);
            await sleep(0);
          }
          await waitFor(`all ${count} messages ${from} -> ${to}`, () => arrived(from, to) >= count, stallMs);
        }),
      );
      await sleep(quietMs);
      for (const [from, to] of senders) {
        const msgs = got(to, (m) => m.from === from && m.type === MessageType.App);
        const copies = new Uint32Array(count);
        const corrupt = msgs.filter((m) => !(m.index < count && sameAppend(m, append(from, to, m.index))));
        expect(corrupt.slice(0, 3)).toEqual([]);
        for (const m of msgs) copies[m.index]++;
        expect(copies.indexOf(0), `first message ${from} -> ${to} missing`).toBe(-1);
        if (!options.mayDuplicate) expect(msgs.length, `messages ${from} -> ${to}`).toBe(count);
      }
    });

    it('close() stops delivery both ways, leaves the others working and is idempotent', { timeout }, async () => {
      await warmUp();
      await t.get(3)!.close();
      const tag = freshTag();
      expect(() => t.get(1)!.send([tagged(1, 3, tag)])).not.toThrow();
      expect(() => t.get(3)!.send([tagged(3, 1, tag), tagged(3, 2, tag)])).not.toThrow();
      await expectLink(1, 2);
      await expectLink(2, 1);
      await sleep(quietMs);
      expect([gotTag(3, 1, tag), gotTag(1, 3, tag), gotTag(2, 3, tag)]).toEqual([[], [], []]);
      await t.get(3)!.close();
    });
  });
}
