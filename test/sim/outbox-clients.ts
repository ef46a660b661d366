// Offline-outbox clients in the simulator (issue 14, docs/offline.md): each runs the real outbox
// (src/client/outbox.ts, the code a tab runs) on a simulated member, over a store in memory
// that outlives the member (the tab's IndexedDB). Clients queue guarded writes whether their
// member is online or not; the simulation cuts their member off from every peer now and then,
// crashes it (a fault, or right after it applied an outbox batch and before the client heard
// the answer), and the client reopens its outbox on the member when it is back, or on another
// running member, as another tab of the origin would, and the drain proposes what is pending
// again. All choices come from the `outbox` stream, so a seed replays exactly.
//
// At the end every entry is judged against the put history of a member that applied the most:
// a committed entry's unique value is there once, at the revision reported, and its guard held
// just before; a conflict's value is not there, its guard failed at the revision reported and
// `current` holds the values there; a pending entry's value is there at most once. The
// committed entries, and the pending ones that were applied, join the clients' history for the
// linearizability, watch and durability checkers.

import type { HistoryOp } from '../check/history.ts';
import { prefixRange } from '../../src/client/bytes.ts';
import { Outbox, type OutboxMember } from '../../src/client/outbox.ts';
import { MemoryOutboxStore, SingleOutboxPeers } from '../helpers/memory-outbox.ts';
import { EventType } from '../../src/mvcc/types.ts';
import type { MemberId } from '../../src/raft/types.ts';
import { ConnectivityWatch } from '../../src/server/connectivity.ts';
import { MemberError } from '../../src/server/member.ts';
import { SimFailure } from './checker.ts';
import type { SimHost } from './host.ts';
import type { Prng } from './prng.ts';
import { decodeText, encodeText } from './text.ts';

/** The outbox clients write the history clients' keys, so their writes and everyone else's interleave. */
const keyPrefix = 'h/';
const keysMax = 6;
const clientsMin = 1;
const clientsMax = 2;
/** Time between a client's writes. */
const writeGapMsMin = 40;
const writeGapMsMax = 400;
/**
 * How often clients look at their member: offline for `offlineMoveMs`, or no outbox open (no
 * member was running). A crash or removal of the member tells its client at once (SimHost.onGone).
 */
const pollMs = 250;
/**
 * A client whose member has been offline this long moves to another member, as the app would
 * open in another tab (a member removed from the configuration stays offline for good).
 */
const offlineMoveMs = 3000;
/**
 * How often a client's member samples its connectivity besides every Raft change it sees: the
 * browser member's status interval (`statusIntervalMs`). A leader lost by silence (no Raft change)
 * shows within this of the election timeout.
 */
const connectivitySampleMs = 250;
/** Chance that an outbox batch's proposal is followed by a crash of its member before the client hears the answer. */
const crashAfterApplyChance = 0.08;
/** History op ids of outbox entries start here (the recorder's count up from 1). */
const opIdBase = 1_000_000;
/** History client numbers of outbox clients start here (the recorder's are below 100, its watchers' 100+). */
const clientNumberBase = 200;

export type OutboxEvent =
  | { kind: 'write'; client: number }
  | { kind: 'poll' }
  | { kind: 'gone'; client: number }
  | { kind: 'isolate'; client: number }
  | { kind: 'rejoin'; heal: () => void };

export interface OutboxClientsHost {
  nowMs(): number;
  /** Members a client may open its outbox on (running, not frozen), in creation order. */
  runningMembers(): SimHost[];
  schedule(atMs: number, event: OutboxEvent): void;
  trace(member: MemberId, text: string): void;
  /** Whether the fault phase is over (no more crashes or isolations). */
  healed(): boolean;
  /** Crashes `host` as a fault does, its restart scheduled. */
  crash(host: SimHost, reason: string): void;
  /** Cuts `member` off from every other member both ways; returns what heals exactly those links. */
  isolate(member: MemberId): () => void;
}

export interface OutboxStats {
  queued: number;
  committed: number;
  conflicts: number;
  /** Still pending at the end (their outcome unknown to the client). */
  pending: number;
  /** Members crashed between applying an outbox batch and the client hearing it. */
  crashesAfterApply: number;
  /** Entries whose value was found applied more than once (always 0, or the run fails). */
  duplicates: number;
}

