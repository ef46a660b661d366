// The deterministic cluster simulator. One 32-bit seed picks the cluster's shape, every
// network delay and loss, every fault, every client request and every random choice inside
// Raft; virtual time advances from event to event with no real timers. A run is a fault phase
// (crashes, partitions, lossy links, membership changes and leader transfers under load), then
// a heal phase that must reach a leader and commit a fresh proposal on every member of the
// configuration within a bounded virtual time.

import { ReadOnlyOption } from '../../src/raft/config.ts';
import { ConfChangeTransition, ConfChangeType } from '../../src/raft/confchange-types.ts';
import type { ConfChange } from '../../src/raft/confchange-types.ts';
import { MessageType, StateRole, isLocalMessage } from '../../src/raft/types.ts';
import type { MemberId, Message } from '../../src/raft/types.ts';
import type { MemberRecord } from '../../src/server/member-table.ts';
import { Prng } from './prng.ts';
import { EventQueue } from './event-queue.ts';
import { SimNetwork, calmConditions } from './network.ts';
import type { LinkConditions } from './network.ts';
import { nodeVotersAreQuorum, tabMayVote } from '../../src/server/vote-policy.ts';
import { SafetyChecker, SimFailure, confMembers, describeConfState } from './checker.ts';
import { SimHost, describeConfChange, throttledTickIntervalMs, type BackendMode, type HostEnvironment } from './host.ts';
import type { SimTimer, TransportHost } from './seams.ts';
import type { DeliveryReport } from '../../src/seams.ts';
import { Trace, describeMessage } from './trace.ts';
import type { TraceEvent } from './trace.ts';
import { encodeText } from './text.ts';
import { HistoryRecorder, type HistoryEvent } from './history-recorder.ts';
import { OutboxClients, type OutboxEvent, type OutboxStats } from './outbox-clients.ts';
import { checkDurability, checkLinearizable, checkWatches, formatResult, type CheckResult, type HistoryOp, type WatchRecord } from '../check/index.ts';

/** Sabotage modes that make one member misbehave, to prove the checkers can fail. */
export type Sabotage = 'corrupt-storage' | 'ignore-fsync' | 'corrupt-mvcc' | 'stale-reads' | 'outbox-retries';

export interface SimOptions {
  seed: number;
  /** Print every trace event as it happens. */
  verbose?: boolean;
  /** Override the seed's fault-phase length. */
  faultPhaseMs?: number;
  sabotage?: Sabotage | null;
  traceEventsMax?: number;
}

export interface SimResult {
  seed: number;
  ok: boolean;
  failure: SimFailure | null;
  /** Virtual time simulated. */
  simulatedMs: number;
  /** Highest index applied anywhere. */
  commits: number;
  faultsInjected: number;
  messagesSent: number;
  leadersElected: number;
  readsServed: number;
  confChangesApplied: number;
  snapshotsSent: number;
  crashes: number;
  /** Times every tab vanished at once (a killed browser). */
  tabVanishings: number;
  /** Virtual time from the heal to a fresh commit applied on every member (when it came). */
  recoveryMs: number;
  /** Groups of members compared by HashKV at the end (members at one applied index). */
  hashKvGroups: number;
  /** Client operations in the recorded history, and how many of them have an unknown outcome. */
  historyOps: number;
  historyUnknownOps: number;
  /** Watch events the watchers received (all checked). */
  watchEvents: number;
  /** The offline-outbox clients' entries and how they ended (all checked). */
  outbox: OutboxStats;
  /** The recorded history and watches, for offline checking of a failure. */
  history: HistoryOp[];
  watches: WatchRecord[];
  traceDigest: string;
  historyDigest: string;
  /** The last events before the end (or the failure), oldest first. */
  recentEvents: TraceEvent[];
  /** One line per member: role, term, commit, applied, configuration. */
  memberStates: string[];
  clusterShape: string;
}

const tickMs = 10;
const electionTicks = 10;
const electionTimeoutMs = tickMs * electionTicks;
/**
 * After the heal, a leader and a fresh commit on every member must come within this. Over 500
 * seeds recovery took 40-460 ms but for one (seed 265: without pre-vote, a stale member with a
 * faster clock won the election-timer race eight rounds running and disrupted each election),
 * which took 1240 ms; 20 election timeouts leaves room for such runs without hiding a stall.
 */
const livenessBudgetMs = 20 * electionTimeoutMs;
/**
 * After liveness, the outbox clients drain on for at most this before the checks: past the
 * member's request timeout (7 s), so a drain waiting on a proposal lost before the heal is
 * answered and proposes again. Entries still pending then are checked for being applied at most once.
 */
const outboxDrainBudgetMs = 10_000;
/** Members (voters and learners) a configuration grows to at most. */
const membersMax = 7;
/** Voters a configuration keeps at least: removals stop there. */
const votersMin = 3;
/** Members ever created in one run, joiners included (ids are never reused). */
const memberIdsMax = 4 * membersMax;
/** Events the failure report shows. */
const traceRingEventsMax = 400;
/** A conf change not applied within this is considered lost; another may be proposed. */
const confChangeTimeoutMs = 20 * electionTimeoutMs;
/** Search steps the linearizability checker may take per seed (seed 437 needed between 20 M and 80 M: ~90 s; on the schedules since simspeed, seed 266 needs more: open, in test/check's search). */
const historyStepLimit = 80_000_000;
/** How often the heal phase looks for a leader and checks the liveness marker. */
const livenessProbeIntervalMs = tickMs * 2;

if (!(livenessProbeIntervalMs < electionTimeoutMs && electionTimeoutMs < livenessBudgetMs)) {
  throw new Error('simulator bounds: need probe interval < election timeout < liveness budget');
}
if (!(votersMin < membersMax)) throw new Error(`simulator bounds: votersMin ${votersMin} must be below membersMax ${membersMax}`);

type SimEvent =
  | { kind: 'timer'; host: SimHost; incarnation: number; timer: SimTimer }
  | { kind: 'resume'; host: SimHost; incarnation: number; resolve: () => void }
  | { kind: 'deliver'; sender: MemberId; message: Message }
  | { kind: 'report'; member: MemberId; report: DeliveryReport }
  | { kind: 'wake'; member: MemberId }
  | { kind: 'restart'; member: MemberId }
  | { kind: 'client' }
  | { kind: 'read' }
  | { kind: 'fault' }
  | { kind: 'heal-partition'; generation: number }
  | { kind: 'flap'; generation: number; cut: boolean; untilMs: number; links: [MemberId, MemberId][] }
  | { kind: 'membership' }
  | { kind: 'tabs-vanish' }
  | { kind: 'tab-joins' }
  | { kind: 'tab-asks'; member: MemberId }
  | { kind: 'transfer' }
  | { kind: 'sabotage' }
  | { kind: 'history'; event: HistoryEvent }
  | { kind: 'outbox'; event: OutboxEvent }
  | { kind: 'heal' }
  | { kind: 'probe' };

/** Runs one seed. The members are real and asynchronous; the simulation settles their promises between events. */
export function runSeed(options: SimOptions): Promise<SimResult> {
  return new Simulation(options).run();
}

