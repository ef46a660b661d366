// One simulated machine hosting the real member: a KvMember (src/server/kv-member.ts, and the
// Member driver under it) with its AutoMembership, started over the simulated seams of
// seams.ts. The disk outlives crashes; everything else is one incarnation of the process. A
// crash abandons that incarnation mid-flight: its timers stop, its transport goes dead, and its
// pending disk writes never complete — their promises never settle, as a killed process's
// never do — so nothing it did after its last completed write survives.
//
// The checkers see the member from outside, at the seams: every write as it lands on the disk
// (hard states, entries, snapshots), every role change, every applied membership change.

import { KvMember } from '../../src/server/kv-member.ts';
import { AutoMembership } from '../../src/server/auto-membership.ts';
import type { MemberRecord } from '../../src/server/member-table.ts';
import type { RaftConfig } from '../../src/raft/config.ts';
import { StateRole, emptyConfState } from '../../src/raft/types.ts';
import type { ConfState, MemberId } from '../../src/raft/types.ts';
import type { ConfChange } from '../../src/raft/confchange-types.ts';
import { MemoryBackend } from '../../src/backend/memory.ts';
import { SimBackend, SimClock, SimDisk, SimPreparingStorage, SimStorage, SimTransport, type ClockHost, type LandedSave, type SimTimer, type TransportHost } from './seams.ts';
import { SimFailure, confMembers, describeConfState } from './checker.ts';
import type { SafetyChecker } from './checker.ts';
import type { Trace } from './trace.ts';

/** A hidden browser tab's timer period: what a throttled member's timers fire at. */
export const throttledTickIntervalMs = 1000;

export interface HostEnvironment {
  nowMs(): number;
  trace: Trace;
  checker: SafetyChecker;
  transportHost: TransportHost;
  scheduleTimer(atMs: number, host: SimHost, incarnation: number, timer: SimTimer): void;
  /** Resolves after `ms` virtual ms unless `host` crashed (or restarted) meanwhile; held while it is frozen. */
  after(host: SimHost, incarnation: number, ms: number): Promise<void>;
  /** How long the member's next disk write takes at this virtual time. */
  diskLatencyMs(host: SimHost): number;
  /** How long the member's next backend commit takes to land. */
  backendLatencyMs(host: SimHost): number;
  /** A conf change applied on `by` took `removed` out of the configuration. */
  onRemoved(removed: MemberId[], by: MemberId): void;
  /** The member logged that it stopped for good (storage failed, or it refused its state). */
  onDied(host: SimHost, message: string): void;
  /** A checker failed inside the member's own promise chain: the simulation reports it. */
  fail(err: unknown): void;
}

export interface HostOptions {
  id: MemberId;
  /** The first membership, when the disk is empty; [] for a member added later. */
  peers: MemberId[];
  /** The member table before any snapshot carried one (etcd's --initial-cluster). */
  initialMembers: MemberRecord[];
  /** Whether this is a browser tab (a `webrtc://` member that joins and leaves on its own). */
  tab: boolean;
  tickMs: number;
  electionTicks: number;
  heartbeatTicks: number;
  snapshotEntries: number;
  snapshotKeepEntries: number;
  raft: Partial<Omit<RaftConfig, 'id' | 'random' | 'electionTicks' | 'heartbeatTicks'>>;
  /** Each timer period's offset from the nominal one (clock drift), in ms. */
  timerDriftMs: number;
  random: () => number;
  /** How long a tab may be unreachable before the leader removes it. */
  tabGraceMs: number;
  /** The tab vote policy the founders start the cluster with. */
  tabsMayOutvote: boolean;
  /**
   * The state machine's backend: `memory` commits at once and dies with the process; `async`
   * lands commits later (reads go through the backend and the MVCC write buffer) and dies with
   * the process; `persistent` lands them later and keeps what landed across crashes (LMDB's case).
   */
  backend: BackendMode;
  /** Sabotage `outbox-retries`: the state machine applies outbox retries again (OutboxSessions.forgetsRetries). */
  outboxForgetsRetries?: boolean;
}

export type BackendMode = 'memory' | 'async' | 'persistent';

