// A member: drives the Raft core over the seams. It turns clock time into ticks, persists
// each Ready before sending its messages, applies committed entries to the state machine,
// and resolves the proposals and reads that its own clients made.

import { concat } from '../client/bytes.ts';
import type { RaftConfig } from '../raft/config.ts';
import { ConfChangeTransition, ConfChangeType, decodeConfChange, type ConfChange } from '../raft/confchange.ts';
import { RaftError } from '../raft/raft.ts';
import { contextKey as ctxKey } from '../raft/read-only.ts';
import { RawNode, type BasicStatus, type Status } from '../raft/raw-node.ts';
import { EntryType, MessageType, StateRole, type ConfState, type Entry, type MemberId, type Message, type Ready, type SnapshotMetadata } from '../raft/types.ts';
import { reportsDelivery, type BackendStaging, type ChunkProducer, type Clock, type DeliveryReport, type PersistedState, type SnapshotPreparation, type Storage, type Transport } from '../seams.ts';
import { diskBucketsMs, Histogram } from './histogram.ts';
import { SnapshotReceiver, SnapshotSender, decodeStreamHead, encodeStreamHead, isStreamHead, streamAck } from './snapshot-stream.ts';

/** The replicated application. `apply` must be deterministic: every member applies the same entries. */
export interface StateMachine {
  /** Applies a committed payload at `index`; the result goes back to the member that proposed it. */
  apply(payload: Uint8Array, index: number): unknown;
  /**
   * The whole state as of the last applied entry: its bytes, or an O(1) view whose frames
   * (concatenated) are those bytes. A view is serialized a few frames per tick while applying
   * goes on, so a large state never stalls the member.
   */
  snapshot(): Uint8Array | SnapshotView;
  /** Replaces the whole state with the image of the snapshot at `index`. An empty image means the initial, empty state. */
  restore(image: Uint8Array, index: number): void;
  /**
   * Optional, for a state machine whose snapshot() image leaves its state in a persistent
   * backend: resolves once everything up to `index` is on stable storage there, so the log may
   * be cut at `index`. The member stores such a snapshot once it resolves, handling Readies
   * meanwhile. It must start its work (on `index`) before it returns: the member calls it at the
   * snapshot's applied index and applies more entries while it waits.
   */
  durableAt?(index: number): Promise<void>;
  /**
   * Optional, for a state machine whose backend commits in the background: why the backend
   * failed (it then applies nothing more), or null. Checked every tick: a member whose backend
   * failed stops, rather than go on answering from memory what it can no longer make durable.
   */
  failure?(): Error | null;
  /**
   * Optional, with durableAt: what to stream to a lagging member in place of the stored snapshot
   * `image` — a read view of the whole backend and the applied index it holds (at or after the
   * snapshot's) — or null to send `image` itself. See snapshot-stream.ts.
   */
  streamSource?(image: Uint8Array): { producer: ChunkProducer; appliedIndex: number } | null;
  /** Optional: the image to send a lagging member in place of the stored snapshot `image`, when not streamed. */
  imageForPeer?(image: Uint8Array): Uint8Array;
  /**
   * Optional: a fresh staging area for a streamed snapshot whose small image is `image`. Throws,
   * with the reason, when this member cannot take it (a damaged image, a backend without staging).
   */
  stageStream?(image: Uint8Array): BackendStaging;
  /**
   * Optional, with stageStream: the staged content is complete at `appliedIndex`; make it the
   * state and return the image to store with the snapshot. Called between applies.
   */
  adoptStream?(staging: BackendStaging, image: Uint8Array, appliedIndex: number): Promise<Uint8Array>;
  /**
   * Optional: why a snapshot image received from a peer is damaged, or null. The member drops
   * a snapshot message whose image fails this before Raft (and so storage) sees it, rather than
   * persist what restore would refuse; the leader sends another. Cheap checks (checksums) only:
   * it runs as messages arrive.
   */
  checkImage?(image: Uint8Array): string | null;
  /**
   * Optional, for a state machine over an asynchronous backend (a tab's IndexedDB): `applyAll`
   * applies the committed entries whose apply() bytes `payloads()` lists, in order; call it once
   * everything applying them can read is at hand (plan, fetch, execute) and return that promise.
   * Returning nothing means it was called at once. Deterministic like apply.
   */
  prepareApply?(payloads: () => Uint8Array[], applyAll: () => void): Promise<void> | void;
  /**
   * Optional: sees every applied membership change with the configuration that resulted
   * (unchanged if Raft refused it), so the application can keep member addresses. Deterministic
   * like apply.
   */
  applyConfChange?(cc: ConfChange, confState: ConfState, index: number): void;
}

export interface MemberOptions {
  id: MemberId;
  /** The first membership, used only when storage is empty (a brand-new cluster). */
  peers: MemberId[];
  clock: Clock;
  storage: Storage;
  transport: Transport;
  stateMachine: StateMachine;
  /** Uniform [0, 1): seeds Raft's election timeouts and request ids. */
  random: () => number;
  tickMs?: number;
  electionTicks?: number;
  heartbeatTicks?: number;
  /** Applied entries between automatic snapshots. */
  snapshotEntries?: number;
  /** Entries kept behind a snapshot so slightly lagging followers catch up without one. */
  snapshotKeepEntries?: number;
  /**
   * Bytes of applied entry data between automatic snapshots, whichever of this and
   * `snapshotEntries` comes first: the entries since the last snapshot stay in memory, and
   * 10,000 txns of 128 puts would hold ~350 MB.
   */
  snapshotLogBytesMax?: number;
  /** Bytes of entries kept behind a snapshot, whichever of this and `snapshotKeepEntries` is fewer entries. */
  snapshotKeepBytesMax?: number;
  /** How long a proposal or read waits before failing with a timeout. */
  requestTimeoutMs?: number;
  /** A snapshot stream with no progress (no acknowledgement, no chunk) for this long fails. */
  snapshotStreamIdleMs?: number;
  raft?: Partial<Omit<RaftConfig, 'id' | 'random' | 'electionTicks' | 'heartbeatTicks'>>;
  /**
   * etcd's --force-new-cluster: before starting, make this member the only voter of a new
   * configuration, keeping what it has committed (see forceNewConfiguration).
   */
  forceNewCluster?: boolean;
  /**
   * Runs `fn` after the output this event-loop turn has already queued (the answers to this
   * member's clients) went out: setImmediate on Node. Without it, what it would defer is done
   * at once. See handleReady for what waits for it.
   */
  afterTurn?: (fn: () => void) => void;
  log?: (level: 'debug' | 'info' | 'warn', msg: string) => void;
}

