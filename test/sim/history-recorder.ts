// Simulated clients that record a history (test/check/history.ts) for the checkers: each
// client runs one operation at a time against a random member, through the member's own API
// (KvMember: put, deleteRange, txn, range) — writes are proposed there (a follower forwards
// them) and answered when that member applied them; linearizable reads wait for the member's
// ReadIndex barrier (or the lease, as the seed's Raft configuration says). Watchers stream the
// history's prefix from a member's real watch hub and resume on a random member from the
// revision after the last one they received when theirs crashes or restarts, and now and then
// for no reason. All times are virtual; every choice comes from the `history` stream, so a
// seed replays exactly.

import type { FinalState, HistoryOp, OpInput, OpOutput, WatchEvent, WatchRecord } from '../check/history.ts';
import { describeOp } from '../check/ops.ts';
import { prefixRange } from '../../src/client/bytes.ts';
import type { MvccStateMachine } from '../../src/mvcc/state-machine.ts';
import { CompareResult, CompareTarget, EventType, type WatchResponse } from '../../src/mvcc/types.ts';
import type { WatchStream } from '../../src/mvcc/watch-hub.ts';
import type { MemberId } from '../../src/raft/types.ts';
import { StateRole } from '../../src/raft/types.ts';
import { MemberError } from '../../src/server/member.ts';
import type { SimHost } from './host.ts';
import type { Prng } from './prng.ts';
import { decodeText, encodeText } from './text.ts';

/** Every key the clients touch starts with this; nothing else in the simulation writes under it. */
const historyPrefix = 'h/';
const keysMax = 6;
const clientsMin = 2;
const clientsMax = 4;
/** A client gives up on an operation after this (its outcome is then unknown, for a write). */
const opTimeoutMs = 500;
/** Think time between a client's operations. */
const thinkMsMin = 10;
const thinkMsMax = 80;
/**
 * How often watchers look at their connection: not connected (no member was running), or time to
 * reconnect for no reason. The end of their member tells them at once (SimHost.onGone).
 */
const watchPollMs = 250;
/** Chance per poll that a connected watcher reconnects for no reason (about every 2.5 s). */
const watchReconnectChance = 0.1;

export type HistoryEvent = { kind: 'client'; client: number } | { kind: 'timeout'; op: number } | { kind: 'watch-poll' } | { kind: 'watch-gone'; watcher: number };

/** What the recorder needs from the simulation. */
export interface RecorderHost {
  nowMs(): number;
  /** Members clients may talk to (running, not frozen), in creation order. */
  runningMembers(): SimHost[];
  schedule(atMs: number, event: HistoryEvent): void;
  trace(member: MemberId, text: string): void;
}

interface PendingOp {
  op: HistoryOp;
  member: MemberId;
}

interface Watcher {
  record: WatchRecord;
  /** The connection: member, incarnation and store the stream lives on; null when not connected. */
  conn: { member: SimHost; incarnation: number; mvcc: MvccStateMachine; stream: WatchStream; unwatchGone: () => void } | null;
  lastRevision: number;
}

export class HistoryRecorder {
  readonly history: HistoryOp[] = [];
  private readonly pending = new Map<number, PendingOp>();
  private readonly watchers: Watcher[] = [];
  private readonly clientCount: number;
  /** Per client, the last value it saw for each key: CAS uses it as the expected value. */
  private readonly lastSeen: Map<string, string | null>[] = [];
  private nextOpId = 1;
  /** Sabotage `stale-reads`: a follower answers a linearizable read from its own store, without ReadIndex. */
  staleReads = false;

  constructor(
    private readonly host: RecorderHost,
    private readonly prng: Prng,
  ) {
    this.clientCount = prng.range(clientsMin, clientsMax);
    for (let c = 0; c < this.clientCount; c++) this.lastSeen.push(new Map());
  }

  start(): void {
    for (let c = 0; c < this.clientCount; c++) this.host.schedule(this.host.nowMs() + this.prng.range(1, 50), { kind: 'client', client: c });
    const watcherCount = this.prng.range(1, 2);
    for (let w = 0; w < watcherCount; w++) {
      this.watchers.push({ record: { client: 100 + w, prefix: historyPrefix, startRevision: 1, responses: [] }, conn: null, lastRevision: 0 });
    }
    this.host.schedule(this.host.nowMs() + watchPollMs, { kind: 'watch-poll' });
  }

  get watchRecords(): WatchRecord[] {
    return this.watchers.map((w) => w.record);
  }

  handle(e: HistoryEvent): void {
    if (e.kind === 'client') this.issue(e.client);
    else if (e.kind === 'timeout') this.timeout(e.op);
    else if (e.kind === 'watch-gone') this.checkWatcher(this.watchers[e.watcher], false);
    else this.pollWatchers();
  }

  // ---- clients ----