/**
 * Lets every promise reaction the last event set off run, before the next event. The loop runs
 * in a promise reaction, and Node runs a `process.nextTick` callback queued from one only once
 * V8's microtask queue is empty (it drains the whole queue, then the tick queue). Nothing in the
 * members queues ticks or macrotasks (their timers are virtual), so the order is the seed's
 * alone. A setImmediate per event did the same through a turn of the event loop, a poll of the
 * OS included: about half of a seed's wall clock on a loaded machine.
 */
function settle(): Promise<void> {
  return new Promise((resolve) => process.nextTick(resolve));
}

class Simulation {
  private readonly seed: number;
  private nowMs = 0;
  private readonly queue = new EventQueue<SimEvent>();
  private readonly trace: Trace;
  private readonly checker = new SafetyChecker();
  private readonly network: SimNetwork;
  private readonly hosts = new Map<MemberId, SimHost>();
  /** Member ids in creation order: iteration never depends on anything but the seed. */
  private readonly memberIds: MemberId[] = [];
  private nextMemberId = 1;
  /** The first failure, wherever it was detected (a checker inside a member's promise chain, too). */
  private failure: SimFailure | null = null;

  private readonly setupPrng: Prng;
  private readonly faultPrng: Prng;
  private readonly workloadPrng: Prng;
  private readonly clockPrng: Prng;

  private readonly preVote: boolean;
  private readonly checkQuorum: boolean;
  private readonly readOnlyOption: ReadOnlyOption;
  private readonly heartbeatTicks: number;
  private readonly messageBytesMax: number;
  private readonly inflightMessagesMax: number;
  private readonly inflightBytesMax: number;
  private readonly uncommittedBytesMax: number;
  /**
   * Whether a removed member keeps running until it applies its own removal (a partitioned tab
   * that never hears of it runs on until the heal), instead of stopping once the removal is
   * applied anywhere.
   */
  private readonly removedMembersLinger: boolean;
  /**
   * Browser tabs among the members: `webrtc://` members that join through AutoMembership (the
   * leader adds them as learners and promotes them as the vote policy allows) and vanish
   * together every so often (a browser killed). With `tabsMayOutvote` off (most seeds), the
   * checker asserts at every vanishing that the Node voters alone were a quorum of every running
   * member's configuration. With it on, vanishing may cost the quorum until they come back,
   * which the liveness check after the heal covers.
   */
  private readonly tabIds = new Set<MemberId>();
  private readonly tabsPrng: Prng;
  private readonly tabsMayOutvote: boolean;
  private readonly tabGraceMs: number;
  private tabVanishings = 0;
  private readonly diskMode: 'sync' | 'fast' | 'slow';
  private readonly backendMode: BackendMode;
  private readonly faultPhaseMs: number;
  private readonly snapshotEveryEntries: number;
  private readonly snapshotKeepEntries: number;
  private readonly clusterShape: string;
  private readonly initialMembers: MemberRecord[] = [];

  private healed = false;
  private livenessDone = false;
  /** Virtual time liveness was reached (the outboxes may drain on until outboxDrainBudgetMs after it). */
  private livenessAtMs = 0;
  /** The members liveness found committing, whose state the checks at the end compare. */
  private liveMembers: MemberId[] = [];
  private finished = false;
  private hashKvChecks = 0;
  private partitionGeneration = 0;
  private faultsInjected = 0;
  private snapshotsSent = 0;
  private crashes = 0;
  private proposalsIssued = 0;
  private readsServed = 0;
  /** A membership change is in flight until then (or until its promise settles). */
  private confChangeBusyUntilMs = 0;
  private confChangesAccepted = 0;
  private readonly retired = new Set<MemberId>();
  /** Events held for frozen members, in arrival order. */
  private readonly frozenEvents = new Map<MemberId, SimEvent[]>();
  /** Liveness markers put after the heal: the key of the latest, once its put was accepted. */
  private markerKey: string | null = null;
  private markerProposedAtMs = -Infinity;
  private markersIssued = 0;
  private healAtMs = 0;
  /** Clients and watchers whose history the checkers of test/check judge at the end. */
  private readonly recorder: HistoryRecorder;
  /** Offline-outbox clients, checked at the end with the history. */
  private readonly outboxClients: OutboxClients;
  private readonly hostEnv: HostEnvironment;