interface Connection {
  host: SimHost;
  incarnation: number;
  outbox: Outbox;
  watch: ConnectivityWatch;
  /** Virtual time the member was last seen online (or the outbox opened). */
  onlineAtMs: number;
  /** Stops listening for the member's end. */
  unwatchGone: () => void;
}

interface ClientState {
  index: number;
  store: MemoryOutboxStore;
  conn: Connection | null;
  /** Opening an outbox is asynchronous: writes wait for it. */
  opening: boolean;
  /** Values queued, by seq: the value each entry puts, and the key. */
  writes: Map<number, { key: string; value: string }>;
  /** Virtual time each entry was first proposed and not dropped (it cannot take effect before). */
  firstProposedAtMs: Map<number, number>;
  /** For entries a proposal applied and answered (to the wrapper, if not to the outbox): when it was proposed and answered. */
  appliedWithin: Map<number, { call: number; ret: number }>;
  /** Virtual time the client heard each entry's outcome. */
  settledAtMs: Map<number, number>;
  nextValue: number;
  isolated: boolean;
}

export class OutboxClients {
  private readonly clients: ClientState[] = [];
  private crashesAfterApply = 0;
  /** Stats of the last check (zeros until then). */
  stats: OutboxStats = { queued: 0, committed: 0, conflicts: 0, pending: 0, crashesAfterApply: 0, duplicates: 0 };

  constructor(
    private readonly host: OutboxClientsHost,
    private readonly prng: Prng,
    private readonly seed: number,
  ) {
    const count = prng.range(clientsMin, clientsMax);
    for (let c = 0; c < count; c++) {
      this.clients.push({
        index: c,
        store: new MemoryOutboxStore(`sim-${seed}-outbox-${c}`),
        conn: null,
        opening: false,
        writes: new Map(),
        firstProposedAtMs: new Map(),
        appliedWithin: new Map(),
        settledAtMs: new Map(),
        nextValue: 1,
        isolated: false,
      });
    }
  }

  start(): void {
    for (const c of this.clients) {
      this.host.schedule(this.host.nowMs() + this.prng.range(1, 100), { kind: 'write', client: c.index });
      this.host.schedule(this.host.nowMs() + this.prng.range(300, 3000), { kind: 'isolate', client: c.index });
    }
    this.host.schedule(this.host.nowMs() + pollMs, { kind: 'poll' });
  }

  handle(e: OutboxEvent): void {
    switch (e.kind) {
      case 'write':
        return this.write(this.clients[e.client]);
      case 'poll':
        for (const c of this.clients) this.poll(c);
        this.host.schedule(this.host.nowMs() + pollMs, { kind: 'poll' });
        return;
      case 'gone':
        return this.poll(this.clients[e.client]);
      case 'isolate':
        return this.isolate(this.clients[e.client]);
      case 'rejoin':
        return e.heal();
    }
  }

  // ---- connections ----

  private poll(c: ClientState): void {
    const conn = c.conn;
    const now = this.host.nowMs();
    const gone = conn !== null && (!conn.host.running || conn.host.incarnation !== conn.incarnation);
    if (conn !== null && !gone && conn.watch.current().state === 'online') conn.onlineAtMs = now;
    if (conn !== null && (gone || now - conn.onlineAtMs > offlineMoveMs)) {
      // The member (and with it the tab's outbox) is gone, or cut off for long; the store stays.
      conn.outbox.close();
      conn.watch.stop();
      conn.unwatchGone();
      c.conn = null;
      this.host.trace(conn.host.id, `outbox client ${c.index}: ${gone ? 'member gone' : `member offline for ${offlineMoveMs}ms`}, outbox closed`);
    }
    if (c.conn === null && !c.opening) this.open(c);
  }