  private issue(client: number): void {
    const members = this.host.runningMembers();
    if (members.length === 0) {
      this.host.schedule(this.host.nowMs() + opTimeoutMs / 10, { kind: 'client', client });
      return;
    }
    const member = this.prng.pick(members);
    const input = this.pickInput(client);
    const op: HistoryOp = { id: this.nextOpId++, client, call: this.host.nowMs(), ret: Infinity, input, output: null };
    this.pending.set(op.id, { op, member: member.id });
    const stale = this.staleReads && member.role !== StateRole.Leader;
    if (stale) this.host.trace(member.id, `SABOTAGE: read #${op.id} answered locally without ReadIndex`);
    let answer: Promise<OpOutput>;
    try {
      answer = request(member, input, stale);
    } catch (err) {
      answer = Promise.reject(err);
    }
    answer.then(
      (output) => this.complete(op.id, output),
      (err: Error) => this.failed(op.id, err),
    );
    this.host.schedule(this.host.nowMs() + opTimeoutMs, { kind: 'timeout', op: op.id });
  }

  private pickInput(client: number): OpInput {
    const p = this.prng;
    const key = `${historyPrefix}${p.int(keysMax)}`;
    const value = `c${client}-${this.nextOpId}`;
    const roll = p.int(100);
    if (roll < 25) return { f: 'get', key };
    if (roll < 35) return { f: 'range', prefix: historyPrefix };
    if (roll < 65) return { f: 'put', key, value };
    if (roll < 75) return { f: 'delete', key };
    const seen = this.lastSeen[client].get(key);
    return { f: 'cas', key, expected: seen === undefined || p.chance(0.2) ? null : seen, value };
  }

  private scheduleNext(client: number): void {
    this.host.schedule(this.host.nowMs() + this.prng.range(thinkMsMin, thinkMsMax), { kind: 'client', client });
  }

  private complete(id: number, output: OpOutput): void {
    const p = this.pending.get(id);
    // The client gave up on it already (its outcome stays unknown).
    if (p === undefined) return;
    this.pending.delete(id);
    p.op.ret = this.host.nowMs();
    p.op.output = output;
    this.history.push(p.op);
    this.host.trace(p.member, `answered ${describeOp(p.op)}`);
    this.remember(p.op.client, p.op.input, output);
    this.scheduleNext(p.op.client);
  }

  private remember(client: number, input: OpInput, output: OpOutput): void {
    const seen = this.lastSeen[client];
    if (output.f === 'get' && input.f === 'get') seen.set(input.key, output.value);
    else if (output.f === 'put' && input.f === 'put') seen.set(input.key, input.value);
    else if (output.f === 'delete' && input.f === 'delete') seen.set(input.key, null);
    else if (output.f === 'cas' && input.f === 'cas') seen.set(input.key, output.succeeded ? input.value : output.value);
    else if (output.f === 'range') for (const key of seen.keys()) seen.set(key, output.kvs[key] ?? null);
  }

  private timeout(id: number): void {
    const p = this.pending.get(id);
    if (p === undefined) return;
    this.giveUp(p);
    this.scheduleNext(p.op.client);
  }

  /** No answer: a write's outcome is unknown (it may still apply, or have applied); a read is left out. */
  private giveUp(p: PendingOp): void {
    this.pending.delete(p.op.id);
    if (p.op.input.f !== 'get' && p.op.input.f !== 'range') this.history.push(p.op);
  }

  /**
   * The member refused the request. A proposal the driver dropped before it reached the log
   * (etcd's "proposal dropped") or a request refused outright certainly failed: it is left out
   * of the history. A timeout or a stop leaves a write's outcome unknown (and so does the
   * "request timed out" of an entry a restarted member's store already held).
   */
  private failed(id: number, err: Error): void {
    const p = this.pending.get(id);
    if (p === undefined) return;
    const certain = !/timed out/.test(err.message) && (!(err instanceof MemberError) || err.code === 'proposal-dropped');
    this.host.trace(p.member, `#${id} failed: ${err.message}`);
    if (certain) this.pending.delete(id);
    else this.giveUp(p);
    this.scheduleNext(p.op.client);
  }

  // ---- watchers ----

  private pollWatchers(): void {
    for (const w of this.watchers) this.checkWatcher(w, true);
    this.host.schedule(this.host.nowMs() + watchPollMs, { kind: 'watch-poll' });
  }

  /** Reconnects `w` if its member is gone (or, at a poll, now and then for no reason), or connects it if it is not. */
  private checkWatcher(w: Watcher, poll: boolean): void {
    const c = w.conn;
    const broken = c !== null && (!c.member.running || c.member.incarnation !== c.incarnation);
    if (broken || (c !== null && poll && this.prng.chance(watchReconnectChance))) this.disconnect(w, broken ? 'connection lost' : 'client reconnects');
    // Watchers that are behind are caught up by the member itself, every tick.
    if (w.conn === null) this.connect(w);
  }

