// One simulated member, driven the way the real member driver drives Raft: on every input
// (tick, message, proposal) it drains Ready batches — persist, then send, then apply, then
// advance — and it snapshots its state machine every so often to compact the log.

import { RawNode } from '../../src/raft/raw-node.ts';
import { decodeConfChange } from '../../src/raft/confchange.ts';
import type { RaftConfig } from '../../src/raft/config.ts';
import type { ConfChange } from '../../src/raft/confchange-types.ts';
import { EntryType, StateRole, emptyConfState } from '../../src/raft/types.ts';
import type { ConfState, Entry, MemberId, Message, Ready, ReadState } from '../../src/raft/types.ts';
import { SimStorage } from './storage.ts';
import { KvStateMachine, decodeText, type AppliedOp } from './state-machine.ts';
import { SimFailure, confMembers, describeConfState } from './checker.ts';
import type { SafetyChecker } from './checker.ts';
import type { Trace } from './trace.ts';

/** A hidden browser tab's timer period: what a throttled member ticks at. */
export const throttledTickIntervalMs = 1000;
/** Ticks one catch-up delivers at most: well past any election timeout or lease. */
const catchUpTicksMax = 64;
/** Ready batches one input may produce before we call it a livelock in the core. */
const readyBatchesPerInputMax = 64;

export interface MemberEnvironment {
  nowMs(): number;
  trace: Trace;
  checker: SafetyChecker;
  send(messages: Message[]): void;
  onReadState(member: SimMember, rs: ReadState): void;
  /** Call member.writeCompleted() at `atMs`, unless the member crashed in between. */
  scheduleWriteCompleted(member: SimMember, atMs: number): void;
  /**
   * Every entry this member applies, with its decoded payload ('' for non-normal entries) and,
   * for a client operation applied for the first time, the store's answer.
   */
  onApplied(member: SimMember, payload: string, op: AppliedOp | null): void;
  /** A conf change applied here took `removed` out of the configuration. */
  onRemoved(removed: MemberId[], by: MemberId): void;
}

export interface MemberOptions {
  id: MemberId;
  /** Voters to bootstrap with when the store is empty; [] for a member added later. */
  bootstrapPeers: MemberId[];
  raftConfig: RaftConfig;
  tickIntervalMs: number;
  snapshotEveryEntries: number;
  snapshotKeepEntries: number;
  /**
   * Catch up ticks from the clock before every input, instead of one tick per timer firing
   * (sim docs: core issue 5, the proposed driver fix). Off, lease-based reads go stale on a
   * throttled or frozen leader.
   */
  tickCatchUp: boolean;
  /** How long a Ready's write takes at virtual time `nowMs`; 0 is a synchronous disk. */
  diskLatencyMs: (nowMs: number) => number;
}

export class SimMember {
  readonly id: MemberId;
  readonly storage = new SimStorage();
  private node: RawNode | null = null;
  private sm = new KvStateMachine();
  /** The configuration as of the last applied conf change or snapshot. */
  confState: ConfState = emptyConfState();
  role: StateRole = StateRole.Follower;
  lead: MemberId = 0;
  /** Permanently stopped: its removal from the configuration was applied (here or elsewhere). */
  removed = false;
  incarnation = 0;
  nextTickMs = 0;
  /** Virtual time up to which ticks were delivered. */
  private lastTickMs = 0;
  /** Commit index the member can never go below: the highest it has persisted (synced, after a crash). */
  private commitFloor = 0;
  private snapshotIndex = 0;
  /** The Ready handed out and not yet advanced (its write is in progress), with its term. */
  private outstanding: { rd: Ready; term: number } | null = null;
  /** Sabotage for the checker self-test: flip the payload of entries this member applies. */
  corruptApplies = false;

  constructor(
    private readonly options: MemberOptions,
    private readonly env: MemberEnvironment,
  ) {
    this.id = options.id;
  }

  get running(): boolean {
    return this.node !== null;
  }

  /** Until then its timers fire at most once a second, like a hidden browser tab's. */
  throttledUntilMs = 0;
  /** Until then the process is frozen (a GC pause, a suspended tab): no ticks, no messages. */
  pausedUntilMs = 0;