  private open(c: ClientState): void {
    const members = this.host.runningMembers();
    if (members.length === 0) return;
    const host = this.prng.pick(members);
    const kv = host.member();
    const clock = host.clockOf();
    const incarnation = host.incarnation;
    const watch = new ConnectivityWatch(kv, clock, connectivitySampleMs);
    const member: OutboxMember = {
      range: (r) => kv.range(r),
      get currentRevision() {
        return kv.currentRevision;
      },
      outboxAppliedSeq: (client) => kv.outboxAppliedSeq(client),
      proposeOutboxBatch: async (batch) => {
        const calledAtMs = this.host.nowMs();
        const first = batch.entries.filter((e) => !c.firstProposedAtMs.has(e.seq)).map((e) => e.seq);
        for (const seq of first) c.firstProposedAtMs.set(seq, calledAtMs);
        const crash = !this.host.healed() && this.prng.chance(crashAfterApplyChance);
        let results: Awaited<ReturnType<OutboxMember['proposeOutboxBatch']>>;
        try {
          results = await kv.proposeOutboxBatch(batch);
        } catch (err) {
          // Dropped before it reached the log: it did not take effect, this time.
          if (err instanceof MemberError && err.code === 'proposal-dropped') for (const seq of first) c.firstProposedAtMs.delete(seq);
          throw err;
        }
        // Applied by this proposal: it took effect between the call and now, whoever hears it.
        batch.entries.forEach((e, k) => {
          if (!results[k].duplicate) c.appliedWithin.set(e.seq, { call: calledAtMs, ret: this.host.nowMs() });
        });
        // The answer may come after the heal, when the fault phase (and the liveness budget's
        // premise that every member stays up) has begun: the crash chosen before it is dropped.
        if (crash && !this.host.healed() && host.running && host.incarnation === incarnation) {
          this.crashesAfterApply++;
          const seqs = `${batch.entries[0].seq}…${batch.entries[batch.entries.length - 1].seq}`;
          this.host.crash(host, `fault: outbox client ${c.index}'s member crashes after applying entries ${seqs}, before the client hears it`);
          throw new Error('the member crashed');
        }
        return results;
      },
    };
    c.opening = true;
    void Outbox.open({
      kv: member,
      connectivity: () => watch.current(),
      onConnectivity: (fn) => watch.onChange(fn),
      clock,
      wallClockMs: () => this.host.nowMs(),
      store: c.store,
      peers: new SingleOutboxPeers(c.store),
      log: (level, msg) => this.host.trace(host.id, `outbox client ${c.index}: ${level === 'warn' ? 'WARN ' : ''}${msg}`),
    }).then((outbox) => {
      c.opening = false;
      outbox.onOutcome((o) => {
        if (!c.settledAtMs.has(o.seq)) c.settledAtMs.set(o.seq, this.host.nowMs());
      });
      if (!host.running || host.incarnation !== incarnation) {
        outbox.close();
        watch.stop();
        return;
      }
      // Its member's end reaches the client as an event of its own, after the crash that ended it.
      const unwatchGone = host.onGone(() => this.host.schedule(this.host.nowMs(), { kind: 'gone', client: c.index }));
      c.conn = { host, incarnation, outbox, watch, onlineAtMs: this.host.nowMs(), unwatchGone };
      this.host.trace(host.id, `outbox client ${c.index}: outbox opened (${watch.current().state})`);
    });
  }

  private isolate(c: ClientState): void {
    if (this.host.healed()) return;
    this.host.schedule(this.host.nowMs() + this.prng.range(500, 4000), { kind: 'isolate', client: c.index });
    const conn = c.conn;
    if (conn === null || c.isolated) return;
    const heal = this.host.isolate(conn.host.id);
    c.isolated = true;
    const ms = this.prng.range(200, 2500);
    this.host.trace(conn.host.id, `fault: outbox client ${c.index}'s member cut off from every peer for ${ms}ms`);
    this.host.schedule(this.host.nowMs() + ms, {
      kind: 'rejoin',
      heal: () => {
        c.isolated = false;
        heal();
        this.host.trace(conn.host.id, `outbox client ${c.index}'s member reconnected`);
      },
    });
  }

  // ---- writes ----