  constructor(private readonly options: SimOptions) {
    this.seed = options.seed >>> 0;
    this.trace = new Trace(options.traceEventsMax ?? traceRingEventsMax, options.verbose ? (line) => console.log(line) : null);
    this.setupPrng = Prng.derive(this.seed, 'setup');
    this.faultPrng = Prng.derive(this.seed, 'faults');
    this.workloadPrng = Prng.derive(this.seed, 'workload');
    this.clockPrng = Prng.derive(this.seed, 'clock');
    this.network = new SimNetwork(
      Prng.derive(this.seed, 'network'),
      (atMs, sender, message) => this.queue.push(atMs, { kind: 'deliver', sender, message }),
      (kind, message, reason) => this.onNetworkEvent(kind, message, reason),
    );
    const s = this.setupPrng;
    this.preVote = s.chance(0.75);
    this.readOnlyOption = s.chance(0.3) ? ReadOnlyOption.LeaseBased : ReadOnlyOption.Safe;
    // Lease-based reads need check-quorum.
    this.checkQuorum = this.readOnlyOption === ReadOnlyOption.LeaseBased || s.chance(0.75);
    this.heartbeatTicks = s.pick([1, 1, 2, 3]);
    this.messageBytesMax = s.pick([256, 1024, 64 * 1024]);
    this.inflightMessagesMax = s.pick([1, 4, 256]);
    this.snapshotEveryEntries = s.range(20, 120);
    this.faultPhaseMs = options.faultPhaseMs ?? s.range(100, 300) * electionTimeoutMs;
    const voters = s.pick([3, 3, 5]);
    this.snapshotKeepEntries = s.pick([0, 2, 10]);
    // Byte bounds come from their own stream so that adding them left the other choices alone.
    const flow = Prng.derive(this.seed, 'flow');
    this.inflightBytesMax = flow.pick([0, 0, 512, 4096]);
    this.uncommittedBytesMax = flow.pick([0, 0, 1024, 16384]);
    this.removedMembersLinger = Prng.derive(this.seed, 'membership').chance(0.5);
    this.tabsPrng = Prng.derive(this.seed, 'tabs');
    this.tabsMayOutvote = this.tabsPrng.chance(0.25);
    this.tabGraceMs = this.tabsPrng.range(2000, 8000);
    this.diskMode = Prng.derive(this.seed, 'disk').pick(['sync', 'fast', 'slow'] as const);
    this.backendMode = Prng.derive(this.seed, 'backend').pick(['memory', 'async', 'persistent'] as const);
    this.clusterShape =
      `${voters} voters, preVote=${this.preVote} checkQuorum=${this.checkQuorum} reads=${this.readOnlyOption} heartbeat=${this.heartbeatTicks}t ` +
      `election=${electionTicks}t messageBytesMax=${this.messageBytesMax} inflight=${this.inflightMessagesMax} ` +
      `inflightBytes=${this.inflightBytesMax} uncommittedBytes=${this.uncommittedBytesMax} ` +
      `snapshotEvery=${this.snapshotEveryEntries} keep=${this.snapshotKeepEntries} removedLinger=${this.removedMembersLinger} disk=${this.diskMode} backend=${this.backendMode} faultPhase=${this.faultPhaseMs}ms ` +
      `tabsMayOutvote=${this.tabsMayOutvote} tabGrace=${this.tabGraceMs}ms`;
    this.recorder = new HistoryRecorder(
      {
        nowMs: () => this.nowMs,
        runningMembers: () => this.runningMembers(),
        schedule: (atMs, event) => this.queue.push(atMs, { kind: 'history', event }),
        trace: (member, text) => this.trace.add(this.nowMs, 'history', member, text),
      },
      Prng.derive(this.seed, 'history'),
    );
    // The outbox's crashes draw from their own stream, leaving the fault schedule's alone.
    const outboxFaults = Prng.derive(this.seed, 'outbox-faults');
    this.outboxClients = new OutboxClients(
      {
        nowMs: () => this.nowMs,
        runningMembers: () => this.runningMembers(),
        schedule: (atMs, event) => this.queue.push(atMs, { kind: 'outbox', event }),
        trace: (member, text) => this.trace.add(this.nowMs, text.includes('fault:') ? 'fault' : 'history', member, text),
        healed: () => this.healed,
        crash: (host, reason) => {
          host.crash(reason, outboxFaults.chance(0.5));
          this.crashes++;
          this.queue.push(this.nowMs + outboxFaults.range(50, 3000), { kind: 'restart', member: host.id });
        },
        isolate: (member) => {
          const cut: [MemberId, MemberId][] = [];
          for (const other of this.memberIds) {
            for (const [a, b] of [[member, other], [other, member]] as [MemberId, MemberId][]) {
              if (a === b || this.network.isBlocked(a, b)) continue;
              this.network.block(a, b);
              cut.push([a, b]);
            }
          }
          return () => {
            for (const [a, b] of cut) this.network.heal(a, b);
          };
        },
      },
      Prng.derive(this.seed, 'outbox'),
      this.seed,
    );
    const transportHost: TransportHost = {
      send: (from, messages) => this.send(from, messages),
      block: (from, to) => this.network.block(from, to),
      heal: (from, to) => this.network.heal(from, to),
      healAll: (member) => this.network.healMember(member),
      isBlocked: (from, to) => this.network.isBlocked(from, to),
    };
    this.hostEnv = {
      nowMs: () => this.nowMs,
      trace: this.trace,
      checker: this.checker,
      transportHost,
      scheduleTimer: (atMs, host, incarnation, timer) => this.queue.push(atMs, { kind: 'timer', host, incarnation, timer }),
      after: (host, incarnation, ms) => new Promise((resolve) => this.queue.push(this.nowMs + ms, { kind: 'resume', host, incarnation, resolve })),
      diskLatencyMs: (host) => this.diskLatencyMs(host.id),
      backendLatencyMs: (host) => this.backendLatencyMs(host.id),
      onRemoved: (ids, by) => this.onRemoved(ids, by),
      onDied: (host, message) => this.fail(new SimFailure('member died', `m${host.id}: ${message}`)),
      fail: (err) => this.fail(err),
    };
    const peers: MemberId[] = [];
    for (let i = 0; i < voters; i++) peers.push(this.nextMemberId++);
    for (const id of peers) this.initialMembers.push({ id, name: `node${id}`, peerURLs: [nodePeerUrl(id)], clientURLs: [], isLearner: false });
    for (const id of peers) this.addHost(id, peers, false);
  }

  async run(): Promise<SimResult> {
    try {
      this.trace.add(0, 'phase', 0, `seed ${this.seed}: ${this.clusterShape}`);
      for (const id of this.memberIds) this.startMember(this.hosts.get(id)!);
      this.queue.push(this.workloadPrng.range(1, 20), { kind: 'client' });
      this.queue.push(this.workloadPrng.range(1, 50), { kind: 'read' });
      this.queue.push(this.faultPrng.range(200, 1000), { kind: 'fault' });
      this.queue.push(this.workloadPrng.range(500, 3000), { kind: 'membership' });
      this.queue.push(this.workloadPrng.range(500, 3000), { kind: 'transfer' });
      // Every seed gets at least one tab early, so that every seed exercises the vote policy.
      // The first vanishing comes soon after that tab joined (tabJoinsStep schedules it).
      this.queue.push(this.tabsPrng.range(200, 1500), { kind: 'tab-joins' });
      this.recorder.start();
      this.outboxClients.start();
      if (this.options.sabotage) this.queue.push(Math.floor(this.faultPhaseMs / 3), { kind: 'sabotage' });
      this.queue.push(this.faultPhaseMs, { kind: 'heal' });
      // One turn of the event loop per seed (settle() never takes one): whatever the previous
      // seed left queued there runs now, not in the middle of this one.
      await new Promise((resolve) => setImmediate(resolve));
      while (!this.finished) {
        if (this.failure) throw this.failure;
        const next = this.queue.pop();
        if (!next) throw new SimFailure('simulator', 'the event queue ran dry');
        this.nowMs = next.timeMs;
        if (this.healed && !this.livenessDone && this.nowMs > this.healAtMs + livenessBudgetMs) this.failLiveness();
        this.handle(next.payload);
        await settle();
      }
      if (this.failure) throw this.failure;
    } catch (err) {
      this.fail(err);
      this.trace.add(this.nowMs, 'check', 0, `FAILED ${this.failure!.message.split('\n')[0]}`);
    }
    const failure = this.failure;
    const memberStates = this.describeMembers();
    const recentEvents = this.trace.recent();
    // Nothing of this seed may run on after it: stop every member's timers and transports.
    for (const id of this.memberIds) this.hosts.get(id)!.abandon();
    return {
      seed: this.seed,
      ok: failure === null,
      failure,
      simulatedMs: this.nowMs,
      commits: this.checker.appliedMax,
      faultsInjected: this.faultsInjected,
      messagesSent: this.network.messagesSent,
      leadersElected: this.checker.leadersElected,
      readsServed: this.readsServed,
      confChangesApplied: this.checker.confChangesApplied(),
      snapshotsSent: this.snapshotsSent,
      crashes: this.crashes,
      tabVanishings: this.tabVanishings,
      recoveryMs: this.livenessDone ? this.livenessAtMs - this.healAtMs : -1,
      hashKvGroups: this.hashKvChecks,
      historyOps: this.recorder.history.length,
      historyUnknownOps: this.recorder.history.filter((op) => op.output === null).length,
      watchEvents: this.recorder.watchRecords.reduce((n, w) => n + w.responses.reduce((m, r) => m + r.events.length, 0), 0),
      history: this.recorder.history,
      watches: this.recorder.watchRecords,
      outbox: this.outboxClients.stats,
      traceDigest: this.trace.digest(),
      historyDigest: this.checker.historyDigest(),
      recentEvents,
      memberStates,
      clusterShape: this.clusterShape,
    };
  }

  /** Keeps the first failure; anything that is not a SimFailure is an exception with its stack. */
  private fail(err: unknown): void {
    if (this.failure) return;
    this.failure = err instanceof SimFailure ? err : new SimFailure('exception', `${(err as Error).stack ?? String(err)}`);
  }

  // ---- members ----