  /** The period of this member's next tick at virtual time `nowMs`. */
  tickIntervalMs(nowMs: number): number {
    return nowMs < this.throttledUntilMs ? throttledTickIntervalMs : this.options.tickIntervalMs;
  }

  appliedIndex(): number {
    return this.sm.appliedIndex;
  }

  stateMachine(): KvStateMachine {
    return this.sm;
  }

  raft(): RawNode {
    if (!this.node) throw new Error(`m${this.id} is not running`);
    return this.node;
  }

  /** Start (or restart after a crash) from whatever the store holds. */
  start(): void {
    if (this.node) throw new Error(`m${this.id} is already running`);
    if (this.removed) throw new Error(`m${this.id} was removed and cannot start`);
    this.incarnation++;
    this.lastTickMs = this.env.nowMs();
    this.sm = new KvStateMachine();
    this.role = StateRole.Follower;
    this.lead = 0;
    const persisted = this.storage.load();
    if (!this.storage.everSaved) {
      // Nothing durable: boot exactly as the first time (etcd bootstraps again without a WAL).
      this.confState = { ...emptyConfState(), voters: this.options.bootstrapPeers.slice() };
      this.node = new RawNode(this.options.raftConfig, null, this.options.bootstrapPeers.slice());
    } else {
      this.confState = emptyConfState();
      if (persisted.snapshot) {
        this.sm.restore(persisted.snapshot.data, persisted.snapshot.metadata.index);
        this.confState = persisted.snapshot.metadata.confState;
        this.env.checker.onStateHash(this.id, this.sm.appliedIndex, this.sm.chainHash, 'restart from snapshot');
      }
      this.snapshotIndex = this.storage.snapshotIndex();
      this.node = new RawNode(this.options.raftConfig, persisted, []);
      const commit = this.node.status().commit;
      if (commit < persisted.hardState.commit) {
        throw new SimFailure(
          'commit regression',
          `m${this.id} restarted with commit ${commit} but had persisted commit ${persisted.hardState.commit}`,
        );
      }
    }
    this.env.trace.add(
      this.env.nowMs(),
      this.incarnation === 1 ? 'member' : 'restart',
      this.id,
      `incarnation ${this.incarnation}: snapshot ${this.storage.snapshotIndex()}, log to ${this.storage.lastIndex()}, ` +
        `hard state t${persisted.hardState.term} vote ${persisted.hardState.vote} commit ${persisted.hardState.commit}, ${describeConfState(this.confState)}`,
    );
    this.drive();
  }

  /** Lose everything that was not persisted, and with `loseUnsynced` what was not synced either. */
  crash(reason: string, loseUnsynced = false): void {
    if (!this.node) return;
    this.node = null;
    // A Ready whose write had not completed is lost with the machine.
    this.outstanding = null;
    this.role = StateRole.Follower;
    this.lead = 0;
    const lost = this.storage.crash(loseUnsynced);
    this.commitFloor = Math.min(this.commitFloor, this.storage.persistedHardState().commit);
    this.env.trace.add(this.env.nowMs(), 'crash', this.id, lost ? `${reason}; unsynced writes lost` : reason);
  }

  /** The timer fired: one tick, or every tick that is due when catching up. */
  tick(): void {
    if (!this.node) return;
    if (this.options.tickCatchUp) {
      this.catchUpTicks();
    } else {
      this.node.tick();
      this.lastTickMs = this.env.nowMs();
    }
    this.drive();
  }

  deliver(m: Message): void {
    const node = this.caughtUpNode();
    if (!node) return;
    node.step(m);
    this.drive();
  }

  /** Run `action` against the Raft node, then process what it produced. */
  act(action: (node: RawNode) => void): void {
    const node = this.caughtUpNode();
    if (!node) return;
    action(node);
    this.drive();
  }