export class SimHost {
  readonly id: MemberId;
  readonly disk = new SimDisk();
  /** With a persistent backend: what landed, across crashes. */
  private backendStore: MemoryBackend | null = null;
  kv: KvMember | null = null;
  auto: AutoMembership | null = null;
  private clock: SimClock | null = null;
  private transport: SimTransport | null = null;
  incarnation = 0;
  /** Permanently stopped: its removal from the configuration was applied (here or elsewhere). */
  removed = false;
  /** Until then its timers fire at most once a second, like a hidden browser tab's. */
  throttledUntilMs = 0;
  /** Until then the process is frozen (a GC pause, a suspended tab): no timers, no messages, no disk completions. */
  pausedUntilMs = 0;
  /** Configurations of snapshots received and not yet applied, by index (see onMembersChanged). */
  private readonly receivedSnapshotConf = new Map<number, ConfState>();
  /** The configuration as of the last applied change or snapshot (kept while down, for reports). */
  confState: ConfState = emptyConfState();
  role: StateRole = StateRole.Follower;
  /** Commit index this member can never go below: the highest it has persisted. */
  private commitFloor = 0;
  /** Index of the last entry whose commit the checkers were told about. */
  private committedChecked = 0;
  /** Told once when the running incarnation ends (a crash, a removal, the end of the run). */
  private readonly goneListeners = new Set<() => void>();

  constructor(
    readonly options: HostOptions,
    private readonly env: HostEnvironment,
  ) {
    this.id = options.id;
  }

  get tab(): boolean {
    return this.options.tab;
  }

  /** Up and serving (it may be frozen). */
  get running(): boolean {
    return this.kv !== null;
  }

  member(): KvMember {
    if (this.kv === null) throw new Error(`m${this.id} is not running`);
    return this.kv;
  }

  /** The running incarnation's clock (what a tab's code on this member would use). */
  clockOf(): SimClock {
    if (this.clock === null) throw new Error(`m${this.id} is not running`);
    return this.clock;
  }

  appliedIndex(): number {
    return this.kv === null ? 0 : this.kv.member.basicStatus().applied;
  }

  /** Starts (or restarts after a crash) from what the disk holds; resolves once the member serves. */
  async start(): Promise<void> {
    if (this.kv !== null) throw new Error(`m${this.id} is already running`);
    if (this.removed) throw new Error(`m${this.id} was removed and cannot start`);
    const incarnation = ++this.incarnation;
    const env = this.env;
    const o = this.options;
    const persisted = this.disk.load();
    this.role = StateRole.Follower;
    this.commitFloor = persisted.hardState.commit;
    // Entries a restarted member replays were committed: they must be the cluster's.
    for (const e of persisted.entries) if (e.index <= persisted.hardState.commit) env.checker.onCommitted(this.id, e, 'replayed from disk');
    this.committedChecked = Math.max(this.committedChecked, persisted.hardState.commit);
    const clockHost: ClockHost = {
      nowMs: () => env.nowMs(),
      scheduleTimer: (atMs, timer) => env.scheduleTimer(atMs, this, incarnation, timer),
      periodMs: (intervalMs) => (env.nowMs() < this.throttledUntilMs ? Math.max(intervalMs, throttledTickIntervalMs) : Math.max(1, intervalMs + o.timerDriftMs)),
    };
    const clock = new SimClock(clockHost);
    const transport = new SimTransport(this.id, env.transportHost);
    // A tab's storage (IndexedDB) writes its snapshots whole; a Node member's (fs-wal) prepares them.
    const storage = new (o.tab ? SimStorage : SimPreparingStorage)(this.disk, {
      writeLatencyMs: () => env.diskLatencyMs(this),
      after: (ms) => env.after(this, incarnation, ms),
      landed: (save) => this.onLanded(save),
    });
    this.clock = clock;
    this.transport = transport;
    let backend: SimBackend | undefined;
    if (o.backend !== 'memory') {
      const landed = o.backend === 'persistent' ? (this.backendStore ??= new MemoryBackend()) : new MemoryBackend();
      backend = new SimBackend(landed, o.backend === 'persistent', {
        nowMs: () => env.nowMs(),
        commitLatencyMs: () => env.backendLatencyMs(this),
        after: (ms) => env.after(this, incarnation, ms),
      });
    }
    env.trace.add(
      env.nowMs(),
      incarnation === 1 ? 'member' : 'restart',
      this.id,
      `incarnation ${incarnation}${o.tab ? ' (tab)' : ''}: backend at ${this.backendStore?.appliedIndex ?? 0}, snapshot ${this.disk.snapshotIndex()}, log to ${this.disk.lastIndex()}, ` +
        `hard state t${persisted.hardState.term} vote ${persisted.hardState.vote} commit ${persisted.hardState.commit}`,
    );
    const kv = await KvMember.start({
      id: this.id,
      peers: o.peers,
      clock,
      storage,
      transport,
      random: o.random,
      tickMs: o.tickMs,
      electionTicks: o.electionTicks,
      heartbeatTicks: o.heartbeatTicks,
      snapshotEntries: o.snapshotEntries,
      snapshotKeepEntries: o.snapshotKeepEntries,
      // A simulated store streams in a few frames; the Node default (10 s, sized for stores of
      // gigabytes on a real network) would leave a member whose stream lost a frame lagging far
      // past the liveness window, and a lost "adopted" acknowledgement is waited for six times as long (seed 183). Two election timeouts still exercise the idle failure path.
      snapshotStreamIdleMs: 2 * o.electionTicks * o.tickMs,
      raft: o.raft,
      // As Node's setImmediate: what a Ready defers (Member.handleReady) leaves in an event of its
      // own at the same virtual time, after every reaction of the event that produced it, and
      // never if this incarnation crashed first.
      afterTurn: (fn) => void env.after(this, incarnation, 0).then(fn),
      initialMembers: o.initialMembers,
      mvcc: backend ? { backend } : undefined,
      outboxForgetsRetries: o.outboxForgetsRetries,
      log: (level, msg) => {
        if (level === 'debug') return;
        if (/ stopped: /.test(msg)) env.onDied(this, msg);
        env.trace.add(env.nowMs(), 'log', this.id, level === 'warn' ? `WARN ${msg}` : msg);
      },
    });
    if (this.incarnation !== incarnation) return;
    this.kv = kv;
    const status = kv.status();
    if (status.commit < persisted.hardState.commit) {
      throw new SimFailure('commit regression', `m${this.id} restarted with commit ${status.commit} but had persisted commit ${persisted.hardState.commit}`);
    }
    this.confState = status.confState;
    const guarded = (fn: () => void) => {
      try {
        fn();
      } catch (err) {
        env.fail(err);
      }
    };
    kv.onChange((e) => guarded(() => this.onChange(e.role, e.term, e.leader)));
    kv.onMembersChanged((index) => guarded(() => this.onMembersChanged(index)));
    this.auto = new AutoMembership(kv, {
      clock,
      tabGraceMs: o.tabGraceMs,
      tabsMayOutvote: o.peers.length > 0 ? o.tabsMayOutvote : undefined,
      log: (level, msg) => env.trace.add(env.nowMs(), 'log', this.id, `auto: ${level === 'warn' ? 'WARN ' : ''}${msg}`),
    });
  }