  private addHost(id: MemberId, peers: MemberId[], tab: boolean): SimHost {
    const raftPrng = Prng.derive(this.seed, `raft-${id}`);
    const host = new SimHost(
      {
        id,
        peers,
        initialMembers: this.initialMembers,
        tab,
        tickMs,
        electionTicks,
        heartbeatTicks: this.heartbeatTicks,
        snapshotEntries: this.snapshotEveryEntries,
        snapshotKeepEntries: this.snapshotKeepEntries,
        raft: {
          preVote: this.preVote,
          checkQuorum: this.checkQuorum,
          readOnlyOption: this.readOnlyOption,
          messageBytesMax: this.messageBytesMax,
          inflightMessagesMax: this.inflightMessagesMax,
          inflightBytesMax: this.inflightBytesMax,
          uncommittedBytesMax: this.uncommittedBytesMax,
        },
        // Clock drift: each member's timers fire slightly off the nominal period.
        timerDriftMs: this.clockPrng.pick([-1, 0, 0, 0, 1]),
        random: () => raftPrng.next(),
        tabGraceMs: this.tabGraceMs,
        tabsMayOutvote: this.tabsMayOutvote,
        backend: this.backendMode,
        outboxForgetsRetries: this.options.sabotage === 'outbox-retries',
      },
      this.hostEnv,
    );
    if (tab) this.tabIds.add(id);
    this.hosts.set(id, host);
    this.memberIds.push(id);
    return host;
  }

  /**
   * How long each of member `id`'s disk writes takes. A third of the seeds use a disk that
   * completes at once; the others a fast one (1–3 ms) or a slow one (1–20 ms, now and then a
   * 100–300 ms fsync stall, until the heal), during which the member keeps stepping messages
   * and ticking.
   */
  private diskLatencyMs(id: MemberId): number {
    if (this.diskMode === 'sync') return 0;
    const disk = this.diskPrngs.get(id) ?? Prng.derive(this.seed, `disk-${id}`);
    this.diskPrngs.set(id, disk);
    if (this.diskMode === 'fast') return disk.range(1, 3);
    // After the heal the disk is healthy too: stalls longer than an election timeout hold back
    // every message (they go out only after the write), so leadership cannot settle.
    return this.healed ? disk.range(1, 3) : disk.chance(0.02) ? disk.range(100, 300) : disk.range(1, 20);
  }

  private readonly diskPrngs = new Map<MemberId, Prng>();

  /**
   * Backend commits land 1–5 ms after the call, now and then 20–200 ms (a slow LMDB sync), until
   * the heal. A member snapshotting on a persistent backend waits for it inside its Ready loop
   * (durableAt), sending nothing meanwhile, so stalls cost leadership like fsync stalls do (seed
   * 205: a leader applying 380 entries stalled past the liveness budget).
   */
  private backendLatencyMs(id: MemberId): number {
    const p = this.backendPrngs.get(id) ?? Prng.derive(this.seed, `backend-${id}`);
    this.backendPrngs.set(id, p);
    if (this.healed) return p.range(1, 5);
    return p.chance(0.02) ? p.range(20, 200) : p.range(1, 5);
  }

  private readonly backendPrngs = new Map<MemberId, Prng>();

  private startMember(host: SimHost): void {
    // A new process: a freeze of the old one, and what it held, are gone.
    host.pausedUntilMs = 0;
    this.frozenEvents.delete(host.id);
    host.start().catch((err) => this.fail(err));
    if (host.tab) this.queue.push(this.nowMs + 1, { kind: 'tab-asks', member: host.id });
  }

  /** Holds an event for a frozen member: its socket, timers and disk completions wait until it wakes up. */
  private defer(member: MemberId, e: SimEvent): void {
    const held = this.frozenEvents.get(member);
    if (held) held.push(e);
    else this.frozenEvents.set(member, [e]);
  }

  /** Ends a freeze (when it runs out, or at the heal) and releases what waited, in order. */
  private wake(m: SimHost): void {
    m.pausedUntilMs = Math.min(m.pausedUntilMs, this.nowMs);
    const held = this.frozenEvents.get(m.id);
    if (!held) return;
    this.frozenEvents.delete(m.id);
    for (const e of held) this.queue.push(this.nowMs, e);
  }

  private frozen(m: SimHost): boolean {
    return this.nowMs < m.pausedUntilMs;
  }

  /** Members that are up and not frozen: the ones clients can talk to. */
  private runningMembers(): SimHost[] {
    const out: SimHost[] = [];
    for (const id of this.memberIds) {
      const m = this.hosts.get(id)!;
      if (m.running && !this.frozen(m)) out.push(m);
    }
    return out;
  }

  /** The running leader with the highest term, if any. */
  private currentLeader(): SimHost | null {
    let best: SimHost | null = null;
    let bestTerm = -1;
    for (const m of this.runningMembers()) {
      const s = m.member().member.basicStatus();
      if (s.role !== StateRole.Leader) continue;
      if (s.term > bestTerm) {
        best = m;
        bestTerm = s.term;
      }
    }
    return best;
  }

  /**
   * Whether `m` still believes it is a member but the most advanced member's configuration (the
   * one that applied the most) no longer lists it. At the heal such a member is told, as etcd's
   * peers tell a removed member, and stops.
   */
  private wasRemoved(m: SimHost): boolean {
    const ahead = this.runningMembers().reduce((a, b) => (b.appliedIndex() > a.appliedIndex() ? b : a), m);
    return ahead !== m && confMembers(m.confState).includes(m.id) && !confMembers(ahead.confState).includes(m.id);
  }

  private onRemoved(ids: MemberId[], by: MemberId): void {
    for (const id of ids) {
      // A tab keeps running when removed and asks to join again (see tabAsks).
      if (this.retired.has(id) || this.tabIds.has(id)) continue;
      // A removed member that lingers runs on until it applies its own removal itself.
      if (this.removedMembersLinger && id !== by) continue;
      this.retired.add(id);
      const host = this.hosts.get(id);
      host?.retire().catch((err) => this.fail(err));
    }
  }

  // ---- network ----

  private send(sender: MemberId, messages: readonly Message[]): void {
    for (const m of messages) {
      if (isLocalMessage(m.type)) {
        throw new SimFailure('message', `m${sender} sent local message ${describeMessage(m)} over the network`);
      }
      if (m.to === sender) throw new SimFailure('message', `m${sender} sent a message to itself: ${describeMessage(m)}`);
      this.network.send(this.nowMs, sender, m);
    }
  }

  private onNetworkEvent(kind: 'send' | 'drop' | 'duplicate', m: Message, reason: string): void {
    // Heartbeats and their responses are the bulk of the traffic; they are elided from the trace.
    if (kind === 'send' && m.type === MessageType.Snap) this.snapshotsSent++;
    const chatty = m.type === MessageType.Heartbeat || m.type === MessageType.HeartbeatResp;
    if (!chatty || kind === 'drop') {
      this.trace.addMessage(this.nowMs, kind, 0, m, reason);
    }
    // What a connection-oriented transport learns: a lost snapshot, and appends that a cut link
    // or a peer that is down refused (random loss goes unnoticed, as on a real network).
    if (kind === 'drop' && m.type === MessageType.Snap) this.reportLater(m.from, { kind: 'snapshot', peer: m.to, delivered: false });
    else if (kind === 'drop' && reason !== 'random loss' && m.type === MessageType.App) this.reportLater(m.from, { kind: 'unreachable', peer: m.to });
  }