  /**
   * Drain Ready batches in the documented order. With a synchronous disk each Ready is handled
   * at once; with a disk that takes time (as every real one does) the Ready stays outstanding
   * until the write completes, and meanwhile the member keeps ticking and stepping messages —
   * between ready() and advance(), as the real member driver does.
   */
  drive(): void {
    for (let batches = 0; this.node && !this.outstanding && this.node.hasReady(); batches++) {
      if (batches >= readyBatchesPerInputMax) {
        throw new SimFailure('liveness', `m${this.id} produced more than ${readyBatchesPerInputMax} Ready batches for one input`);
      }
      const rd = this.node.ready();
      // The term the Ready's soft state belongs to: later steps may change the node's term.
      this.outstanding = { rd, term: this.node.status().term };
      // A leader's appends go out while its own write is in progress, as the member driver
      // does; the commit index they carry is known to the cluster from now on.
      if (rd.sendBeforePersist && rd.messages.length > 0) {
        if (rd.hardState) this.env.checker.onCommit(this.id, rd.hardState.commit, this.commitFloor, rd.hardState.term);
        this.env.send(rd.messages);
      }
      const latencyMs = this.options.diskLatencyMs(this.env.nowMs());
      if (latencyMs > 0) {
        this.env.scheduleWriteCompleted(this, this.env.nowMs() + latencyMs);
        return;
      }
      this.onPersisted();
    }
  }

  /** The disk finished the outstanding Ready's write: handle it, then take the next Ready. */
  writeCompleted(): void {
    this.onPersisted();
    this.drive();
  }

  /** The outstanding Ready is on disk: send, apply, advance. */
  private onPersisted(): void {
    const node = this.node;
    const outstanding = this.outstanding;
    if (!node || !outstanding) return;
    const { rd, term } = outstanding;
    this.persist(rd);
    if (rd.softState) this.onSoftState(rd.softState.role, rd.softState.lead, term);
    if (!rd.sendBeforePersist && rd.messages.length > 0) this.env.send(rd.messages);
    if (rd.snapshot) this.applySnapshot(rd);
    for (const e of rd.committedEntries) this.applyEntry(e);
    for (const rs of rd.readStates) this.env.onReadState(this, rs);
    node.advance(rd);
    this.outstanding = null;
    if (this.removed) {
      this.stop();
      return;
    }
    this.maybeSnapshot();
  }

  /** The node after any due ticks, or null if it is down (the ticks may have stopped it). */
  private caughtUpNode(): RawNode | null {
    if (this.node && this.options.tickCatchUp) this.catchUpTicks();
    return this.node;
  }

  /**
   * Deliver the ticks that real time says are due before anything else: a member whose timers
   * were throttled (a hidden tab fires them once a second) or that was frozen must not judge
   * its leader lease, or anything else timed, on a stale tick count. Bounded: past a few
   * election timeouts every timed decision has expired anyway.
   */
  private catchUpTicks(): void {
    const periodMs = this.options.tickIntervalMs;
    const due = Math.floor((this.env.nowMs() - this.lastTickMs) / periodMs);
    if (due <= 0) return;
    const ticks = Math.min(due, catchUpTicksMax);
    for (let i = 0; i < ticks && this.node; i++) {
      this.node.tick();
      this.drive();
    }
    this.lastTickMs += due * periodMs;
  }

  private persist(rd: Ready): void {
    this.storage.save({ hardState: rd.hardState, entries: rd.entries, snapshot: rd.snapshot }, rd.mustSync);
    const checker = this.env.checker;
    if (rd.entries.length > 0) checker.onPersisted(this.id, rd.entries, this.storage, this.commitFloor);
    if (rd.snapshot) checker.onSnapshot(this.id, rd.snapshot.metadata.index, rd.snapshot.metadata.term, 'received');
    if (rd.hardState) {
      checker.onHardState(this.id, rd.hardState);
      checker.onCommit(this.id, rd.hardState.commit, this.commitFloor, rd.hardState.term);
      if (rd.hardState.commit > this.commitFloor) {
        this.env.trace.add(this.env.nowMs(), 'commit', this.id, `commit ${this.commitFloor} -> ${rd.hardState.commit} (t${rd.hardState.term})`);
      }
      this.commitFloor = Math.max(this.commitFloor, rd.hardState.commit);
    }
  }

  private onSoftState(role: StateRole, lead: MemberId, term: number): void {
    if (role !== this.role || lead !== this.lead) {
      this.env.trace.add(this.env.nowMs(), 'role', this.id, `${this.role} -> ${role} in term ${term}, lead ${lead}`);
      if (role === StateRole.Leader && this.role !== StateRole.Leader) {
        this.env.checker.onBecameLeader(this.id, term, this.storage);
      }
    }
    this.role = role;
    this.lead = lead;
  }