  /** The process dies: nothing it had not written survives, and with `loseUnsynced` nothing it had not synced. */
  crash(reason: string, loseUnsynced = false): void {
    if (this.kv === null) return;
    this.abandon();
    const lost = this.disk.crash(loseUnsynced);
    this.commitFloor = Math.min(this.commitFloor, this.disk.persistedHardState().commit);
    this.env.trace.add(this.env.nowMs(), 'crash', this.id, lost ? `${reason}; unsynced writes lost` : reason);
  }

  /** Removed from the configuration: a clean stop, for good. */
  async retire(): Promise<void> {
    if (this.removed) return;
    this.removed = true;
    const kv = this.kv;
    if (kv === null) return;
    this.auto?.stop();
    this.env.trace.add(this.env.nowMs(), 'crash', this.id, 'stopped: removed from the configuration');
    this.abandon();
    await kv.stop();
  }

  /**
   * Calls `fn` once when the running incarnation ends: clients of the member hear that their
   * connection broke, as a socket's close tells them, instead of polling for it. Returns the
   * unsubscribe.
   */
  onGone(fn: () => void): () => void {
    if (this.kv === null) throw new Error(`m${this.id} is not running`);
    this.goneListeners.add(fn);
    return () => this.goneListeners.delete(fn);
  }

  /** The process is gone (a crash, or the end of the run): timers, transport and pending writes with it. */
  abandon(): void {
    const gone = [...this.goneListeners];
    this.goneListeners.clear();
    for (const fn of gone) fn();
    this.auto?.stop();
    this.clock?.stop();
    this.transport?.kill();
    this.kv = null;
    this.auto = null;
    this.clock = null;
    this.transport = null;
    this.role = StateRole.Follower;
    // A new incarnation number makes every event of the old process (timers, disk completions) stale.
    this.incarnation++;
  }