  private reportLater(member: MemberId, report: DeliveryReport): void {
    this.queue.push(this.nowMs + 1, { kind: 'report', member, report });
  }

  private deliver(sender: MemberId, m: Message): void {
    const to = this.hosts.get(m.to);
    if (!to || !to.running) {
      this.network.drop(m, to ? 'member down' : 'no such member');
      return;
    }
    if (!this.network.admits(sender, m)) return;
    const chatty = m.type === MessageType.Heartbeat || m.type === MessageType.HeartbeatResp;
    if (!chatty) this.trace.addMessage(this.nowMs, 'deliver', m.to, m, '');
    try {
      to.deliver(m);
    } catch (err) {
      if (err instanceof SimFailure) throw err;
      throw new SimFailure('core threw', `m${m.to} step(${describeMessage(m)}) threw: ${(err as Error).stack ?? String(err)}`);
    }
    if (m.type === MessageType.Snap) this.reportLater(m.from, { kind: 'snapshot', peer: m.to, delivered: true });
  }

  // ---- events ----

  private handle(e: SimEvent): void {
    switch (e.kind) {
      case 'timer': {
        if (e.incarnation !== e.host.incarnation) return;
        if (this.frozen(e.host)) return this.defer(e.host.id, e);
        e.host.fireTimer(e.incarnation, e.timer);
        return;
      }
      case 'resume': {
        // A disk write completed. A crashed process never hears of it; a frozen one when it wakes.
        if (e.incarnation !== e.host.incarnation) return;
        if (this.frozen(e.host)) return this.defer(e.host.id, e);
        e.resolve();
        return;
      }
      case 'deliver': {
        // A frozen process reads its socket when it wakes up.
        const to = this.hosts.get(e.message.to);
        if (to && to.running && this.frozen(to)) return this.defer(to.id, e);
        return this.deliver(e.sender, e.message);
      }
      case 'report': {
        const m = this.hosts.get(e.member)!;
        if (this.frozen(m)) return this.defer(m.id, e);
        m.report(e.report);
        return;
      }
      case 'wake': {
        const m = this.hosts.get(e.member)!;
        if (!this.frozen(m)) this.wake(m);
        return;
      }
      case 'restart': {
        const m = this.hosts.get(e.member)!;
        if (!m.running && !m.removed) this.startMember(m);
        return;
      }
      case 'client':
        return this.clientStep();
      case 'read':
        return this.readStep();
      case 'fault':
        return this.faultStep();
      case 'heal-partition':
        if (e.generation === this.partitionGeneration) {
          this.network.healAll();
          this.trace.add(this.nowMs, 'heal', 0, 'partition healed');
        }
        return;
      case 'flap':
        return this.flapStep(e);
      case 'membership':
        return this.membershipStep();
      case 'tabs-vanish':
        return this.tabsVanishStep();
      case 'tab-joins':
        return this.tabJoinsStep();
      case 'tab-asks':
        return this.tabAsks(this.hosts.get(e.member)!);
      case 'transfer':
        return this.transferStep();
      case 'sabotage':
        return this.sabotageStep();
      case 'history':
        return this.recorder.handle(e.event);
      case 'outbox':
        return this.outboxClients.handle(e.event);
      case 'heal':
        return this.healStep();
      case 'probe':
        return this.probeStep();
    }
  }

  // ---- workload ----

  /**
   * Background load: puts on keys outside the history's prefix, through a random member. It stops
   * once liveness is reached: the drain after it is there for the outboxes (and the history's
   * clients, who go on), and the load would only make every simulated second of it dearer.
   */
  private clientStep(): void {
    if (this.livenessDone) return;
    const w = this.workloadPrng;
    const running = this.runningMembers();
    if (running.length > 0) {
      const batch = w.chance(0.2) ? w.range(2, 8) : 1;
      for (let i = 0; i < batch; i++) {
        const n = ++this.proposalsIssued;
        const kv = w.pick(running).member();
        kv.put({ key: encodeText(`k${w.int(32)}`), value: encodeText(`s${this.seed}-p${n}`) }).catch(() => {});
      }
    }
    this.queue.push(this.nowMs + w.range(2, 30), { kind: 'client' });
  }

  /** Background linearizable reads (ReadIndex, or the lease), through a random member; they stop with the puts (clientStep). */
  private readStep(): void {
    if (this.livenessDone) return;
    const w = this.workloadPrng;
    const running = this.runningMembers();
    if (running.length > 0) {
      w.pick(running)
        .member()
        .range({ key: encodeText(`k${w.int(32)}`) })
        .then(
          () => this.readsServed++,
          () => {},
        );
    }
    this.queue.push(this.nowMs + w.range(10, 80), { kind: 'read' });
  }

  private transferStep(): void {
    if (this.healed) return;
    const w = this.workloadPrng;
    const leader = this.currentLeader();
    if (leader) {
      // Mostly another voter; now and then a learner, the leader itself or a stranger, which
      // the leader must refuse.
      const voters = leader.confState.voters.filter((id) => id !== leader.id);
      const odd = [...leader.confState.learners, leader.id, this.nextMemberId + 100];
      const targets = w.chance(0.9) ? voters : odd;
      if (targets.length > 0) {
        const to = w.pick(targets);
        this.trace.add(this.nowMs, 'transfer', leader.id, `transfer leadership to m${to}`);
        leader.member().transferLeadership(to);
      }
    }
    this.queue.push(this.nowMs + w.range(500, 4000), { kind: 'transfer' });
  }

  /**
   * An operator's membership change, through the member's own API (etcd's MemberAdd,
   * MemberRemove, MemberPromote), or a joint change through the driver: one at a time.
   */
  private membershipStep(): void {
    if (this.healed) return;
    const w = this.workloadPrng;
    this.queue.push(this.nowMs + w.range(300, 2500), { kind: 'membership' });
    if (this.nowMs < this.confChangeBusyUntilMs) return;
    const leader = this.currentLeader();
    if (!leader) return;
    const cs = leader.confState;
    const change = this.pickChange(cs, leader);
    if (!change) return;
    // Mostly to the leader; sometimes through a follower, which forwards it.
    const target = w.chance(0.8) ? leader : w.pick(this.runningMembers());
    this.confChangeBusyUntilMs = this.nowMs + confChangeTimeoutMs;
    this.confChangesAccepted++;
    let done: Promise<unknown>;
    try {
      done = change.run(target);
    } catch (err) {
      done = Promise.reject(err);
    }
    this.trace.add(this.nowMs, 'conf-change', target.id, `${change.what} on ${describeConfState(cs)}`);
    done.then(
      () => {
        this.trace.add(this.nowMs, 'conf-change', target.id, `${change.what}: done`);
        this.confChangeBusyUntilMs = 0;
      },
      (err: Error) => {
        this.trace.add(this.nowMs, 'conf-change', target.id, `${change.what}: ${err.message}`);
        this.confChangeBusyUntilMs = 0;
      },
    );
  }