  private connect(w: Watcher): void {
    const members = this.host.runningMembers();
    if (members.length === 0) return;
    const member = this.prng.pick(members);
    const mvcc = member.member().mvcc;
    // Every watch response becomes one element of `responses`.
    const stream = mvcc.watchHub.openStream({ send: (r) => this.onWatchResponse(w, r) });
    // The member's end reaches the watcher as an event of its own, after the crash that ended it.
    const index = this.watchers.indexOf(w);
    const unwatchGone = member.onGone(() => this.host.schedule(this.host.nowMs(), { kind: 'watch-gone', watcher: index }));
    w.conn = { member, incarnation: member.incarnation, mvcc, stream, unwatchGone };
    stream.watch({ ...prefixRange(encodeText(historyPrefix)), startRevision: w.lastRevision + 1 });
    this.host.trace(member.id, `watcher ${w.record.client} connected from revision ${w.lastRevision + 1}`);
  }

  private disconnect(w: Watcher, why: string): void {
    w.conn!.stream.close();
    w.conn!.unwatchGone();
    this.host.trace(w.conn!.member.id, `watcher ${w.record.client} disconnected: ${why}`);
    w.conn = null;
  }

  private onWatchResponse(w: Watcher, r: WatchResponse): boolean {
    if (r.compactRevision > 0) {
      // No compaction runs in the simulation; should one ever, the watcher resumes after it.
      w.record.compactedAt = r.compactRevision;
      w.lastRevision = r.compactRevision - 1;
      return true;
    }
    if (r.events.length === 0) return true;
    const events: WatchEvent[] = r.events.map((e) => ({
      type: e.type === EventType.PUT ? 'put' : 'delete',
      key: decodeText(e.kv.key),
      value: e.type === EventType.PUT ? decodeText(e.kv.value) : null,
      modRevision: e.kv.modRevision,
    }));
    w.record.responses.push({ events });
    w.lastRevision = events[events.length - 1].modRevision;
    return true;
  }

  // ---- the end ----

  /** Operations still waiting at the end: a write's outcome is unknown; a read is left out. */
  finish(): void {
    for (const p of [...this.pending.values()]) this.giveUp(p);
  }

  /** The history's keys as `member` holds them now. */
  static finalState(member: SimHost): FinalState {
    const r = member.member().mvcc.range({ ...prefixRange(encodeText(historyPrefix)), serializable: true });
    const kvs: Record<string, string> = {};
    for (const kv of r.kvs) kvs[decodeText(kv.key)] = decodeText(kv.value);
    return { member: `m${member.id}`, revision: r.header.revision, kvs };
  }
}

/**
 * One client operation through the member's own API, as etcd's clients make it. `stale`: a
 * serializable read (the stale-reads sabotage), answered from the member's store as it is.
 */
async function request(member: SimHost, input: OpInput, stale: boolean): Promise<OpOutput> {
  const kv = member.member();
  const key = input.f === 'range' ? null : encodeText(input.key);
  switch (input.f) {
    case 'get': {
      const r = await kv.range({ key: key!, serializable: stale });
      const found = r.kvs[0];
      return { f: 'get', value: found === undefined ? null : decodeText(found.value), revision: r.header.revision };
    }
    case 'range': {
      const r = await kv.range({ ...prefixRange(encodeText(input.prefix)), serializable: stale });
      const kvs: Record<string, string> = {};
      for (const found of r.kvs) kvs[decodeText(found.key)] = decodeText(found.value);
      return { f: 'range', kvs, revision: r.header.revision };
    }
    case 'put': {
      const r = await kv.put({ key: key!, value: encodeText(input.value) });
      return { f: 'put', revision: r.header.revision };
    }
    case 'delete': {
      const r = await kv.deleteRange({ key: key! });
      return { f: 'delete', deleted: r.deleted, revision: r.header.revision };
    }
    case 'cas': {
      // etcd's idiom: compare the value (or, for "absent", version 0), put on success, get on failure.
      const compare =
        input.expected === null
          ? { result: CompareResult.EQUAL, target: CompareTarget.VERSION, key: key!, version: 0 }
          : { result: CompareResult.EQUAL, target: CompareTarget.VALUE, key: key!, value: encodeText(input.expected) };
      const r = await kv.txn({ compare: [compare], success: [{ requestPut: { key: key!, value: encodeText(input.value) } }], failure: [{ requestRange: { key: key! } }] });
      const read = !r.succeeded && 'responseRange' in r.responses[0] ? r.responses[0].responseRange.kvs[0] : undefined;
      return { f: 'cas', succeeded: r.succeeded, value: read === undefined ? null : decodeText(read.value), revision: r.header.revision };
    }
  }
}
