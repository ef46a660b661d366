// openBrowserMember: a browser tab as a full cluster member. It composes the member's IndexedDB
// storage (the member id is the database's, see identity.ts), the WebRTC transport over a
// signaling that also carries membership control (adapters/signaling/control.ts), a Worker
// clock so a hidden tab keeps its Raft ticks, a KvMember, and AutoMembership. A new tab founds
// the cluster or joins it (founding.ts); a member that is not in the configuration it wants
// to be in keeps asking every member present until it is. The result is the usual Client over
// the local member, plus status events and the transport's fault switch.

import type { MemberStatusBase } from '../../src/server/member-status.ts';
import { workerTimerClock } from '../clock/worker-timer.ts';
import { BroadcastChannelSignaling } from '../signaling/broadcast-channel.ts';
import { ControlChannel, serveMembershipControl, type BootstrapMember, type ControlMessage } from '../signaling/control.ts';
import type { Signaling } from '../signaling/types.ts';
import { WebSocketSignaling } from '../signaling/ws-client.ts';
import { IndexedDbStorage } from '../storage/indexeddb/index.ts';
import { IndexedDbBackend } from '../storage/indexeddb/backend.ts';
import { PrefetchedBackend } from '../../src/backend/prefetched.ts';
import { WebRtcTransport } from '../transport/webrtc/index.ts';
import { Client } from '../../src/client/client.ts';
import { InProcessConnection } from '../../src/client/local-connection.ts';
import { MessageType, StateRole, newMessage, type MemberId, type Message } from '../../src/raft/types.ts';
import type { Clock, FaultSwitch, Transport } from '../../src/seams.ts';
import { AutoMembership, tabGraceMsDefault, type JoinRequest } from '../../src/server/auto-membership.ts';
import { describeQuorumLoss, QuorumWatch } from '../../src/server/quorum-watch.ts';
import { mayVote } from '../../src/server/vote-policy.ts';
import { KvMember } from '../../src/server/kv-member.ts';
import { ConnectivityWatch, type Connectivity } from '../../src/server/connectivity.ts';
import type { Consistency } from '../../src/client/consistency.ts';
import { openTabOutbox, type Outbox } from './outbox.ts';
import { peerUrlOf, planStart, type StartPlan } from './founding.ts';
import { claimIdentity } from './identity.ts';

export interface BrowserMemberTimings {
  /** Milliseconds per Raft tick (default 100, etcd's heartbeat interval). */
  tickMs: number;
  /** Ticks without a leader before an election (default 10: etcd's 1 s election timeout). */
  electionTicks: number;
  heartbeatTicks: number;
  /** How long a write or linearizable read waits before failing (default 7 s). */
  requestTimeoutMs: number;
  /** How often a member outside the configuration it wants asks again to join (default 300 ms). */
  joinRetryMs: number;
  /** How long a tab with no state waits for an answer from a running cluster before founding one (default 500 ms). */
  probeWindowMs: number;
  /** How long close({ leave: true }) waits to see itself removed (default 5 s). */
  leaveTimeoutMs: number;
  /** How often status is sampled for changes that raise no event of their own (connected peers; default 250 ms). */
  statusIntervalMs: number;
  /** How long a tab member may be unreachable before the leader removes it (default 30 s). */
  tabGraceMs: number;
}

export const defaultBrowserMemberTimings: BrowserMemberTimings = {
  tickMs: 100,
  electionTicks: 10,
  heartbeatTicks: 1,
  requestTimeoutMs: 7000,
  joinRetryMs: 300,
  probeWindowMs: 500,
  leaveTimeoutMs: 5000,
  statusIntervalMs: 250,
  tabGraceMs: tabGraceMsDefault,
};