  /** A membership change that fits `cs`, or null when none does. New Node members start here. */
  private pickChange(
    cs: { voters: MemberId[]; learners: MemberId[]; votersOutgoing: MemberId[]; autoLeave: boolean },
    leader: SimHost,
  ): { what: string; run: (target: SimHost) => Promise<unknown> } | null {
    const w = this.workloadPrng;
    const driver = (cc: ConfChange) => ({ what: `propose ${describeConfChange(cc)}`, run: (t: SimHost) => t.member().member.changeMembership(cc) });
    if (cs.votersOutgoing.length > 0) {
      // Joint: only leaving is valid (an implicit joint change leaves by itself).
      return cs.autoLeave ? null : driver({ transition: ConfChangeTransition.Auto, changes: [], context: null });
    }
    const options: (() => { what: string; run: (target: SimHost) => Promise<unknown> })[] = [];
    const total = cs.voters.length + cs.learners.length;
    if (total < membersMax && this.memberIds.length < memberIdsMax) {
      options.push(() => {
        const id = this.createJoiner(false);
        return { what: `member add m${id} (learner)`, run: (t) => t.member().addMember(id, [nodePeerUrl(id)], true) };
      });
    }
    // The vote policy: a tab learner is promoted only when tabs may vote (vote-policy.ts).
    const tabsMayVote = tabMayVote(cs.voters.filter((v) => !this.tabIds.has(v)).length, this.tabsMayOutvote);
    const promotable = cs.learners.filter((id) => tabsMayVote || !this.tabIds.has(id));
    if (cs.learners.length > 0) {
      if (promotable.length > 0) {
        const id = w.pick(promotable);
        options.push(() => ({ what: `member promote m${id}`, run: (t) => t.member().promoteMember(id) }));
      }
      const id = w.pick(cs.learners);
      options.push(() => ({ what: `member remove m${id} (learner)`, run: (t) => t.member().removeMember(id) }));
    }
    if (cs.voters.length > votersMin) {
      const id = w.pick(cs.voters);
      options.push(() => ({ what: `member remove m${id}`, run: (t) => t.member().removeMember(id) }));
      options.push(() => ({ what: `member remove m${leader.id} (the leader)`, run: (t) => t.member().removeMember(leader.id) }));
    }
    if (promotable.length > 0 && cs.voters.length >= votersMin) {
      // Replace a voter by a learner: two voter changes, so it must go through a joint configuration.
      options.push(() =>
        driver({
          transition: w.pick([ConfChangeTransition.Auto, ConfChangeTransition.JointImplicit, ConfChangeTransition.JointExplicit]),
          changes: [
            { type: ConfChangeType.AddNode, memberId: w.pick(promotable) },
            { type: ConfChangeType.RemoveNode, memberId: w.pick(cs.voters) },
          ],
          context: null,
        }),
      );
    }
    if (options.length === 0) return null;
    return w.pick(options)();
  }

  /** A brand-new, empty member (no peers): the leader must catch it up once it is added. */
  private createJoiner(tab: boolean): MemberId {
    const id = this.nextMemberId++;
    const host = this.addHost(id, [], tab);
    this.startMember(host);
    return id;
  }

  /** A browser tab opens and asks to join (automatic membership), as tabs do. */
  private tabJoinsStep(): void {
    if (this.healed) return;
    if (this.memberIds.length >= memberIdsMax) return;
    const leader = this.currentLeader();
    if (!leader) {
      this.queue.push(this.nowMs + 200, { kind: 'tab-joins' });
      return;
    }
    if (leader.confState.voters.length + leader.confState.learners.length >= membersMax) return;
    const id = this.createJoiner(true);
    this.trace.add(this.nowMs, 'member', id, 'a tab opens and asks to join');
    this.queue.push(this.nowMs + this.tabsPrng.range(500, 3000), { kind: 'tabs-vanish' });
  }

  /**
   * A tab's join requests (adapters/browser/member.ts, maybeAskToJoin): every 200 ms, unless its
   * applied configuration lists it and it follows a leader, it asks every member it reaches;
   * only the leader's AutoMembership acts on it. A tab removed while away (past the grace) never
   * applies its own removal, has no leader, and so asks again: it comes back under the same id.
   */
  private tabAsks(tab: SimHost): void {
    if (!tab.running) return;
    this.queue.push(this.nowMs + 200, { kind: 'tab-asks', member: tab.id });
    if (this.frozen(tab)) return;
    if (confMembers(tab.confState).includes(tab.id) && tab.member().member.basicStatus().lead !== 0) return;
    for (const m of this.runningMembers()) {
      if (m !== tab && !this.network.isBlocked(tab.id, m.id)) m.auto?.join({ id: tab.id, name: `tab${tab.id}`, peerURLs: [tabPeerUrl(tab.id)], wantsVote: true });
    }
  }

  /**
   * Every tab vanishes at once, as when the browser is killed: no goodbye, they come back later
   * (reopened) or at the heal. Without the opt-in, the Node voters must have been a quorum.
   */
  private tabsVanishStep(): void {
    if (this.healed) return;
    const t = this.tabsPrng;
    this.queue.push(this.nowMs + t.range(2000, 8000), { kind: 'tabs-vanish' });
    if (!this.tabsMayOutvote) {
      for (const m of this.runningMembers()) {
        const cs = m.confState;
        if (!nodeVotersAreQuorum((id) => this.tabIds.has(id), [cs.voters, cs.votersOutgoing])) {
          throw new SimFailure('vote-policy', `m${m.id}'s configuration ${describeConfState(cs)} lets tabs {${[...this.tabIds].join(',')}} cost the quorum`);
        }
      }
    }
    const tabs = this.runningMembers().filter((m) => this.tabIds.has(m.id));
    if (tabs.length === 0) return;
    this.tabVanishings++;
    this.trace.add(this.nowMs, 'fault', 0, `tabs vanish together: ${tabs.map((m) => `m${m.id}`).join(', ')}`);
    const backAtMs = this.nowMs + t.range(500, 6000);
    for (const m of tabs) {
      m.crash('fault: the browser is killed', t.chance(0.5));
      this.crashes++;
      // A reopened browser brings them back, or they stay away until the heal.
      if (t.chance(0.7)) this.queue.push(backAtMs, { kind: 'restart', member: m.id });
    }
  }

  // ---- faults ----