  /**
   * A guarded write, as an app makes one: read a key locally (pending writes laid over) and put
   * a value guarded by that read; sometimes guarded by another key, sometimes unguarded (a blind
   * put, whose retry nothing but the state machine's session would stop).
   */
  private write(c: ClientState): void {
    if (this.host.healed()) return;
    this.host.schedule(this.host.nowMs() + this.prng.range(writeGapMsMin, writeGapMsMax), { kind: 'write', client: c.index });
    const conn = c.conn;
    if (conn === null) return;
    const p = this.prng;
    const key = `${keyPrefix}${p.int(keysMax)}`;
    const value = `o${c.index}-${c.nextValue++}`;
    const roll = p.int(10);
    const readKey = roll < 6 ? key : roll < 8 ? `${keyPrefix}${p.int(keysMax)}` : null;
    const tx = conn.outbox.begin();
    void (async () => {
      if (readKey !== null) await tx.get(readKey);
      tx.put(key, value);
      const { seq } = await tx.commit();
      c.writes.set(seq, { key, value });
      this.host.trace(conn.host.id, `outbox client ${c.index}: queued #${seq} put(${key}, ${value})${readKey === null ? ' unguarded' : ` guarded by ${readKey}`}`);
    })().catch((err: Error) => this.host.trace(conn.host.id, `outbox client ${c.index}: write not queued: ${err.message}`));
  }

  // ---- the end ----

  /** Entries not settled yet, over every client. */
  pendingCount(): number {
    let n = 0;
    for (const c of this.clients) for (const r of c.store.allNow()) if (r.status === 'pending') n++;
    return n;
  }

  /** Stops every client (its store is what the checks read). */
  stop(): void {
    for (const c of this.clients) {
      c.conn?.outbox.close();
      c.conn?.watch.stop();
      c.conn?.unwatchGone();
      c.conn = null;
    }
  }