  private applySnapshot(rd: Ready): void {
    const snap = rd.snapshot!;
    const index = snap.metadata.index;
    if (index <= this.sm.appliedIndex) {
      throw new SimFailure('snapshot', `m${this.id} was handed snapshot ${index} to apply but has already applied ${this.sm.appliedIndex}`);
    }
    this.sm.restore(snap.data, index);
    this.confState = snap.metadata.confState;
    this.snapshotIndex = index;
    this.env.checker.onStateHash(this.id, index, this.sm.chainHash, 'snapshot install');
    this.env.trace.add(this.env.nowMs(), 'apply-snapshot', this.id, `snapshot ${index}/t${snap.metadata.term} ${describeConfState(this.confState)}`);
  }

  private applyEntry(e: Entry): void {
    if (e.index !== this.sm.appliedIndex + 1) {
      throw new SimFailure('apply order', `m${this.id} was handed entry ${e.index} to apply after ${this.sm.appliedIndex}`);
    }
    let payload = e.type === EntryType.Normal ? decodeText(e.data) : '';
    let applied = e;
    if (this.corruptApplies && payload.length > 0) {
      payload = `${payload}-corrupt`;
      applied = { ...e, data: new TextEncoder().encode(payload) };
    }
    const op = this.sm.apply(e.index, e.term, payload);
    this.env.checker.onApplied(this.id, applied, this.sm.chainHash);
    this.env.onApplied(this, payload, op);
    if (e.type === EntryType.ConfChange) this.applyConfChange(e);
  }

  private applyConfChange(e: Entry): void {
    const cc = decodeConfChange(e.data);
    const membersBefore = confMembers(this.confState);
    let cs: ConfState;
    try {
      // The core refuses a change that no longer fits (identically on every member) and
      // returns the configuration unchanged; the checker compares the result across members.
      cs = this.raft().applyConfChange(cc);
    } catch (err) {
      throw new SimFailure(
        'conf change',
        `m${this.id} applyConfChange(${describeConfChange(cc)}) at ${e.index} threw on ${describeConfState(this.confState)}: ${(err as Error).message}`,
      );
    }
    this.confState = cs;
    this.env.checker.onConfState(this.id, e.index, cs);
    this.env.trace.add(this.env.nowMs(), 'conf-change', this.id, `apply ${e.index}: ${describeConfChange(cc)} -> ${describeConfState(cs)}`);
    const membersAfter = confMembers(cs);
    const removed = membersBefore.filter((id) => !membersAfter.includes(id));
    if (removed.length > 0) this.env.onRemoved(removed, this.id);
  }

  private maybeSnapshot(): void {
    if (!this.node || this.sm.appliedIndex - this.snapshotIndex < this.options.snapshotEveryEntries) return;
    const snap = this.node.createSnapshot(this.sm.snapshotData(), this.options.snapshotKeepEntries);
    if (snap.metadata.index !== this.sm.appliedIndex) {
      throw new SimFailure('snapshot', `m${this.id} createSnapshot made index ${snap.metadata.index} but the state machine is at ${this.sm.appliedIndex}`);
    }
    this.env.checker.onSnapshot(this.id, snap.metadata.index, snap.metadata.term, 'created');
    this.storage.saveSnapshot(snap);
    this.snapshotIndex = snap.metadata.index;
    this.env.trace.add(this.env.nowMs(), 'snapshot', this.id, `created snapshot ${snap.metadata.index}/t${snap.metadata.term}`);
  }

  /**
   * Stop for good: the member was removed from the configuration and learned of it (etcd stops
   * a member then). Takes effect at the end of the current Ready if it is processing one, else
   * at the simulator's next `stopIfRetired`.
   */
  retire(): void {
    this.removed = true;
  }

  private stop(): void {
    this.removed = true;
    if (this.node) this.crash('stopped: removed from the configuration');
  }

  /** Stop now, from outside the member's own Ready loop. */
  stopIfRetired(): void {
    if (this.removed) this.stop();
  }
}

export function describeConfChange(cc: ConfChange): string {
  if (cc.changes.length === 0) return 'leave-joint';
  const names = ['add', 'remove', 'add-learner'];
  const kind = ['auto', 'joint-implicit', 'joint-explicit'][cc.transition];
  return `${kind}(${cc.changes.map((c) => `${names[c.type]} m${c.memberId}`).join(', ')})`;
}