  private faultStep(): void {
    if (this.healed) return;
    const f = this.faultPrng;
    this.queue.push(this.nowMs + f.range(100, 1200), { kind: 'fault' });
    const live = this.memberIds.filter((id) => !this.hosts.get(id)!.removed);
    const running = this.runningMembers();
    this.faultsInjected++;
    const choice = f.int(11);
    if (choice <= 1 && running.length > 0) {
      const victim = choice === 0 && this.currentLeader() ? this.currentLeader()! : f.pick(running);
      victim.crash(choice === 0 ? 'fault: crash the leader' : 'fault: crash', f.chance(0.5));
      this.crashes++;
      this.queue.push(this.nowMs + f.range(50, 3000), { kind: 'restart', member: victim.id });
    } else if (choice === 2 && live.length >= 2) {
      const shuffled = shuffle(f, live);
      const cut = f.range(1, shuffled.length - 1);
      this.partition(shuffled.slice(0, cut), shuffled.slice(cut), 'symmetric partition', true);
    } else if (choice === 3 && live.length >= 2) {
      const shuffled = shuffle(f, live);
      const cut = f.range(1, shuffled.length - 1);
      this.partition(shuffled.slice(0, cut), shuffled.slice(cut), 'asymmetric partition', false);
    } else if (choice === 4) {
      const leader = this.currentLeader();
      if (leader) this.partition([leader.id], live.filter((id) => id !== leader.id), 'isolate the leader', true);
    } else if (choice === 5 && live.length >= 2) {
      const shuffled = shuffle(f, live);
      const cut = f.range(1, shuffled.length - 1);
      const links: [MemberId, MemberId][] = [];
      for (const a of shuffled.slice(0, cut)) for (const b of shuffled.slice(cut)) links.push([a, b], [b, a]);
      const generation = ++this.partitionGeneration;
      this.network.healAll();
      this.trace.add(this.nowMs, 'fault', 0, `flapping partition {${shuffled.slice(0, cut)}} | {${shuffled.slice(cut)}}`);
      this.queue.push(this.nowMs, { kind: 'flap', generation, cut: true, untilMs: this.nowMs + f.range(500, 4000), links });
    } else if (choice === 6) {
      const conditions: LinkConditions = {
        dropProbability: f.pick([0, 0.01, 0.05, 0.2]),
        duplicateProbability: f.pick([0, 0.01, 0.05]),
        latencyMsMin: 1,
        latencyMsMax: f.pick([3, 10, 30]),
        tailProbability: f.pick([0, 0.01, 0.05]),
        tailLatencyMsMax: f.pick([100, 300, 1000]),
      };
      this.network.conditions = conditions;
      this.trace.add(this.nowMs, 'fault', 0, `link conditions ${JSON.stringify(conditions)}`);
    } else if (choice === 7) {
      this.partitionGeneration++;
      this.network.healAll();
      this.network.conditions = calmConditions;
      this.trace.add(this.nowMs, 'heal', 0, 'network healed, calm links');
    } else if (choice === 9 && running.length > 0) {
      const leader = this.currentLeader();
      const victim = leader && f.chance(0.5) ? leader : f.pick(running);
      victim.throttledUntilMs = this.nowMs + f.range(500, 5000);
      this.trace.add(this.nowMs, 'fault', victim.id, `throttle timers to ${throttledTickIntervalMs}ms until ${victim.throttledUntilMs}ms (hidden tab)`);
    } else if (choice === 10 && running.length > 0) {
      const leader = this.currentLeader();
      const victim = leader && f.chance(0.5) ? leader : f.pick(running);
      victim.pausedUntilMs = this.nowMs + f.range(100, 3000);
      this.queue.push(victim.pausedUntilMs, { kind: 'wake', member: victim.id });
      this.trace.add(this.nowMs, 'fault', victim.id, `freeze the process until ${victim.pausedUntilMs}ms`);
    } else {
      // Crash a minority-or-majority group at once; they come back at different times.
      const count = f.range(1, Math.max(1, Math.floor(running.length / 2) + 1));
      for (const victim of shuffle(f, running).slice(0, count)) {
        victim.crash('fault: group crash', f.chance(0.5));
        this.crashes++;
        this.queue.push(this.nowMs + f.range(50, 2000), { kind: 'restart', member: victim.id });
      }
    }
  }

  private partition(a: MemberId[], b: MemberId[], what: string, symmetric: boolean): void {
    const generation = ++this.partitionGeneration;
    this.network.healAll();
    for (const x of a) for (const y of b) symmetric ? this.network.blockBoth(x, y) : this.network.block(x, y);
    this.trace.add(this.nowMs, 'fault', 0, `${what} {${a}} ${symmetric ? '|' : '->X'} {${b}}`);
    this.queue.push(this.nowMs + this.faultPrng.range(100, 3000), { kind: 'heal-partition', generation });
  }

  private flapStep(e: Extract<SimEvent, { kind: 'flap' }>): void {
    if (e.generation !== this.partitionGeneration) return;
    if (this.nowMs >= e.untilMs) {
      this.network.healAll();
      this.trace.add(this.nowMs, 'heal', 0, 'flapping stopped');
      return;
    }
    if (e.cut) for (const [a, b] of e.links) this.network.block(a, b);
    else this.network.healAll();
    this.queue.push(this.nowMs + this.faultPrng.range(30, 300), { ...e, cut: !e.cut });
  }

  private sabotageStep(): void {
    const running = this.runningMembers();
    if (this.options.sabotage === 'corrupt-mvcc') {
      // Write to one member's MVCC store behind Raft's back: its log stays right; only comparing
      // HashKV between replicas (or the history's watchers) can notice.
      const victim = running.find((m) => confMembers(m.confState).includes(m.id));
      if (victim) {
        const key = encodeText('sabotage');
        victim.member().mvcc.apply({ kind: 'put', request: { key, value: key } }, { nowMs: 0 });
        this.trace.add(this.nowMs, 'fault', victim.id, 'SABOTAGE: a put written to the MVCC store outside the log');
      }
      return;
    }
    if (this.options.sabotage === 'stale-reads') {
      // Followers answer linearizable reads from their own store, skipping ReadIndex.
      this.recorder.staleReads = true;
      this.trace.add(this.nowMs, 'fault', 0, 'SABOTAGE: followers now serve linearizable reads locally');
      return;
    }
    if (this.options.sabotage === 'outbox-retries') {
      // Every member was started without the outbox sessions' retry check (HostOptions): nothing to do now.
      this.trace.add(this.nowMs, 'fault', 0, 'SABOTAGE: the state machine applies outbox retries again');
      return;
    }
    if (this.options.sabotage === 'ignore-fsync') {
      // Every disk acknowledges syncs it never does, and every crash loses what was unsynced.
      for (const id of this.memberIds) this.hosts.get(id)!.disk.ignoresSync = true;
      this.trace.add(this.nowMs, 'fault', 0, 'SABOTAGE: every disk now ignores fsync');
      return;
    }
    // corrupt-storage: flip a byte of a committed, not yet compacted client entry on disk, then
    // crash and restart so that the member replays the corrupt record.
    for (const m of running) {
      const hs = m.disk.persistedHardState();
      for (let index = m.disk.snapshotIndex() + 1; index <= hs.commit; index++) {
        const e = m.disk.entry(index);
        if (!e || e.type !== 0 || e.data.length === 0) continue;
        const data = e.data.slice();
        data[data.length - 1] ^= 0xff;
        m.disk.corruptEntry(index, data);
        this.trace.add(this.nowMs, 'fault', m.id, `SABOTAGE: corrupted durable entry ${index}, crash and restart`);
        m.crash('sabotage');
        this.startMember(m);
        return;
      }
    }
    this.queue.push(this.nowMs + 50, { kind: 'sabotage' });
  }

  // ---- heal and liveness ----

  private healStep(): void {
    this.healed = true;
    this.healAtMs = this.nowMs;
    this.partitionGeneration++;
    this.network.healAll();
    this.network.conditions = calmConditions;
    for (const id of this.memberIds) {
      const m = this.hosts.get(id)!;
      m.throttledUntilMs = 0;
      this.wake(m);
      if (!m.running && !m.removed) this.startMember(m);
    }
    this.trace.add(this.nowMs, 'phase', 0, `heal: network calm, every member restarted; liveness budget ${livenessBudgetMs}ms`);
    // Members removed while they were away learn of it once they have restarted (so that they
    // compare the configuration they recovered): at the first probe.
    this.queue.push(this.nowMs, { kind: 'probe' });
  }