/** A consistent image of the state, taken in O(1), serialized later frame by frame. */
export interface SnapshotView {
  frames(): Iterable<Uint8Array>;
}

/**
 * Share of each tick spent serializing a background snapshot (at least one frame a tick), so
 * heartbeats and applies keep their pace while a large state is written out.
 */
export const snapshotTickShare = 0.25;

interface SnapshotJob {
  point: SnapshotMetadata;
  /** Null while a persistent backend makes the snapshot's entries durable (durableAt); the image is then set as data. */
  frames: Iterator<Uint8Array> | null;
  chunks: Uint8Array[];
  /** Set when every frame is serialized. */
  data: Uint8Array | null;
}

/** etcd's wording, so clients map the errors the same way. */
export class MemberError extends Error {
  constructor(
    readonly code: 'timeout' | 'stopped' | 'no-leader' | 'proposal-dropped',
    message: string,
  ) {
    super(message);
  }
}

interface Waiter {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  deadlineMs: number;
}

interface ReadWaiter extends Waiter {
  ctx: Uint8Array;
  /** Set once the leader confirmed a read index. */
  index: number;
  issuedMs: number;
}

/**
 * Ticks delivered at once when timers fell behind. Past it, the missed time is dropped: a
 * member frozen for longer than that many ticks has lost any lease or election race anyway.
 */
export const catchUpTicksMax = 64;

/** Header on every proposal: member id, incarnation and sequence, so only its proposer resolves it. */
const headerBytes = 24;

/** The apply() bytes of the entries that reach StateMachine.apply (not conf changes, no-ops or damaged ones). */
function payloadsOf(entries: readonly Entry[]): Uint8Array[] {
  return entries.filter((e) => e.type !== EntryType.ConfChange && e.data.length >= headerBytes).map((e) => e.data.subarray(headerBytes));
}

export type MemberEvent = { role: StateRole; term: number; leader: MemberId; commit: number; applied: number };

export class Member {
  readonly id: MemberId;
  private node!: RawNode;
  private readonly opts: Required<Omit<MemberOptions, 'raft' | 'log' | 'forceNewCluster' | 'afterTurn'>> & Pick<MemberOptions, 'raft' | 'log' | 'forceNewCluster' | 'afterTurn'>;
  private readonly incarnation: number;
  private seq = 0;
  private readonly proposals = new Map<number, Waiter>();
  private readonly confChanges: { waiter: Waiter; cc: ConfChange }[] = [];
  private readonly reads = new Map<string, ReadWaiter>();
  private pendingPayloads: Uint8Array[] = [];
  private pendingSeqs: number[] = [];
  private draining = false;
  /** The drain in progress, so stop() can wait for it. */
  private drainDone: Promise<void> = Promise.resolve();
  private drainAgain = false;
  private stopped = false;
  private stopTicker: (() => void) | null = null;
  private appliedSinceSnapshot = 0;
  /** Bytes of entry data applied since the last snapshot (see snapshotLogBytesMax). */
  private appliedBytesSinceSnapshot = 0;
  /** Entries the next snapshot keeps behind it (snapshotKeepEntries, fewer for large entries). */
  private keepEntries = 0;
  private snapshotJob: SnapshotJob | null = null;
  /** Time of each synced save (one fdatasync with a WAL), and of applying each Ready. */
  readonly syncMs = new Histogram(diskBucketsMs);
  readonly applyMs = new Histogram(diskBucketsMs);
  /** Time a snapshot held up the Ready loop: storing it and cutting the log (a backend's flush runs beside the loop). */
  readonly snapshotMs = new Histogram(diskBucketsMs);
  /** Proposals (conf changes included) that failed: timed out, dropped, or cut off by a stop (etcd's proposals_failed_total). */
  proposalsFailed = 0;
  private lastEvent: MemberEvent | null = null;
  private readonly listeners = new Set<(e: MemberEvent) => void>();
  private fatal: Error | null = null;
  /** Clock time up to which ticks have been delivered to Raft. */
  private tickedUpToMs = 0;
  /**
   * Clock time of the latest message received from each peer (reachability, for diagnostics and
   * tab removal). Invariant: besides members of the configuration, holds only senders heard since
   * the last applied conf change (entries of members that left are dropped there).
   */
  private readonly heardFromMs = new Map<MemberId, number>();
  /** Clock time the member started serving. */
  startedAtMs = 0;
  /** Snapshot streams this member sends, one per peer at most (a newer snapshot replaces the stream). */
  private readonly streamsOut = new Map<MemberId, SnapshotSender>();
  /** The snapshot stream this member receives, at most one (a newer head replaces it). */
  private streamIn: SnapshotReceiver | null = null;
  /** The stream adopted last (ackSeq null while adopting): a sender's query gets its adopted ack again. */
  private streamAdopted: { from: MemberId; streamId: number; ackSeq: number | null } | null = null;
  private streamsStarted = 0;
  /** Snapshot streams that ended, by outcome, on either side (for tests and metrics). */
  readonly snapshotStreams = { sent: 0, sendFailed: 0, received: 0, receiveFailed: 0 };
  /** Whether the transport reports each snapshot's delivery (DeliveryReports); otherwise a sent one counts as delivered. */
  private snapshotOutcomesReported = false;

  private constructor(opts: MemberOptions) {
    this.id = opts.id;
    this.opts = {
      tickMs: 100,
      electionTicks: 10,
      heartbeatTicks: 1,
      snapshotEntries: 10_000,
      snapshotKeepEntries: 5_000,
      snapshotLogBytesMax: 16 * 2 ** 20,
      snapshotKeepBytesMax: 4 * 2 ** 20,
      requestTimeoutMs: 7_000,
      snapshotStreamIdleMs: 10_000,
      ...opts,
    };
    // A catch-up must be able to expire a lease and an election timeout in one go.
    if (this.opts.electionTicks >= catchUpTicksMax) {
      throw new Error(`member: electionTicks (${this.opts.electionTicks}) must be below catchUpTicksMax (${catchUpTicksMax})`);
    }
    this.incarnation = Math.floor(opts.random() * 2 ** 52);
  }

  /** Loads the member's state from storage and starts ticking and serving. */
  static async start(opts: MemberOptions): Promise<Member> {
    const m = new Member(opts);
    await m.boot();
    return m;
  }