  /** The network hands over a message (dropped if the process is not up). */
  deliver(m: Parameters<SimTransport['deliver']>[0]): boolean {
    if (this.transport === null || !this.transport.open) return false;
    this.transport.deliver(m);
    return true;
  }

  /** What became of a frame this member sent (the sender's current incarnation hears it). */
  report(r: Parameters<SimTransport['report']>[0]): void {
    if (this.kv !== null && !this.kv.isStopped()) this.transport?.report(r);
  }

  /** Runs a due timer of incarnation `incarnation`. */
  fireTimer(incarnation: number, timer: SimTimer): void {
    if (incarnation !== this.incarnation || this.clock === null) return;
    this.clock.fire(timer);
  }

  // ---- what the checkers see ----

  private onLanded(save: LandedSave): void {
    try {
      this.checkLanded(save);
    } catch (err) {
      this.env.fail(err);
      throw err;
    }
  }

  private checkLanded(save: LandedSave): void {
    const checker = this.env.checker;
    if (save.ownSnapshot !== null) {
      checker.onSnapshot(this.id, save.ownSnapshot.metadata.index, save.ownSnapshot.metadata.term, 'made');
      return;
    }
    const batch = save.batch!;
    if (batch.snapshot !== null) {
      checker.onSnapshot(this.id, batch.snapshot.metadata.index, batch.snapshot.metadata.term, 'received');
      this.receivedSnapshotConf.set(batch.snapshot.metadata.index, batch.snapshot.metadata.confState);
    }
    if (batch.entries.length > 0) checker.onPersisted(this.id, batch.entries, this.disk, this.commitFloor);
    const hs = batch.hardState;
    if (hs === null) return;
    checker.onHardState(this.id, hs);
    checker.onCommit(this.id, hs.commit, this.commitFloor, hs.term);
    if (hs.commit > this.commitFloor) this.env.trace.add(this.env.nowMs(), 'commit', this.id, `commit ${this.commitFloor} -> ${hs.commit} (t${hs.term})`);
    this.commitFloor = Math.max(this.commitFloor, hs.commit);
    // Everything at or below the commit index is committed: every member's copy must agree.
    for (let index = Math.max(this.committedChecked, this.disk.snapshotIndex()) + 1; index <= hs.commit; index++) {
      const e = this.disk.entry(index);
      if (e) checker.onCommitted(this.id, e, 'committed');
    }
    this.committedChecked = Math.max(this.committedChecked, hs.commit);
  }

  private onChange(role: StateRole, term: number, lead: MemberId): void {
    if (role !== this.role) {
      this.env.trace.add(this.env.nowMs(), 'role', this.id, `${this.role} -> ${role} in term ${term}, lead ${lead}`);
      // The member emits changes after its Ready loop, so the leader's log is on the disk.
      if (role === StateRole.Leader) this.env.checker.onBecameLeader(this.id, term, this.disk);
    }
    this.role = role;
  }

  /** An applied membership change, member-table update or restored snapshot. */
  private onMembersChanged(index: number): void {
    const kv = this.kv;
    if (kv === null) return;
    const before = this.confState;
    // A restored snapshot's configuration is the one in its metadata. Raft's own may be newer:
    // a second snapshot can be restored in Raft while the first is still being applied (seed
    // 359: a tab got snapshots at 1 and 77 back to back, and applying 1 saw 77's learners).
    const fromSnapshot = this.receivedSnapshotConf.get(index);
    for (const i of [...this.receivedSnapshotConf.keys()]) if (i <= index) this.receivedSnapshotConf.delete(i);
    const cs = fromSnapshot ?? kv.status().confState;
    this.confState = cs;
    this.env.checker.onConfState(this.id, index, cs);
    const after = confMembers(cs);
    const removed = confMembers(before).filter((id) => !after.includes(id));
    if (describeConfState(before) !== describeConfState(cs)) {
      this.env.trace.add(this.env.nowMs(), 'conf-change', this.id, `applied at ${index}: ${describeConfState(cs)}`);
    }
    if (removed.length > 0) this.env.onRemoved(removed, this.id);
  }
}

export function describeConfChange(cc: ConfChange): string {
  if (cc.changes.length === 0) return 'leave-joint';
  const names = ['add', 'remove', 'add-learner'];
  const kind = ['auto', 'joint-implicit', 'joint-explicit'][cc.transition];
  return `${kind}(${cc.changes.map((c) => `${names[c.type]} m${c.memberId}`).join(', ')})`;
}