  /**
   * Judges every entry against `reference`'s put history (see the header; throws SimFailure)
   * and returns the history ops of the entries that may have taken effect.
   */
  check(reference: SimHost): HistoryOp[] {
    const mvcc = reference.member().mvcc;
    const puts = putsByValue(reference);
    const ops: HistoryOp[] = [];
    const stats: OutboxStats = { queued: 0, committed: 0, conflicts: 0, pending: 0, crashesAfterApply: this.crashesAfterApply, duplicates: 0 };
    for (const value of puts.keys()) if (puts.get(value)!.length > 1 && /^o\d+-/.test(value)) stats.duplicates++;
    for (const c of this.clients) {
      const records = c.store.allNow();
      const bySeq = new Map(records.map((r) => [r.seq, r]));
      for (const r of records) {
        stats.queued++;
        const w = c.writes.get(r.seq);
        if (w === undefined) throw new SimFailure('outbox', `client ${c.index} entry #${r.seq} is in the store but its write was never recorded`);
        const found = puts.get(w.value) ?? [];
        const where = `outbox client ${c.index} entry #${r.seq} put(${w.key}, ${w.value})`;
        if (found.length > 1) throw new SimFailure('outbox duplicate', `${where} ended ${r.status} but was applied ${found.length} times, at revisions ${found.map((f) => f.revision).join(', ')}`);
        const modAt = (key: Uint8Array, revision: number): number => mvcc.range({ key, revision, serializable: true }).kvs[0]?.modRevision ?? 0;
        const guards = r.reads.map((read) => {
          if ('modRevision' in read) return { key: read.key, modRevision: read.modRevision as number | null };
          const base = bySeq.get(read.afterSeq);
          return { key: read.key, modRevision: base?.status === 'committed' ? base.revision! : null };
        });
        const call = c.firstProposedAtMs.get(r.seq);
        // When it took effect, as tightly as known: the proposal that applied it, else from its first proposal.
        const within = c.appliedWithin.get(r.seq);
        const id = opIdBase + c.index * 100_000 + r.seq;
        const client = clientNumberBase + c.index;
        switch (r.status) {
          case 'committed': {
            stats.committed++;
            if (found.length !== 1 || found[0].revision !== r.revision || found[0].key !== w.key) {
              throw new SimFailure('outbox', `${where} reported committed at ${r.revision}, but the history holds it ${found.length === 0 ? 'nowhere' : `at ${found.map((f) => `${f.key}@${f.revision}`).join(', ')}`}`);
            }
            for (const g of guards) {
              if (g.modRevision === null || modAt(g.key, r.revision! - 1) !== g.modRevision) {
                throw new SimFailure('outbox', `${where} committed at ${r.revision} though its guard on ${decodeText(g.key)} (mod_revision ${g.modRevision}) did not hold`);
              }
            }
            if (call === undefined) throw new SimFailure('outbox', `${where} committed but was never proposed`);
            ops.push({ id, client, call: within?.call ?? call, ret: within?.ret ?? c.settledAtMs.get(r.seq) ?? this.host.nowMs(), input: { f: 'put', key: w.key, value: w.value }, output: { f: 'put', revision: r.revision! } });
            break;
          }
          case 'conflict': {
            stats.conflicts++;
            if (found.length !== 0) throw new SimFailure('outbox', `${where} reported a conflict at ${r.revision}, but it was applied at ${found[0].revision}`);
            if (guards.every((g) => g.modRevision !== null && modAt(g.key, r.revision!) === g.modRevision)) {
              throw new SimFailure('outbox', `${where} reported a conflict at ${r.revision}, but every key it guarded was unchanged there`);
            }
            const keys = new Map<string, Uint8Array>();
            for (const k of [...r.reads.map((x) => x.key), ...r.writes.map((x) => x.key)]) keys.set(decodeText(k), k);
            const expected = [...keys.values()].flatMap((key) => mvcc.range({ key, revision: r.revision!, serializable: true }).kvs);
            const describe = (kvs: { key: Uint8Array; value: Uint8Array; modRevision: number }[]) => kvs.map((kv) => `${decodeText(kv.key)}=${decodeText(kv.value)}@${kv.modRevision}`).join(', ');
            if (describe(r.current ?? []) !== describe(expected)) {
              throw new SimFailure('outbox', `${where} reported a conflict at ${r.revision} with current [${describe(r.current ?? [])}], but the values there were [${describe(expected)}]`);
            }
            break;
          }
          case 'pending':
            stats.pending++;
            // Its fate is known from the history, though the client never heard it: not applied
            // (the run is over, nothing applies any more) and it is left out; applied, and it took
            // effect at its revision between its first proposal and now. (As an operation of
            // unknown outcome, dozens of them on one key overran the WGL search, seed 23.)
            if (found.length === 1) {
              if (found[0].key !== w.key) throw new SimFailure('outbox', `${where} is pending, but its value was applied to ${found[0].key}`);
              if (call === undefined) throw new SimFailure('outbox', `${where} was applied at ${found[0].revision} but never proposed`);
              ops.push({ id, client, call: within?.call ?? call, ret: within?.ret ?? this.host.nowMs(), input: { f: 'put', key: w.key, value: w.value }, output: { f: 'put', revision: found[0].revision } });
            }
            break;
          default:
            throw new SimFailure('outbox', `${where} ended ${r.status}${r.message ? `: ${r.message}` : ''}`);
        }
      }
    }
    this.stats = stats;
    return ops;
  }
}

/** Every put under the clients' prefix in `host`'s MVCC history, by value: where and at which revision. */
function putsByValue(host: SimHost): Map<string, { key: string; revision: number }[]> {
  const mvcc = host.member().mvcc;
  const out = new Map<string, { key: string; revision: number }[]>();
  // A watch from revision 1, caught up in one step, reads the whole history (nothing compacts in the simulation).
  const stream = mvcc.watchHub.openStream({
    send: (r) => {
      for (const e of r.events) {
        if (e.type !== EventType.PUT) continue;
        const value = decodeText(e.kv.value);
        const list = out.get(value) ?? [];
        list.push({ key: decodeText(e.kv.key), revision: e.kv.modRevision });
        out.set(value, list);
      }
      return true;
    },
  });
  stream.watch({ ...prefixRange(encodeText(keyPrefix)), startRevision: 1 });
  mvcc.watchHub.syncWatchers(Number.MAX_SAFE_INTEGER);
  stream.close();
  return out;
}