  private raftConfig(): RaftConfig {
    const log = this.opts.log;
    return {
      ...this.opts.raft,
      id: this.id,
      random: this.opts.random,
      electionTicks: this.opts.electionTicks,
      heartbeatTicks: this.opts.heartbeatTicks,
      logger: log ? { debug: (s) => log('debug', s), info: (s) => log('info', s), warn: (s) => log('warn', s) } : undefined,
    };
  }

  private async boot(): Promise<void> {
    let persisted = await this.opts.storage.load();
    const empty = persisted.snapshot === null && persisted.entries.length === 0 && persisted.hardState.term === 0;
    if (this.opts.forceNewCluster && !empty) persisted = await this.forceNewConfiguration(persisted);
    this.node = new RawNode(this.raftConfig(), empty ? null : persisted, empty ? this.opts.peers : []);
    this.opts.stateMachine.restore(persisted.snapshot?.data ?? new Uint8Array(0), persisted.snapshot?.metadata.index ?? 0);
    this.tickedUpToMs = this.opts.clock.now();
    this.startedAtMs = this.tickedUpToMs;
    this.opts.transport.start((msg) => {
      if (this.stopped) return;
      if (msg.type === MessageType.SnapChunk || msg.type === MessageType.SnapChunkResp || isStreamHead(msg)) {
        this.heardFromMs.set(msg.from, this.opts.clock.now());
        this.onStreamMessage(msg);
        return;
      }
      if (this.refusesSnapshot(msg)) return;
      this.heardFromMs.set(msg.from, this.opts.clock.now());
      this.catchUpTicks();
      this.node.step(msg);
      this.schedule();
    });
    if (reportsDelivery(this.opts.transport)) {
      this.snapshotOutcomesReported = this.opts.transport.reportsSnapshots;
      this.opts.transport.onDeliveryReport((r) => this.onDeliveryReport(r));
    }
    this.stopTicker = this.opts.clock.every(this.opts.tickMs, () => this.onTick());
    this.schedule();
  }

  /** The transport learned what became of a frame: Raft hears of it (see DeliveryReports). */
  private onDeliveryReport(r: DeliveryReport): void {
    if (this.stopped) return;
    if (r.kind === 'unreachable') {
      this.node.reportUnreachable(r.peer);
      // Chunks are never sent twice, so a stream that lost some to a link going down can only
      // stall until snapshotStreamIdleMs: fail it now, and Raft sends a new snapshot once the
      // peer answers again (etcd reports a snapshot failed when its rafthttp stream breaks).
      const sender = r.linkLost === true ? this.streamsOut.get(r.peer) : undefined;
      if (sender !== undefined) this.endStream(sender, `the link to member ${r.peer} went down`);
    }
    // A stream's head is a snapshot message too, but the stream reports its own outcome.
    else if (!this.streamsOut.has(r.peer)) this.node.reportSnapshot(r.peer, !r.delivered);
    this.schedule();
  }