export interface BrowserMemberOptions {
  /** The cluster's name: tabs with the same name (and secret) form one cluster. */
  cluster: string;
  /**
   * The admission secret: signaling admits only members that present it. With a Node member's
   * signaling, its --admission-secret (a page that member serves fetches it from
   * /meshkv/admission, see fetchAdmission); between tabs alone, any string the tabs share.
   */
  secret: string;
  /**
   * How members find each other: 'broadcast' (default) for tabs of one origin and profile, with
   * no server; or the ws:// / wss:// URL of a Node member's signaling endpoint.
   */
  signaling?: 'broadcast' | string;
  /** Shown in member lists (default `tab-<id in hex>`). */
  name?: string;
  /** Become a voter once caught up (default true); false keeps the tab a learner (a read replica). */
  wantsVote?: boolean;
  /**
   * Set the cluster's tab vote policy once joined (unset: leave it). In a cluster with Node
   * members tabs stay learners by default, so that closing them never costs the quorum; true
   * lets tabs become voters and outvote the Node members, and then a browser that closes or
   * crashes can leave the Node members without a quorum. Tabs of a tab-only cluster always vote.
   */
  tabsMayOutvote?: boolean;
  timings?: Partial<BrowserMemberTimings>;
  /**
   * etcd auth for `client`: once the cluster has auth enabled, its calls are made as this user
   * and checked against the user's roles, as etcd checks them. Without, the client acts as the
   * tab's member, which holds every key in its IndexedDB anyway: auth in a tab tells the app's
   * users apart, it does not guard the data from the page's own code.
   */
  user?: string;
  password?: string;
  /** The client's read consistency when a read does not choose: 'linearizable' (default) or 'local' (docs/offline.md). */
  consistency?: Consistency;
  /** While offline, the client refuses linearizable reads and writes at once (OfflineError) instead of after requestTimeoutMs. */
  failFastOffline?: boolean;
  log?: (level: 'debug' | 'info' | 'warn', msg: string) => void;
  /**
   * Wraps what the member runs on (the demo: a tap on every Raft message, and a pause that
   * freezes the member's timers and holds its traffic). Both default to the identity.
   */
  wrap?: { clock?: (c: Clock) => Clock; transport?: (t: Transport) => Transport };
}

export interface BrowserMemberStatus extends MemberStatusBase {
  /** Members whose data channel to this tab is open. */
  connectedPeers: MemberId[];
  /** The browser's own idea of network access (navigator.onLine). */
  online: boolean;
  /** This member is in the configuration it wants (a voter, or a learner if it wants no vote). */
  joined: boolean;
  /** This tab founded the cluster (it found nobody there). */
  founded: boolean;
  /** The cluster's tab vote policy: tabs may outvote its Node members (see tabsMayOutvote). */
  tabsMayOutvote: boolean;
  /** Why this member has no quorum (missing voters, how long, the remedy), or null while it has one. */
  quorumLoss: string | null;
  /** Hears from a leader with a quorum ('online') or not; see connectivity() for when it last did. */
  connectivity: Connectivity['state'];
  /** setOffline(true) cut this tab off. */
  cutOff: boolean;
}

export interface BrowserMember {
  readonly id: MemberId;
  /** The same client API as everywhere else, over this tab's member. */
  readonly client: Client;
  /** The member itself (advanced use: membership changes, metrics). */
  readonly kv: KvMember;
  /** Cut and heal this tab's links to peers (tests, demos). */
  readonly faults: FaultSwitch;
  /**
   * Switches the cluster's tab vote policy live (a replicated setting; the leader then promotes
   * or demotes tabs). Needs a quorum. See BrowserMemberOptions.tabsMayOutvote for the consequence.
   */
  setTabsMayOutvote(tabsMayOutvote: boolean): Promise<void>;
  status(): BrowserMemberStatus;
  /** Calls `fn` with the status whenever it changes; returns the unsubscribe. */
  onStatus(fn: (s: BrowserMemberStatus) => void): () => void;
  /** Online or offline, the time and revision it last heard a leader, how stale local reads may be (docs/offline.md). */
  connectivity(): Connectivity;
  /** Calls `fn` on every change between online and offline; returns the unsubscribe. */
  onConnectivity(fn: (c: Connectivity) => void): () => void;
  /**
   * Cuts this tab off from every peer and from membership control (true), or reconnects it
   * (false): what a lost network does, for tests and the demo's "go offline" switch.
   */
  setOffline(offline: boolean): void;
  /**
   * The durable outbox of this origin's tabs for this cluster (opened on first call, closed
   * with the member): writes queued with a guard, drained in order when online (docs/offline.md).
   */
  outbox(): Promise<Outbox>;
  /**
   * Stops the member. With `leave: true` it first hands leadership on, asks to be removed,
   * waits (up to leaveTimeoutMs) to see it done, and then deletes its database: it is gone for
   * good (if the removal was not seen in time, the database stays).
   * Without, it stops as a closed tab does and comes back as itself when reopened.
   */
  close(opts?: { leave?: boolean }): Promise<void>;
}