  private probeStep(): void {
    this.queue.push(this.nowMs + livenessProbeIntervalMs, { kind: 'probe' });
    if (this.livenessDone) {
      // The network is calm: the outboxes drain what they hold, then everything is checked —
      // once the members the checks compare have applied what any member applied: the outcome
      // the last outbox entry heard may come from a member that applied it a moment before the
      // others (seed 156: a tab answered index 2111, the leader had applied 2110, and the
      // check found the committed entry nowhere in the leader's history).
      const drained = this.outboxClients.pendingCount() === 0 && this.liveMembersCaughtUp();
      if (drained || this.nowMs >= this.livenessAtMs + outboxDrainBudgetMs) this.finish();
      return;
    }
    if (this.removedMembersLinger && this.markersIssued === 0) {
      for (const m of this.runningMembers()) if (!m.removed && this.wasRemoved(m)) this.onRemoved([m.id], m.id);
    }
    const leader = this.currentLeader();
    if (!leader) return;
    const required = confMembers(leader.confState);
    const marker = this.markerKey;
    if (marker !== null && required.every((id) => this.hasKey(id, marker))) {
      this.livenessDone = true;
      this.livenessAtMs = this.nowMs;
      this.liveMembers = required;
      this.trace.add(this.nowMs, 'phase', 0, `live: "${marker}" applied on ${required.map((id) => `m${id}`).join(', ')}`);
      return;
    }
    if (this.nowMs - this.markerProposedAtMs >= electionTimeoutMs) {
      const key = `mark/s${this.seed}-${++this.markersIssued}`;
      this.markerProposedAtMs = this.nowMs;
      leader
        .member()
        .put({ key: encodeText(key), value: encodeText('live') })
        .then(
          () => (this.markerKey = key),
          () => {},
        );
    }
  }

  /** Whether every running member liveness found has applied as far as any running member has. */
  private liveMembersCaughtUp(): boolean {
    const appliedMax = Math.max(...this.runningMembers().map((m) => m.appliedIndex()));
    return this.liveMembers.every((id) => {
      const m = this.hosts.get(id)!;
      return !m.running || m.appliedIndex() >= appliedMax;
    });
  }

  private finish(): void {
    this.finished = true;
    this.checkHashKv(this.liveMembers);
    this.checkHistory(this.liveMembers);
  }

  private hasKey(id: MemberId, key: string): boolean {
    const m = this.hosts.get(id);
    if (!m || !m.running) return false;
    return m.member().mvcc.range({ key: encodeText(key), serializable: true }).kvs.length > 0;
  }

  /** Members at the same applied index hold the same MVCC store: HashKV, as etcd compares replicas. */
  private checkHashKv(ids: MemberId[]): void {
    const byIndex = new Map<number, { id: MemberId; hash: number; revision: number }>();
    for (const id of ids) {
      const m = this.hosts.get(id);
      if (!m || !m.running) continue;
      const kv = m.member();
      const applied = kv.mvcc.appliedIndex;
      const h = kv.hashKV(0);
      const seen = byIndex.get(applied);
      if (!seen) byIndex.set(applied, { id, hash: h.hash, revision: h.hashRevision });
      else if (seen.hash !== h.hash || seen.revision !== h.hashRevision) {
        throw new SimFailure(
          'hashkv',
          `at applied index ${applied} m${id} has HashKV ${h.hash.toString(16)} (revision ${h.hashRevision}) but m${seen.id} has ${seen.hash.toString(16)} (revision ${seen.revision})`,
        );
      }
    }
    this.hashKvChecks += byIndex.size;
  }

  /**
   * The recorded history, judged by the checkers of test/check: linearizability (values and
   * revisions), the watchers' streams, and durability against the final state of the members
   * that applied the most (members behind them have not applied everything yet).
   */
  private checkHistory(ids: MemberId[]): void {
    this.recorder.finish();
    const running = ids.map((id) => this.hosts.get(id)!).filter((m) => m.running);
    const appliedMax = Math.max(...running.map((m) => m.member().mvcc.appliedIndex));
    this.outboxClients.stop();
    const outboxOps = this.outboxClients.check(running.find((m) => m.member().mvcc.appliedIndex === appliedMax)!);
    const history = [...this.recorder.history, ...outboxOps];
    const o = this.outboxClients.stats;
    this.trace.add(this.nowMs, 'check', 0, `outbox: ${o.queued} entries: ${o.committed} committed once, ${o.conflicts} conflicts, ${o.pending} pending, ${o.duplicates} duplicates`);
    const finals = running.filter((m) => m.member().mvcc.appliedIndex === appliedMax).map((m) => HistoryRecorder.finalState(m));
    const results: [string, CheckResult][] = [
      // A step cap, not a time cap, keeps the verdict deterministic.
      ['linearizability', checkLinearizable(history, { stepLimit: historyStepLimit, timeLimitMs: Infinity })],
      ['watches', checkWatches(history, this.recorder.watchRecords)],
      ['durability', checkDurability(history, finals)],
    ];
    for (const [name, result] of results) {
      if (result.ok === true) continue;
      const what = result.ok === false ? result.anomaly : 'inconclusive';
      throw new SimFailure(`history ${name}`, `${what} in the recorded history (${history.length} ops)\n${formatResult(name, result)}`);
    }
    this.trace.add(this.nowMs, 'check', 0, `history: ${history.length} ops, ${finals.length} final states: linearizable, watches and durability ok`);
  }

  private failLiveness(): never {
    throw new SimFailure(
      'liveness',
      `no leader committed a fresh proposal on every member within ${livenessBudgetMs}ms of the heal at ${this.healAtMs}ms\n` +
        this.describeMembers().join('\n'),
    );
  }

  private describeMembers(): string[] {
    return this.memberIds.map((id) => {
      const m = this.hosts.get(id)!;
      if (!m.running) {
        return `  m${id}${m.tab ? ' (tab)' : ''}: ${m.removed ? 'removed' : 'down'}; durable snapshot ${m.disk.snapshotIndex()} log to ${m.disk.lastIndex()} commit ${m.disk.persistedHardState().commit}`;
      }
      const s = m.member().status();
      let line = `  m${id}${m.tab ? ' (tab)' : ''}: ${s.role} term ${s.term} lead ${s.lead} commit ${s.commit} applied ${s.applied} last ${s.lastIndex} ${describeConfState(s.confState)}`;
      if (s.progress) {
        const parts: string[] = [];
        for (const [peer, p] of s.progress) {
          parts.push(`m${peer} ${p.state} match ${p.match} next ${p.next} inflight ${p.inflight}${p.recentActive ? '' : ' inactive'}`);
        }
        line += `\n      progress: ${parts.join('; ')}`;
      }
      return line;
    });
  }
}

/** A Node member's peer URL, as its member-table record holds it. */
function nodePeerUrl(id: MemberId): string {
  return `http://127.0.0.1:${20000 + id}`;
}

/** A tab's peer URL: the `webrtc://` scheme is what makes it a tab to the vote policy. */
function tabPeerUrl(id: MemberId): string {
  return `webrtc://${id.toString(16)}`;
}

function shuffle<T>(prng: Prng, items: readonly T[]): T[] {
  const out = items.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = prng.int(i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}