  /**
   * etcd's --force-new-cluster, for a cluster whose quorum is lost for good. Applies what this
   * member knows to be committed (on a Raft node that neither ticks nor sends), then stores a
   * snapshot of that state one index later, in a new term, whose configuration has this member
   * as its only voter: every other member is removed from it (and from the member table), and
   * the uncommitted tail of the log is dropped, as etcd drops it. Writes that only the lost
   * members held are gone. Each start with the flag does it again; restart without it after.
   */
  private async forceNewConfiguration(persisted: PersistedState): Promise<PersistedState> {
    this.node = new RawNode(this.raftConfig(), persisted, []);
    this.opts.stateMachine.restore(persisted.snapshot?.data ?? new Uint8Array(0), persisted.snapshot?.metadata.index ?? 0);
    while (this.node.hasReady()) {
      const rd = this.node.ready();
      for (const e of rd.committedEntries) this.applyEntry(e);
      this.node.advance(rd);
    }
    const old = this.node.status().confState;
    const others = [...new Set([...old.voters, ...old.learners, ...old.votersOutgoing, ...old.learnersNext])].filter((m) => m !== this.id);
    const confState: ConfState = { voters: [this.id], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
    // The snapshot stands for one more (empty) entry, so that it lies past any stored snapshot,
    // and its new term matches no stored entry: storage then drops the whole old log.
    const index = this.node.basicStatus().applied + 1;
    const term = persisted.hardState.term + 1;
    const cc: ConfChange = {
      transition: ConfChangeTransition.Auto,
      changes: [...others.map((m) => ({ type: ConfChangeType.RemoveNode, memberId: m })), { type: ConfChangeType.AddNode, memberId: this.id }],
      context: null,
    };
    this.opts.stateMachine.applyConfChange?.(cc, confState, index);
    // The new snapshot replaces the whole log: a persistent backend must hold everything up to it first.
    await this.opts.stateMachine.durableAt?.(index);
    const image = this.opts.stateMachine.snapshot();
    const data = image instanceof Uint8Array ? image : concat([...image.frames()]);
    await this.opts.storage.save({ hardState: { term, vote: 0, commit: index }, entries: [], snapshot: { metadata: { index, term, confState }, data } }, true);
    this.opts.log?.(
      'warn',
      `member ${this.id}: forced a new cluster at index ${index}, term ${term}: this member is the only voter; removed ${others.map((m) => m.toString(16)).join(', ') || 'no other members'}`,
    );
    return this.opts.storage.load();
  }

  /** Whether `msg` carries a snapshot whose image the state machine finds damaged (logged). */
  private refusesSnapshot(msg: Message): boolean {
    if (msg.snapshot === null || this.opts.stateMachine.checkImage === undefined) return false;
    const reason = this.opts.stateMachine.checkImage(msg.snapshot.data);
    if (reason === null) return false;
    this.opts.log?.('warn', `member ${this.id}: dropped a snapshot at index ${msg.snapshot.metadata.index} from member ${msg.from}: ${reason}`);
    return true;
  }

  /** Subscribe to role, term, leader and index changes. Returns an unsubscribe function. */
  onChange(fn: (e: MemberEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  status(): Status {
    return this.node.status();
  }

  /** Role, term, leader and indexes, without status()'s copies of the configuration and the leader's progress: cheap enough for every change. */
  basicStatus(): BasicStatus {
    return this.node.basicStatus();
  }

  /** Bytes of the latest snapshot image this member holds (made, received or loaded); 0 if none. */
  snapshotBytes(): number {
    return this.node.raft.log.snapshot?.data.byteLength ?? 0;
  }

  /** Log entries Raft holds in memory: those since the latest snapshot and the tail kept behind it. */
  entriesInMemory(): number {
    const log = this.node.raft.log;
    return log.lastIndex() - log.firstIndex() + 1;
  }

  /** Clock time of the latest message from `peer`, or null if none arrived since the member started. */
  lastHeardFrom(peer: MemberId): number | null {
    return this.heardFromMs.get(peer) ?? null;
  }

  /** Raft's election timeout in milliseconds (ticks × tick length). */
  get electionTimeoutMs(): number {
    return this.opts.tickMs * this.opts.electionTicks;
  }

  /** Clock time now, as the member measures it. */
  now(): number {
    return this.opts.clock.now();
  }

  isLeader(): boolean {
    return this.node.basicStatus().role === StateRole.Leader;
  }

  /** True once stop() was called or storage failed: the member serves nothing any more. */
  isStopped(): boolean {
    return this.stopped;
  }

  /**
   * Replicates `payload` and resolves with the state machine's result once it is applied
   * here. A timeout means the outcome is unknown: the entry may still commit.
   */
  propose(payload: Uint8Array): Promise<unknown> {
    this.checkRunning();
    const seq = ++this.seq;
    const data = new Uint8Array(headerBytes + payload.length);
    const view = new DataView(data.buffer);
    view.setFloat64(0, this.id);
    view.setFloat64(8, this.incarnation);
    view.setFloat64(16, seq);
    data.set(payload, headerBytes);
    return new Promise((resolve, reject) => {
      this.proposals.set(seq, { resolve, reject, deadlineMs: this.opts.clock.now() + this.opts.requestTimeoutMs });
      this.catchUpTicks();
      this.pendingPayloads.push(data);
      this.pendingSeqs.push(seq);
      this.schedule();
    });
  }

  /** Resolves once this member has applied everything committed before the call (ReadIndex). */
  readBarrier(): Promise<void> {
    this.checkRunning();
    const now = this.opts.clock.now();
    const ctx = new Uint8Array(16);
    const view = new DataView(ctx.buffer);
    view.setFloat64(0, this.incarnation);
    view.setFloat64(8, ++this.seq);
    const key = ctxKey(ctx);
    return new Promise<void>((resolve, reject) => {
      this.reads.set(key, { resolve: () => resolve(), reject, deadlineMs: now + this.opts.requestTimeoutMs, ctx, index: -1, issuedMs: now });
      this.catchUpTicks();
      this.node.readIndex(ctx);
      this.schedule();
    });
  }

  /** Proposes a membership change; resolves with the new configuration once applied here. */
  changeMembership(cc: ConfChange): Promise<unknown> {
    this.checkRunning();
    return new Promise((resolve, reject) => {
      try {
        this.node.proposeConfChange(cc);
      } catch (err) {
        this.proposalsFailed++;
        reject(toMemberError(err));
        return;
      }
      this.confChanges.push({ waiter: { resolve, reject, deadlineMs: this.opts.clock.now() + this.opts.requestTimeoutMs }, cc });
      this.schedule();
    });
  }

  transferLeadership(to: MemberId): void {
    this.checkRunning();
    this.node.transferLeader(to);
    this.schedule();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.stopTicker?.();
    const err = new MemberError('stopped', 'etcdserver: server stopped');
    this.failAll(err);
    await this.drainDone;
    this.endStreams();
    await this.opts.transport.close();
    await this.opts.storage.close();
  }

  private checkRunning(): void {
    if (this.fatal) throw this.fatal;
    if (this.stopped) throw new MemberError('stopped', 'etcdserver: server stopped');
  }

  /**
   * Delivers the ticks that clock time says are due. Timers can fire late or not at all (a
   * hidden browser tab fires them at 1 Hz, a paused process not at all), and Raft measures
   * election timeouts and the leader lease in ticks: without this, a throttled leader would
   * believe in a lease the others stopped honouring long ago. Called before every input.
   */
  private catchUpTicks(): void {
    const now = this.opts.clock.now();
    const due = Math.floor((now - this.tickedUpToMs) / this.opts.tickMs);
    if (due <= 0) return;
    for (let i = 0; i < Math.min(due, catchUpTicksMax); i++) this.node.tick();
    this.tickedUpToMs = due > catchUpTicksMax ? now : this.tickedUpToMs + due * this.opts.tickMs;
  }

  private onTick(): void {
    if (this.stopped) return;
    const failure = this.opts.stateMachine.failure?.() ?? null;
    if (failure !== null) {
      this.die(failure);
      return;
    }
    this.catchUpTicks();
    this.continueSnapshot();
    this.checkStreams();
    const now = this.opts.clock.now();
    // Made only when something timed out: an Error captures a stack, and this runs every tick.
    let timeoutError: MemberError | null = null;
    const timeout = (): MemberError => (timeoutError ??= new MemberError('timeout', 'etcdserver: request timed out'));
    // Each deadline is the (monotonic) clock at proposal time plus the same timeout, and the map
    // keeps insertion order: the first one not yet due ends the scan (hundreds wait during a partition).
    for (const [seq, w] of this.proposals) {
      if (w.deadlineMs > now) break;
      this.proposals.delete(seq);
      this.proposalsFailed++;
      w.reject(timeout());
    }
    for (const [key, r] of this.reads) {
      if (r.deadlineMs <= now) {
        this.reads.delete(key);
        r.reject(timeout());
      } else if (r.index < 0 && now - r.issuedMs >= this.opts.tickMs * this.opts.electionTicks) {
        // The request (or its answer) may have been lost, or there was no leader: ask again.
        r.issuedMs = now;
        this.node.readIndex(r.ctx);
      }
    }
    for (let i = this.confChanges.length - 1; i >= 0; i--) {
      if (this.confChanges[i].waiter.deadlineMs <= now) {
        this.proposalsFailed++;
        this.confChanges[i].waiter.reject(timeout());
        this.confChanges.splice(i, 1);
      }
    }
    if (this.drainHasWork()) this.schedule();
  }

  /**
   * Whether a drain now would do anything: most ticks of a quiet member produce no Ready, and
   * a drain for nothing costs a promise chain, a status object and a change check per tick.
   */
  private drainHasWork(): boolean {
    return this.draining || this.pendingPayloads.length > 0 || this.snapshotJob !== null || this.streamIn?.complete === true || this.node.hasReady();
  }

  private schedule(): void {
    if (this.stopped || this.fatal) return;
    if (this.draining) {
      this.drainAgain = true;
      return;
    }
    this.draining = true;
    this.drainDone = Promise.resolve()
      .then(() => this.drain())
      .catch((err) => this.die(err as Error));
  }

  private async drain(): Promise<void> {
    try {
      do {
        this.drainAgain = false;
        if (this.streamIn?.complete) await this.adoptStream();
        this.flushProposals();
        while (!this.stopped && this.node.hasReady()) {
          const rd = this.node.ready();
          await this.handleReady(rd);
          this.node.advance(rd);
          await this.maybeSnapshot();
          this.flushProposals();
        }
        if (this.snapshotJob?.data) await this.maybeSnapshot();
        this.maybeCampaignAlone();
        this.emitChange();
      } while (this.drainAgain && !this.stopped);
    } finally {
      this.draining = false;
    }
  }

  /**
   * A member that is the only voter has no one to wait for: it campaigns as soon as its state
   * is loaded instead of after an election timeout (a single `meshkv` is ready at once).
   */
  private maybeCampaignAlone(): void {
    const s = this.node.basicStatus();
    if (s.role !== StateRole.Follower || s.lead !== 0) return;
    const { incoming, outgoing } = this.node.raft.trk.config;
    if (incoming.size === 1 && incoming.has(this.id) && outgoing.size === 0) {
      this.node.campaign();
      this.drainAgain = true;
    }
  }

  private flushProposals(): void {
    if (this.pendingPayloads.length === 0) return;
    // Without a leader Raft would refuse them with an error, whose stack costs more than the
    // check (a leaderless member drains often).
    if (this.node.basicStatus().lead === 0) return this.keepPending();
    const payloads = this.pendingPayloads;
    const seqs = this.pendingSeqs;
    this.pendingPayloads = [];
    this.pendingSeqs = [];
    try {
      this.node.proposeBatch(payloads);
    } catch (err) {
      if (err instanceof RaftError && retryable(err)) {
        this.pendingPayloads = payloads;
        this.pendingSeqs = seqs;
        this.keepPending();
        return;
      }
      const e = toMemberError(err);
      for (const seq of seqs) {
        const w = this.proposals.get(seq);
        if (!w) continue;
        this.proposalsFailed++;
        w.reject(e);
        this.proposals.delete(seq);
      }
    }
  }

  /**
   * No leader yet, or one is handing over: the queued proposals stay until a leader appears or
   * they time out, as etcd does; those whose callers gave up are dropped. In place: a leaderless
   * member drains on every message while hundreds of proposals may wait (a partition), and
   * copying the queue each time made 7% of the simulator's allocation (seeds 1–5).
   */
  private keepPending(): void {
    const payloads = this.pendingPayloads;
    const seqs = this.pendingSeqs;
    let kept = 0;
    for (let i = 0; i < seqs.length; i++) {
      if (!this.proposals.has(seqs[i])) continue;
      payloads[kept] = payloads[i];
      seqs[kept] = seqs[i];
      kept++;
    }
    payloads.length = kept;
    seqs.length = kept;
  }

  private async handleReady(rd: Ready): Promise<void> {
    // A Ready that only reports commits answers this member's own proposers before its peers
    // hear of it: with one client, every put ends in such a Ready, and each message is a write
    // on loopback that runs the receiver's TCP input and wakes its process (on 2 cores, often
    // in place of this one) while the client waits. No commit waits for these messages.
    const answersFirst = this.onlyReportsCommitsToOwnProposer(rd);
    // A leader's appends go out while it writes them itself (see Ready.sendBeforePersist).
    if (rd.sendBeforePersist && !answersFirst) this.sendReadyMessages(rd);
    if (rd.snapshot !== null || rd.entries.length > 0 || rd.hardState !== null) {
      const started = this.opts.clock.now();
      await this.opts.storage.save({ hardState: rd.hardState, entries: rd.entries, snapshot: rd.snapshot }, rd.mustSync);
      if (rd.mustSync) this.syncMs.observe(this.opts.clock.now() - started);
    }
    // Otherwise only now, with the state durable, may anyone hear what it implies.
    if (!rd.sendBeforePersist && !answersFirst) this.sendReadyMessages(rd);
    if (rd.snapshot !== null) {
      this.opts.stateMachine.restore(rd.snapshot.data, rd.snapshot.metadata.index);
      this.appliedSinceSnapshot = 0;
      this.appliedBytesSinceSnapshot = 0;
    }
    if (rd.committedEntries.length > 0) {
      const started = this.opts.clock.now();
      const applyAll = (): void => {
        for (const e of rd.committedEntries) this.applyEntry(e);
      };
      const sm = this.opts.stateMachine;
      const pending = sm.prepareApply === undefined ? applyAll() : sm.prepareApply(() => payloadsOf(rd.committedEntries), applyAll);
      if (pending !== undefined) await pending;
      this.applyMs.observe(this.opts.clock.now() - started);
    }
    if (answersFirst) {
      // The answers leave in this turn's last microtasks; the peers' messages after them.
      const afterTurn = this.opts.afterTurn;
      if (afterTurn === undefined) this.sendReadyMessages(rd);
      else
        afterTurn(() => {
          if (!this.stopped) this.sendReadyMessages(rd);
        });
    }
    for (const rs of rd.readStates) {
      const w = this.reads.get(ctxKey(rs.requestCtx));
      if (w) w.index = rs.index;
    }
    this.releaseReads(rd.committedEntries.length > 0 ? rd.committedEntries[rd.committedEntries.length - 1].index : -1);
  }

  /**
   * Whether `rd` has nothing to write or send but commits (no entries, no snapshot, messages
   * that carry neither: a leader's commit index, a follower's acknowledgement of it) and
   * commits an entry that a waiting proposer of this member made, and no configuration change.
   * A configuration change's commit must reach the peers before this member applies it: the
   * apply can end this member (a removed member is stopped, by its operator or, as in etcd, by
   * itself), and peers that never hear the change committed keep the old configuration, with
   * the stopped member still counted among the voters they need (simulator seed 266: a removed
   * leader's notice never left, and the three voters left needed each other's votes).
   */
  private onlyReportsCommitsToOwnProposer(rd: Ready): boolean {
    if (rd.entries.length > 0 || rd.snapshot !== null || rd.messages.length === 0 || this.proposals.size === 0) return false;
    for (const m of rd.messages) if (m.entries.length > 0 || m.snapshot !== null) return false;
    let own = false;
    for (const e of rd.committedEntries) {
      if (e.type === EntryType.ConfChange) return false;
      own ||= this.proposals.has(this.ownSeq(e) ?? -1);
    }
    return own;
  }

  /** The sequence number of `e` if this incarnation of this member proposed it, else null. */
  private ownSeq(e: Entry): number | null {
    if (e.type === EntryType.ConfChange || e.data.length < headerBytes) return null;
    const view = new DataView(e.data.buffer, e.data.byteOffset, headerBytes);
    return view.getFloat64(0) === this.id && view.getFloat64(8) === this.incarnation ? view.getFloat64(16) : null;
  }

  private sendReadyMessages(rd: Ready): void {
    if (rd.messages.length === 0) return;
    const messages: Message[] = [];
    const sentWhole: MemberId[] = [];
    for (const m of rd.messages) {
      const source = m.type === MessageType.Snap && m.snapshot !== null ? (this.opts.stateMachine.streamSource?.(m.snapshot.data) ?? null) : null;
      if (source !== null) this.startStream(m, source.producer, source.appliedIndex);
      else if (m.type === MessageType.Snap && m.snapshot !== null && this.opts.stateMachine.imageForPeer !== undefined) {
        messages.push({ ...m, snapshot: { ...m.snapshot, data: this.opts.stateMachine.imageForPeer(m.snapshot.data) } });
        sentWhole.push(m.to);
      } else {
        messages.push(m);
        if (m.type === MessageType.Snap) sentWhole.push(m.to);
      }
    }
    this.opts.transport.send(messages);
    // Streams report their own outcome. A whole image is reported by a transport that gives
    // delivery receipts (DeliveryReports); without them it counts as delivered once sent: if it
    // was lost, the follower's next answer shows it still lags and the leader sends it again.
    if (!this.snapshotOutcomesReported) for (const to of sentWhole) this.node.reportSnapshot(to, false);
  }

  // ---- snapshot streams (snapshot-stream.ts) ----

  /**
   * Streams the backend in place of the Snap message `m` (`appliedIndex`: what the backend held
   * when asked; the producer's snapshot is at or after it); a stream to the same peer in
   * progress is dropped.
   */
  private startStream(m: Message, producer: ChunkProducer, appliedIndex: number): void {
    this.streamsOut.get(m.to)?.release();
    const snapshotIndex = m.snapshot!.metadata.index;
    if (appliedIndex < snapshotIndex) {
      producer.release();
      this.streamsOut.delete(m.to);
      this.opts.log?.('warn', `member ${this.id}: the backend holds index ${appliedIndex}, below the snapshot at ${snapshotIndex}; not streaming it to member ${m.to}`);
      this.node.reportSnapshot(m.to, true);
      return;
    }
    const streamId = ++this.streamsStarted;
    const sender: SnapshotSender = new SnapshotSender(m.to, streamId, m, producer, this.opts.clock, () => {
      if (this.streamsOut.get(sender.to) !== sender) return;
      if (sender.failure !== null) this.endStream(sender, sender.failure);
      else this.opts.transport.send(sender.pump(this.node.basicStatus().term));
    });
    this.streamsOut.set(m.to, sender);
    this.opts.log?.('info', `member ${this.id}: streaming snapshot ${snapshotIndex} (backend at ${appliedIndex} or later) to member ${m.to} as stream ${streamId}`);
  }

  private onStreamMessage(m: Message): void {
    const now = this.opts.clock.now();
    if (m.type === MessageType.SnapChunkResp) {
      const sender = this.streamsOut.get(m.from);
      if (sender === undefined) return;
      const progress = sender.onAck(m, now);
      if (progress.kind === 'pending') this.opts.transport.send(sender.pump(this.node.basicStatus().term));
      else this.endStream(sender, progress.kind === 'done' ? null : progress.reason);
      return;
    }
    if (m.type === MessageType.Snap) {
      this.receiveStreamHead(m, now);
      return;
    }
    if (m.commit === 0) {
      this.answerStreamQuery(m);
      return;
    }
    const r = this.streamIn;
    if (r === null || r.from !== m.from || r.streamId !== m.index) {
      this.opts.transport.send([streamAck(m.from, this.id, m.term, m.index, m.commit, 'no such stream here (it was replaced, timed out, or this member restarted)')]);
      return;
    }
    const term = this.node.basicStatus().term;
    r.onChunk(
      m,
      (seq) => this.opts.transport.send([streamAck(r.from, this.id, term, r.streamId, seq, null)]),
      () => this.schedule(),
      (reason) => {
        if (this.streamIn === r) this.streamIn = null;
        this.snapshotStreams.receiveFailed++;
        this.opts.log?.('warn', `member ${this.id}: ${reason}`);
        this.opts.transport.send([streamAck(r.from, this.id, term, r.streamId, m.commit, reason)]);
      },
    );
  }

  /** A sender waiting for the adopted ack asks again (snapshot-stream.ts, "query"). */
  private answerStreamQuery(m: Message): void {
    const term = this.node.basicStatus().term;
    const a = this.streamAdopted;
    if (a !== null && a.from === m.from && a.streamId === m.index) {
      if (a.ackSeq !== null) this.opts.transport.send([streamAck(m.from, this.id, term, m.index, a.ackSeq, null)]);
      return;
    }
    const r = this.streamIn;
    if (r !== null && r.from === m.from && r.streamId === m.index) return;
    this.opts.transport.send([streamAck(m.from, this.id, term, m.index, 0, 'no such stream here (it was replaced, timed out, or this member restarted)')]);
  }

  /** A stream head: a fresh staging area for it, unless the snapshot is stale or cannot be taken. */
  private receiveStreamHead(m: Message, now: number): void {
    let streamId = 0;
    let refusal: string | null = null;
    let staging: BackendStaging | null = null;
    const s = this.node.basicStatus();
    try {
      ({ streamId } = decodeStreamHead(m.context!));
      if (m.term < s.term) refusal = `the head's term ${m.term} is behind this member's ${s.term}`;
      else if (m.snapshot!.metadata.index <= s.commit) refusal = `snapshot ${m.snapshot!.metadata.index} is not past this member's commit index ${s.commit}`;
      // A new staging area would replace the one whose adopt is still landing (seed 80).
      else if (this.streamAdopted !== null && this.streamAdopted.ackSeq === null) refusal = `stream ${this.streamAdopted.streamId} is being adopted here`;
      else if (this.opts.stateMachine.stageStream === undefined || this.opts.stateMachine.adoptStream === undefined) refusal = 'this member cannot take a streamed snapshot';
      else staging = this.opts.stateMachine.stageStream(m.snapshot!.data);
    } catch (err) {
      refusal = (err as Error).message;
    }
    if (refusal !== null || staging === null) {
      this.opts.log?.('warn', `member ${this.id}: refused snapshot stream ${streamId} from member ${m.from}: ${refusal}`);
      this.opts.transport.send([streamAck(m.from, this.id, s.term, streamId, 0, refusal ?? 'refused')]);
      return;
    }
    this.streamIn?.abandon();
    const { appliedIndex } = decodeStreamHead(m.context!);
    this.streamIn = new SnapshotReceiver(m.from, streamId, { ...m, context: null }, appliedIndex, staging, this.opts.clock);
    this.opts.transport.send([streamAck(m.from, this.id, s.term, streamId, 0, null)]);
  }

  /**
   * Inside the drain loop (no apply runs meanwhile): a stream whose last chunk verified becomes
   * the state, then Raft gets its snapshot message, and only then does the sender hear it is done.
   */
  private async adoptStream(): Promise<void> {
    const r = this.streamIn!;
    this.streamIn = null;
    const s = this.node.basicStatus();
    const index = r.head.snapshot!.metadata.index;
    if (index <= s.commit) {
      r.abandon();
      this.snapshotStreams.receiveFailed++;
      this.opts.transport.send([streamAck(r.from, this.id, s.term, r.streamId, r.lastSeq, `snapshot ${index} is no longer past this member's commit index ${s.commit}`)]);
      return;
    }
    const adopted = { from: r.from, streamId: r.streamId, ackSeq: null as number | null };
    this.streamAdopted = adopted;
    const data = await this.opts.stateMachine.adoptStream!(r.staging, r.head.snapshot!.data, r.appliedIndex);
    this.snapshotStreams.received++;
    this.opts.log?.('info', `member ${this.id}: adopted snapshot ${index} (backend at ${r.appliedIndex}) streamed by member ${r.from}`);
    this.catchUpTicks();
    this.node.step({ ...r.head, snapshot: { ...r.head.snapshot!, data } });
    adopted.ackSeq = r.lastSeq + 1;
    this.opts.transport.send([streamAck(r.from, this.id, this.node.basicStatus().term, r.streamId, adopted.ackSeq, null)]);
  }

  /** A sent stream ended: its view is released and Raft hears the outcome. */
  private endStream(sender: SnapshotSender, failure: string | null): void {
    sender.release();
    if (this.streamsOut.get(sender.to) === sender) this.streamsOut.delete(sender.to);
    if (failure === null) {
      this.snapshotStreams.sent++;
      this.opts.log?.('info', `member ${this.id}: snapshot stream ${sender.streamId} to member ${sender.to} done (${sender.bytesSent} bytes)`);
    } else {
      this.snapshotStreams.sendFailed++;
      this.opts.log?.('warn', `member ${this.id}: snapshot stream ${sender.streamId} to member ${sender.to} failed: ${failure}`);
    }
    if (this.isLeader()) this.node.reportSnapshot(sender.to, failure !== null);
    this.schedule();
  }

  /** Every tick: streams without progress for snapshotStreamIdleMs fail; a member that lost leadership stops sending. */
  private checkStreams(): void {
    const now = this.opts.clock.now();
    const idleMs = this.opts.snapshotStreamIdleMs;
    // Raft's progress may show first that a follower has the snapshot (its answer to the Snap
    // message arrived, the adopted ack did not): the stream is done, and Raft hears so at once.
    const progress = this.streamsOut.size > 0 ? this.node.status().progress : null;
    for (const sender of [...this.streamsOut.values()]) {
      if (!this.isLeader()) this.endStream(sender, 'this member is no longer the leader');
      else if ((progress?.get(sender.to)?.match ?? 0) >= sender.snapshotIndex) this.endStream(sender, null);
      else if (sender.stalled(now, idleMs)) this.endStream(sender, `no acknowledgement for ${now - sender.lastProgressMs} ms`);
      else {
        const query = sender.query(now, idleMs, this.node.basicStatus().term);
        if (query !== null) this.opts.transport.send([query]);
      }
    }
    const r = this.streamIn;
    if (r !== null && r.stalled(now, idleMs)) {
      this.streamIn = null;
      r.abandon();
      this.snapshotStreams.receiveFailed++;
      this.opts.log?.('warn', `member ${this.id}: snapshot stream ${r.streamId} from member ${r.from}: no progress for ${now - r.lastProgressMs} ms; dropped what was staged`);
    }
  }

  private endStreams(): void {
    for (const sender of this.streamsOut.values()) sender.release();
    this.streamsOut.clear();
    this.streamIn?.abandon();
    this.streamIn = null;
  }

  private applyEntry(e: Entry): void {
    this.appliedSinceSnapshot++;
    this.appliedBytesSinceSnapshot += e.data.length;
    if (e.type === EntryType.ConfChange) {
      let cc: ConfChange;
      try {
        cc = decodeConfChange(e.data);
      } catch (err) {
        // Leaders refuse undecodable changes, so this is a damaged log; every member skips it alike.
        this.opts.log?.('warn', `member ${this.id}: conf change at ${e.index} skipped: ${(err as Error).message}`);
        return;
      }
      const cs = this.node.applyConfChange(cc);
      const inConfig = new Set([...cs.voters, ...cs.learners, ...cs.votersOutgoing, ...cs.learnersNext]);
      for (const peer of [...this.heardFromMs.keys()]) if (!inConfig.has(peer)) this.heardFromMs.delete(peer);
      this.opts.stateMachine.applyConfChange?.(cc, cs, e.index);
      const i = this.confChanges.findIndex((p) => sameChange(p.cc, cc));
      if (i >= 0) {
        this.confChanges[i].waiter.resolve(cs);
        this.confChanges.splice(i, 1);
      }
      return;
    }
    if (e.data.length === 0) return; // a leader's no-op
    if (e.data.length < headerBytes) {
      this.opts.log?.('warn', `member ${this.id}: entry ${e.index} is shorter than its header; skipped on every member alike`);
      return;
    }
    const result = this.opts.stateMachine.apply(e.data.subarray(headerBytes), e.index);
    const seq = this.ownSeq(e);
    if (seq !== null) {
      const w = this.proposals.get(seq);
      if (w) {
        this.proposals.delete(seq);
        w.resolve(result);
      }
    }
  }

  private releaseReads(lastApplied: number): void {
    const applied = Math.max(lastApplied, this.node.basicStatus().applied);
    for (const [key, r] of this.reads) {
      if (r.index >= 0 && r.index <= applied) {
        this.reads.delete(key);
        r.resolve(undefined);
      }
    }
  }

  /**
   * Storage takes one call at a time, so the snapshot is written inside the drain loop. A
   * persistent backend's wait for its flush (durableAt) is not: the loop goes on saving and
   * applying Readies, and stores the snapshot at the first turn after the flush (as etcd
   * snapshots beside its Raft loop). The log is still cut only at what the backend holds.
   */
  private async maybeSnapshot(): Promise<void> {
    const job = this.snapshotJob;
    if (job !== null) {
      if (job.data === null) return;
      this.snapshotJob = null;
      await this.storeSnapshot(job.point, job.data);
      return;
    }
    if (this.appliedSinceSnapshot < this.opts.snapshotEntries && this.appliedBytesSinceSnapshot < this.opts.snapshotLogBytesMax) return;
    // Kept entries are assumed the average size of those since the last snapshot.
    const entryBytes = this.appliedBytesSinceSnapshot / Math.max(1, this.appliedSinceSnapshot);
    this.keepEntries = Math.min(this.opts.snapshotKeepEntries, Math.floor(this.opts.snapshotKeepBytesMax / Math.max(1, entryBytes)));
    this.appliedSinceSnapshot = 0;
    this.appliedBytesSinceSnapshot = 0;
    const point = this.node.snapshotPoint();
    const image = this.opts.stateMachine.snapshot();
    if (image instanceof Uint8Array) {
      const durable = this.opts.stateMachine.durableAt?.(point.index);
      if (durable === undefined) return this.storeSnapshot(point, image);
      const job: SnapshotJob = { point, frames: null, chunks: [], data: null };
      this.snapshotJob = job;
      // A storage that can (SnapshotPreparation) writes and syncs the image beside the Ready
      // loop too, leaving storeSnapshot only the log's record of it.
      // (No other job starts before this one is stored, so one preparation runs at a time.)
      durable
        .then(() => (this.opts.storage as Partial<SnapshotPreparation>).prepareSnapshot?.({ metadata: point, data: image }))
        .then(
          () => {
            if (this.snapshotJob !== job) return;
            job.data = image;
            this.schedule();
          },
          (err: Error) => {
            if (!this.stopped) this.die(err);
          },
        );
      return;
    }
    this.snapshotJob = { point, frames: image.frames()[Symbol.iterator](), chunks: [], data: null };
  }

  /** Stores a snapshot of this member's own at `point` and cuts the log behind it, timing the hold on the Ready loop. */
  private async storeSnapshot(point: SnapshotMetadata, image: Uint8Array): Promise<void> {
    const started = this.opts.clock.now();
    // Null when a newer snapshot arrived from the leader meanwhile.
    const snap = this.node.snapshotFrom(point, image, this.entriesToKeep(point.index));
    if (snap === null) return;
    await this.opts.storage.saveSnapshot(snap);
    this.snapshotMs.observe(this.opts.clock.now() - started);
  }

  /**
   * Entries to keep in the log behind a new snapshot at `index`: keepEntries (snapshotKeepEntries
   * within snapshotKeepBytesMax), or back to
   * the snapshot a stream in progress carries, so that its receiver goes on with appends from
   * there. Without it, a stream that outlasts snapshotEntries of writes would be followed by
   * another stream, and so on.
   */
  private entriesToKeep(index: number): number {
    let keep = this.keepEntries;
    for (const sender of this.streamsOut.values()) keep = Math.max(keep, index - sender.snapshotIndex);
    return keep;
  }

  /** Serializes a few frames of the background snapshot; called every tick. */
  private continueSnapshot(): void {
    const job = this.snapshotJob;
    if (job === null || job.frames === null || job.data !== null) return;
    const frames = job.frames;
    const until = this.opts.clock.now() + this.opts.tickMs * snapshotTickShare;
    for (let first = true; first || this.opts.clock.now() < until; first = false) {
      const next = frames.next();
      if (next.done) {
        job.data = concat(job.chunks);
        job.chunks = [];
        return;
      }
      job.chunks.push(next.value);
    }
  }

  private emitChange(): void {
    if (this.listeners.size === 0) return;
    const s = this.node.basicStatus();
    const e: MemberEvent = { role: s.role, term: s.term, leader: s.lead, commit: s.commit, applied: s.applied };
    const l = this.lastEvent;
    if (l && l.role === e.role && l.term === e.term && l.leader === e.leader && l.commit === e.commit && l.applied === e.applied) return;
    this.lastEvent = e;
    for (const fn of this.listeners) fn(e);
  }

  /** Proposals (conf changes included) waiting to be applied (etcd's proposals_pending). */
  get proposalsPending(): number {
    return this.proposals.size + this.confChanges.length;
  }

  private failAll(err: Error): void {
    this.proposalsFailed += this.proposalsPending;
    for (const w of this.proposals.values()) w.reject(err);
    this.proposals.clear();
    for (const r of this.reads.values()) r.reject(err);
    this.reads.clear();
    for (const c of this.confChanges) c.waiter.reject(err);
    this.confChanges.length = 0;
  }

  /** Storage (the log's or the state machine's) failed: nothing acknowledged after this point could be trusted, so stop. */
  private die(err: Error): void {
    if (this.fatal) return;
    this.fatal = err;
    this.opts.log?.('warn', `member ${this.id} stopped: ${err.message}`);
    this.failAll(err);
    this.stopped = true;
    this.stopTicker?.();
    this.endStreams();
  }
}

function sameChange(a: ConfChange, b: ConfChange): boolean {
  return (
    a.transition === b.transition &&
    a.changes.length === b.changes.length &&
    a.changes.every((c, i) => c.type === b.changes[i].type && c.memberId === b.changes[i].memberId)
  );
}

function retryable(err: RaftError): boolean {
  return /no leader|leader transfer in progress/.test(err.message);
}

function toMemberError(err: unknown): Error {
  if (err instanceof RaftError) return new MemberError('proposal-dropped', err.message);
  return err as Error;
}