export async function openBrowserMember(options: BrowserMemberOptions): Promise<BrowserMember> {
  checkOptions(options);
  const timings = { ...defaultBrowserMemberTimings, ...options.timings };
  const log = options.log ?? (() => {});
  const clock = options.wrap?.clock?.(workerTimerClock()) ?? workerTimerClock();
  const { id, storage, hasState } = await claimIdentity(options.cluster);
  // The store lives in IndexedDB beside the log; only its key index stays in memory
  // (src/backend/prefetched.ts). The storage's Web Lock, held now, covers it too.
  const backendOf = { cluster: options.cluster, memberId: id };
  let backend: PrefetchedBackend;
  try {
    // A member with no log starts empty: a backend an earlier member of this id left is stale.
    if (!hasState) await IndexedDbBackend.destroy(backendOf);
    backend = await PrefetchedBackend.open(await IndexedDbBackend.open(backendOf));
  } catch (err) {
    await storage.close();
    throw err;
  }
  const name = options.name ?? `tab-${id.toString(16)}`;
  const wantsVote = options.wantsVote ?? true;

  const channel = new ControlChannel(openSignaling(options, id, log), log);
  // Registered before the transport registers its own pagehide teardown, so that the leave
  // notice and the leadership hand-off go out while the links are still up.
  const pageHide = { handler: () => {} };
  const onPageHide = () => pageHide.handler();
  window.addEventListener('pagehide', onPageHide);
  const unlistenPageHide = () => window.removeEventListener('pagehide', onPageHide);
  let transport: WebRtcTransport;
  // Raft hears only members of this tab's table (KvMember.hearsFrom); before the member is up,
  // nobody: Raft resends whatever is dropped in that moment.
  let started: KvMember | null = null;
  const admits = (peer: MemberId) => started?.hearsFrom(peer) ?? false;
  try {
    // Every tab is reached at webrtc://<id>: link to each member signaling shows us.
    channel.onPresence((peer, present) => {
      if (present) transport?.addPeer(peer, peerUrlOf(peer));
    });
    transport = await WebRtcTransport.open({ id, signaling: channel.transportSignaling, log, admits });
    for (const peer of channel.presentMembers()) transport.addPeer(peer, peerUrlOf(peer));
  } catch (err) {
    unlistenPageHide();
    channel.close();
    await storage.close();
    await backend.close();
    throw err;
  }

  const inbound = new InjectingTransport(transport);
  const bootstrapKey = `${IndexedDbStorage.databaseName({ cluster: options.cluster, memberId: id })}#bootstrap-members`;
  let kv: KvMember;
  let plan: StartPlan;
  try {
    plan = await planStart({ cluster: options.cluster, id, name, hasState, channel, probeWindowMs: timings.probeWindowMs, bootstrapKey, log });
    try {
      kv = await KvMember.start({
        id,
        peers: plan.peers,
        clock,
        storage,
        transport: options.wrap?.transport?.(inbound) ?? inbound,
        random: Math.random,
        authCrypto: globalThis.crypto,
        tickMs: timings.tickMs,
        electionTicks: timings.electionTicks,
        heartbeatTicks: timings.heartbeatTicks,
        requestTimeoutMs: timings.requestTimeoutMs,
        initialMembers: plan.bootstrapMembers.map((b) => ({ ...b, clientURLs: [], isLearner: false })),
        mvcc: { backend },
        log: (level, msg) => {
          if (level !== 'debug') log(level, msg);
        },
      });
    } finally {
      plan.release();
    }
  } catch (err) {
    unlistenPageHide();
    await transport.close();
    await storage.close();
    await backend.close();
    throw err;
  }
  // The store's index is built: the key bucket is read only through plan/fetch/execute now.
  backend.openingDone();
  started = kv;
  const member = new RunningBrowserMember({ id, name, wantsVote, tabsMayOutvote: options.tabsMayOutvote, founded: plan.founded, timings, clock, kv, channel, transport, cluster: options.cluster, backend, credentials: { user: options.user, password: options.password }, bootstrapKey, bootstrapMembers: plan.bootstrapMembers, unlistenPageHide, inbound, consistency: options.consistency, failFastOffline: options.failFastOffline, log });
  pageHide.handler = () => member.announceLeave();
  return member;
}

function checkOptions(o: BrowserMemberOptions): void {
  if (typeof o !== 'object' || o === null) throw new TypeError('openBrowserMember: options are required');
  if (typeof o.cluster !== 'string' || o.cluster === '') throw new TypeError('openBrowserMember: cluster must be a non-empty string');
  if (typeof o.secret !== 'string') throw new TypeError('openBrowserMember: secret must be a string');
  const s = o.signaling ?? 'broadcast';
  if (o.tabsMayOutvote !== undefined && typeof o.tabsMayOutvote !== 'boolean') throw new TypeError('openBrowserMember: tabsMayOutvote must be a boolean');
  if ((o.user === undefined) !== (o.password === undefined)) throw new TypeError('openBrowserMember: give both user and password, or neither');
  if (s !== 'broadcast' && !/^wss?:\/\//.test(s)) throw new TypeError(`openBrowserMember: signaling must be 'broadcast' or a ws:// or wss:// URL, not ${JSON.stringify(s)}`);
  for (const [k, v] of Object.entries(o.timings ?? {})) {
    if (!(k in defaultBrowserMemberTimings)) throw new TypeError(`openBrowserMember: unknown timing ${k}`);
    if (!Number.isSafeInteger(v) || v < 1) throw new TypeError(`openBrowserMember: timing ${k} is ${v}, not a positive integer`);
  }
}

function openSignaling(o: BrowserMemberOptions, id: MemberId, log: NonNullable<BrowserMemberOptions['log']>): Signaling {
  const who = { cluster: o.cluster, secret: o.secret, id };
  const s = o.signaling ?? 'broadcast';
  return s === 'broadcast' ? new BroadcastChannelSignaling(who, log) : new WebSocketSignaling({ ...who, url: s, log });
}

interface Parts {
  id: MemberId;
  name: string;
  wantsVote: boolean;
  tabsMayOutvote: boolean | undefined;
  founded: boolean;
  timings: BrowserMemberTimings;
  clock: Clock;
  kv: KvMember;
  channel: ControlChannel;
  transport: WebRtcTransport;
  cluster: string;
  credentials: { user?: string; password?: string };
  backend: PrefetchedBackend;
  bootstrapKey: string;
  bootstrapMembers: BootstrapMember[];
  unlistenPageHide: () => void;
  inbound: InjectingTransport;
  consistency: Consistency | undefined;
  failFastOffline: boolean | undefined;
  log: NonNullable<BrowserMemberOptions['log']>;
}

class RunningBrowserMember implements BrowserMember {
  readonly id: MemberId;
  readonly client: Client;
  readonly kv: KvMember;
  readonly faults: FaultSwitch;
  private readonly auto: AutoMembership;
  private readonly quorumWatch: QuorumWatch;
  private readonly listeners = new Set<(s: BrowserMemberStatus) => void>();
  private lastStatusJson = '';
  private readonly stops: (() => void)[] = [];
  private closed = false;
  private closing: Promise<void> | null = null;
  /** Set when a leave was announced (pagehide or close): the member stops asking to join. */
  private leaving = false;
  private readonly onOnline = () => this.emitIfChanged();
  private readonly connectivityWatch: ConnectivityWatch;
  private openedOutbox: Promise<Outbox> | null = null;

  constructor(private readonly p: Parts) {
    this.id = p.id;
    this.kv = p.kv;
    this.faults = p.transport.faults;
    this.auto = new AutoMembership(p.kv, {
      clock: p.clock,
      tabGraceMs: p.timings.tabGraceMs,
      ...(p.tabsMayOutvote === undefined ? {} : { tabsMayOutvote: p.tabsMayOutvote }),
      log: p.log,
    });
    this.quorumWatch = new QuorumWatch(p.kv, {
      clock: p.clock,
      whenGoneForGood:
        'restart a Node member of the cluster with --force-new-cluster (it keeps its data; writes only the missing members held are lost); a cluster of tabs only: copy what this tab holds (serializable reads) into a new cluster',
      log: (msg) => p.log('warn', msg),
    });
    this.connectivityWatch = new ConnectivityWatch(p.kv, p.clock, p.timings.statusIntervalMs);
    this.stops.push(this.connectivityWatch.onChange(() => this.emitIfChanged()));
    this.client = new Client({
      connection: new InProcessConnection([p.kv], { clock: p.clock, ...p.credentials }),
      clock: p.clock,
      connectivity: () => this.connectivityWatch.current(),
      ...(p.consistency === undefined ? {} : { consistency: p.consistency }),
      ...(p.failFastOffline === undefined ? {} : { failFastOffline: p.failFastOffline }),
    });
    this.stops.push(serveMembershipControl(p.channel, p.kv, this.auto, p.bootstrapMembers));
    this.stops.push(p.channel.onControl((from, msg) => this.maybeTakeOver(from, msg)));
    this.stops.push(p.clock.every(p.timings.joinRetryMs, () => this.maybeAskToJoin()));
    this.stops.push(p.clock.every(p.timings.statusIntervalMs, () => this.emitIfChanged()));
    // etcd's publish: this tab's name goes into the member table once it is in it and there is a leader.
    this.stops.push(p.kv.keepAttributesPublished(p.name, [], p.timings.statusIntervalMs));
    this.stops.push(p.kv.onChange(() => this.emitIfChanged()));
    window.addEventListener('online', this.onOnline);
    window.addEventListener('offline', this.onOnline);
    this.maybeAskToJoin();
  }

  setTabsMayOutvote(tabsMayOutvote: boolean): Promise<void> {
    return this.auto.setTabsMayOutvote(tabsMayOutvote);
  }

  status(): BrowserMemberStatus {
    const s = this.kv.status();
    const quorum = this.quorumWatch.report();
    const voters = [...s.confState.voters];
    const learners = [...s.confState.learners];
    return {
      id: this.id,
      name: this.p.name,
      role: s.role,
      term: s.term,
      leader: s.lead,
      commit: s.commit,
      applied: s.applied,
      voters,
      learners,
      connectedPeers: this.p.channel.presentMembers().filter((peer) => this.p.transport.isConnected(peer)).sort((a, b) => a - b),
      online: navigator.onLine,
      joined: this.isJoined(voters, learners),
      founded: this.p.founded,
      tabsMayOutvote: this.kv.members.tabsMayOutvote,
      quorumLoss: quorum && describeQuorumLoss(quorum),
      connectivity: this.connectivityWatch.current().state,
      cutOff: this.p.inbound.cutOff,
    };
  }

  connectivity(): Connectivity {
    return this.connectivityWatch.current();
  }

  onConnectivity(fn: (c: Connectivity) => void): () => void {
    return this.connectivityWatch.onChange(fn);
  }

  setOffline(offline: boolean): void {
    this.p.inbound.cutOff = offline;
    this.p.channel.setMuted(offline);
    this.emitIfChanged();
  }

  outbox(): Promise<Outbox> {
    if (this.closed) return Promise.reject(new TypeError('outbox: the member is closed'));
    this.openedOutbox ??= openTabOutbox({
      cluster: this.p.cluster,
      kv: this.kv,
      connectivity: () => this.connectivityWatch.current(),
      onConnectivity: (fn) => this.connectivityWatch.onChange(fn),
      clock: this.p.clock,
      log: this.p.log,
    });
    return this.openedOutbox;
  }

  onStatus(fn: (s: BrowserMemberStatus) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  close(opts: { leave?: boolean } = {}): Promise<void> {
    this.closing ??= this.shutDown(opts.leave === true);
    return this.closing;
  }

  private async shutDown(leave: boolean): Promise<void> {
    const removed = leave && (await this.leaveCluster());
    this.closed = true;
    for (const stop of this.stops) stop();
    this.p.unlistenPageHide();
    window.removeEventListener('online', this.onOnline);
    window.removeEventListener('offline', this.onOnline);
    this.auto.stop();
    this.quorumWatch.stop();
    this.connectivityWatch.stop();
    if (this.openedOutbox) (await this.openedOutbox.catch(() => null))?.close();
    this.client.close();
    await this.kv.stop(); // closes the transport (and with it signaling) and the storage
    await this.p.backend.close();
    if (removed) {
      // Out of the cluster for good: nobody needs this member's log any more. A member whose
      // removal was not seen keeps its data: it may still be a voter, and a tab reopening it
      // comes back as it.
      localStorage.removeItem(this.p.bootstrapKey);
      await IndexedDbStorage.destroy({ cluster: this.p.cluster, memberId: this.id });
      await IndexedDbBackend.destroy({ cluster: this.p.cluster, memberId: this.id });
    }
  }

  /**
   * In the configuration it wants: a voter, or a learner when it wants no vote or when the vote
   * policy keeps tabs learners in this cluster (vote-policy.ts; it then has all it can get).
   */
  private isJoined(voters: readonly MemberId[], learners: readonly MemberId[]): boolean {
    if (voters.includes(this.id)) return true;
    if (!learners.includes(this.id)) return false;
    return !this.p.wantsVote || !mayVote(this.kv.members, { voters }, this.id);
  }

  /**
   * Asks every member present to add (or promote) this one, unless its applied configuration
   * has it as wanted and it follows a leader. A member removed while its tab was away never
   * applies its own removal, so it still sees itself in its configuration; it has no leader
   * either, and that is what sends it asking again.
   */
  private maybeAskToJoin(): void {
    if (this.closed || this.leaving || this.p.inbound.cutOff) return;
    const s = this.kv.status();
    if (this.isJoined(s.confState.voters, s.confState.learners) && s.lead !== 0) return;
    const request: JoinRequest = { id: this.id, name: this.p.name, peerURLs: [peerUrlOf(this.id)], wantsVote: this.p.wantsVote };
    this.p.channel.broadcast({ kind: 'join', request });
  }


  private emitIfChanged(): void {
    if (this.closed || this.kv.isStopped()) return;
    const s = this.status();
    const json = JSON.stringify(s);
    if (json === this.lastStatusJson) return;
    this.lastStatusJson = json;
    for (const fn of this.listeners) fn(s);
  }

  /**
   * The tab is going away (pagehide): hand leadership to the most caught-up voter and tell
   * every member to remove this one, naming the successor. Nothing here may wait: the page is
   * being torn down.
   */
  announceLeave(): void {
    if (this.closed || this.leaving) return;
    this.leaving = true;
    const successor = this.maybeHandOffLeadership() ?? undefined;
    this.p.channel.broadcast({ kind: 'leave', id: this.id, successor });
    this.auto.leave(this.id);
  }

  /**
   * A leaving leader named this member its successor (control.ts, leave): if this member still
   * follows it in that term, it takes the notice as the leader's TimeoutNow, which may not
   * arrive over a data channel the closing page tore down, and campaigns now.
   */
  private maybeTakeOver(from: MemberId, msg: ControlMessage): void {
    if (msg.kind !== 'leave' || msg.successor?.id !== this.id || this.closed) return;
    const s = this.kv.status();
    if (s.lead !== from || s.term !== msg.successor.term) return;
    this.p.inbound.deliver(newMessage(MessageType.TimeoutNow, this.id, from, msg.successor.term));
  }

  /** close({ leave: true }): announce, then wait to see this member removed; false if that timed out. */
  private async leaveCluster(): Promise<boolean> {
    this.leaving = true;
    const deadline = this.p.clock.now() + this.p.timings.leaveTimeoutMs;
    this.maybeHandOffLeadership();
    await this.waitUntil(() => !this.kv.isLeader() || !this.hasOtherVoters(), deadline);
    let removed = false;
    const stopWatching = this.p.channel.onControl((from, msg) => {
      // The leader's applied configuration no longer has this member: the removal committed.
      if (msg.kind === 'probe-reply' && msg.inCluster && msg.leader === from && !msg.voters.includes(this.id) && !msg.learners.includes(this.id)) removed = true;
    });
    try {
      await this.waitUntil(() => {
        if (removed) return true;
        this.p.channel.broadcast({ kind: 'leave', id: this.id });
        this.p.channel.broadcast({ kind: 'probe' });
        this.auto.leave(this.id);
        return false;
      }, deadline);
    } finally {
      stopWatching();
    }
    if (!removed) this.p.log('warn', `member ${this.id.toString(16)} closed without seeing its removal within ${this.p.timings.leaveTimeoutMs} ms; it keeps its data; the cluster removes it if it received the request, else remove it by hand`);
    return removed;
  }

  private hasOtherVoters(): boolean {
    return this.kv.status().confState.voters.some((v) => v !== this.id);
  }

  /**
   * On the leader, hands leadership to the voter with the longest log. Returns it with the
   * term when Raft sent it TimeoutNow at once (its log was complete, and this leader forfeited
   * its lease); null otherwise (not the leader, no other voter, or the transfer waits for the
   * transferee to catch up first).
   */
  private maybeHandOffLeadership(): { id: MemberId; term: number } | null {
    const s = this.kv.status();
    if (s.role !== StateRole.Leader || s.progress === null) return null;
    let best: MemberId = 0;
    let bestMatch = -1;
    for (const v of s.confState.voters) {
      const match = s.progress.get(v)?.match ?? 0;
      if (v !== this.id && match > bestMatch) [best, bestMatch] = [v, match];
    }
    if (best === 0) return null;
    this.kv.transferLeadership(best);
    return bestMatch === s.lastIndex ? { id: best, term: s.term } : null;
  }

  /** Polls `done` every joinRetryMs until it is true or `deadlineMs` (clock time) passes. */
  private async waitUntil(done: () => boolean, deadlineMs: number): Promise<void> {
    while (!done() && this.p.clock.now() < deadlineMs) await new Promise((r) => setTimeout(r, this.p.timings.joinRetryMs));
  }
}

/**
 * The transport as the member sees it, plus `deliver`: a message this tab learned of another
 * way (a leaving leader's TimeoutNow, relayed as its leave notice) enters Raft as if it had
 * arrived over the data channel.
 */
class InjectingTransport implements Transport {
  private onMessage: ((m: Message) => void) | null = null;
  /** While true (setOffline), nothing goes out or comes in: the tab is cut off from every peer, present or future. */
  cutOff = false;

  constructor(private readonly inner: WebRtcTransport) {}

  get faults(): FaultSwitch {
    return this.inner.faults;
  }

  start(onMessage: (m: Message) => void): void {
    this.onMessage = onMessage;
    this.inner.start((m) => {
      if (!this.cutOff) onMessage(m);
    });
  }

  send(messages: readonly Message[]): void {
    if (!this.cutOff) this.inner.send(messages);
  }

  addPeer(id: MemberId, address: string): void {
    this.inner.addPeer(id, address);
  }

  removePeer(id: MemberId): void {
    this.inner.removePeer(id);
  }

  deliver(m: Message): void {
    this.onMessage?.(m);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
