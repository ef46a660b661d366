// "This tab is one member": a real browser member (openBrowserMember: IndexedDB, WebRTC,
// AutoMembership) of a cluster with the other tabs and the Node member that served the page.
// The tab knows its own member first hand; the other tabs tell it theirs over the demo's
// telemetry (telemetry.ts); a Node member reports nothing itself, so its card shows what the
// tabs say about it (its role as their leader or not, who reaches it). Faults act on real
// members: a tab applies them to its own member and asks another tab, by a command, to apply
// them to its own.

import { workerTimerClock } from '../../adapters/clock/worker-timer.ts';
import { openBrowserMember, type BrowserMember, type BrowserMemberOptions, type Outbox } from '../../adapters/browser/index.ts';
import { systemClock } from '../../adapters/clock/system.ts';
import { Client, InProcessConnection } from '../../src/client/index.ts';
import { isLocalMessage, type MemberId, type Message } from '../../src/raft/types.ts';
import type { Clock, FaultSwitch, Transport } from '../../src/seams.ts';
import type { KvMember } from '../../src/server/kv-member.ts';
import { nodeVoters as nodeVotersOf } from '../../src/server/vote-policy.ts';
import type { ClusterView, DemoCluster, FaultAction, MemberKind, MemberView, Role, WireMessage } from './cluster.ts';
import { clusterLeader } from './cluster.ts';
import { describeMessage, hold, pausableClock } from './demo-link.ts';
import {
  batchMessagesMax,
  beaconMs,
  MessageSampler,
  messagesMs,
  parseServingStatus,
  parseTelemetry,
  silentAfterMs,
  telemetryChannel,
  type Beacon,
  type Command,
  type CommandAction,
  type ServingStatus,
} from './telemetry.ts';

export interface TabClusterOptions {
  /** The cluster's name (a Node member's signaling serves the cluster named by its --initial-cluster-token). */
  cluster: string;
  /** The admission secret signaling checks (a Node member's: from its /meshkv/admission). */
  secret: string;
  /** 'broadcast' (tabs of this browser only) or the ws:// URL of a Node member's signaling endpoint. */
  signaling: 'broadcast' | string;
  /**
   * The JSON gateway of the Node member that served the page (its origin), polled for that
   * member's own status: Node members send no telemetry, but they answer etcd's Status.
   */
  servingMember?: string;
}

/** How often the serving Node member's status is asked for. */
const servingStatusPollMs = 500;


/** How long a message is drawn in flight. Real ones take about a millisecond: this is for the eye. */
export const drawnFlightMs = 320;
/** How often the view is rebuilt to look for changes (beacons age, status moves). */
const viewPollMs = 150;

/** What the tab's member runs on: the transport tapped for the picture, and held while paused. */
class TabLink implements Transport {
  private onMessage: ((m: Message) => void) | null = null;
  private readonly heldIn: Message[] = [];
  private readonly heldOut: Message[] = [];

  constructor(
    private readonly inner: Transport,
    private readonly hooks: { paused: () => boolean; sent: (m: Message, dropped: boolean) => void; received: (m: Message) => void },
  ) {}

  get faults(): FaultSwitch {
    return this.inner.faults;
  }

  start(onMessage: (m: Message) => void): void {
    this.onMessage = onMessage;
    this.inner.start((m) => {
      this.hooks.received(m);
      if (this.hooks.paused()) hold(this.heldIn, m);
      else onMessage(m);
    });
  }

  send(messages: readonly Message[]): void {
    const out = messages.filter((m) => !isLocalMessage(m.type));
    if (!this.hooks.paused()) return this.dispatch(out);
    for (const m of out) hold(this.heldOut, m);
  }

  /** Delivers what arrived while paused, then sends what the member queued meanwhile. */
  release(): void {
    for (const m of this.heldIn.splice(0)) this.onMessage?.(m);
    this.dispatch(this.heldOut.splice(0));
  }

  addPeer(id: MemberId, address: string): void {
    this.inner.addPeer(id, address);
  }

  removePeer(id: MemberId): void {
    this.inner.removePeer(id);
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  private dispatch(out: Message[]): void {
    for (const m of out) this.hooks.sent(m, this.inner.faults.isBlocked(m.to, 'out'));
    this.inner.send(out);
  }
}

interface Heard {
  beacon: Beacon;
  atMs: number;
}

export class TabCluster implements DemoCluster {
  readonly mode = 'tab' as const;
  readonly description: string;
  readonly flightMs = drawnFlightMs;
  /** Made once the member is open (the connection wants a member); the same Client across restarts. */
  client!: Client;

  private member: BrowserMember | null = null;
  private link: TabLink | null = null;
  /** The client's member list: this tab's member, replaced in place on restart. */
  private readonly kvs: KvMember[] = [];
  private selfId: MemberId = 0;
  private selfName = '';
  private paused = false;
  /** Left the cluster for good (removed): a restart opens a brand-new member. */
  private left = false;
  private busy = false;
  private readonly blocked = new Set<MemberId>();
  /** The last view of this tab's member while it ran, shown (greyed) while crashed. */
  private lastOwn: MemberView | null = null;
  private lastConfig: { voters: MemberId[]; learners: MemberId[]; table: Beacon['table'] } = { voters: [], learners: [], table: [] };
  private readonly heard = new Map<MemberId, Heard>();
  private readonly channel: BroadcastChannel;
  private readonly ticker: Clock = workerTimerClock();
  private readonly stops: (() => void)[] = [];
  private readonly sampler = new MessageSampler(() => Date.now());
  private outbox: WireMessage[] = [];
  private readonly changeListeners = new Set<() => void>();
  private readonly messageListeners = new Set<(m: WireMessage) => void>();
  private lastViewJson = '';

  private constructor(private readonly opts: TabClusterOptions) {
    this.description =
      opts.signaling === 'broadcast'
        ? 'This tab is one real member (IndexedDB + WebRTC) of a cluster with the other tabs of this browser. Messages are drawn slowed down; the real ones take about a millisecond.'
        : 'This tab is one real member (IndexedDB + WebRTC) of a cluster with the Node member that served this page and every tab that opened it. Messages are drawn slowed down; the real ones take about a millisecond.';
    this.channel = telemetryChannel(opts.cluster);
    this.channel.onmessage = (e: MessageEvent) => this.onTelemetry(e.data);
  }

  static async start(opts: TabClusterOptions): Promise<TabCluster> {
    const c = new TabCluster(opts);
    await c.open();
    c.client = new Client({ connection: new InProcessConnection(c.kvs, { clock: systemClock }), clock: systemClock });
    // Worker-driven so a background tab keeps reporting at its pace (its own timers are clamped).
    c.stops.push(c.ticker.every(beaconMs, () => c.sendBeacon()));
    c.stops.push(c.ticker.every(messagesMs, () => c.flushMessages()));
    c.stops.push(c.ticker.every(viewPollMs, () => c.maybeNotify()));
    if (opts.servingMember !== undefined) c.stops.push(c.ticker.every(servingStatusPollMs, () => void c.pollServingMember(opts.servingMember!)));
    c.sendBeacon();
    return c;
  }

  view(): ClusterView {
    const now = Date.now();
    const own = this.ownBeacon();
    const fresh = [own, ...[...this.heard.values()].filter((h) => now - h.atMs < silentAfterMs).map((h) => h.beacon)];
    const config = this.configuration(fresh);
    const tabs = new Map<MemberId, string>();
    const nodes = new Map<MemberId, string>();
    for (const b of fresh) for (const t of b.table) (t.tab ? tabs : nodes).set(t.id, shortName(t.name || `${t.tab ? 'tab' : 'member'}-${t.id.toString(16)}`));
    const ids = new Set<MemberId>([...config.voters, ...config.learners, this.selfId]);
    // Tabs still joining (not yet in the configuration) show up too; left or crashed ones outside it do not.
    for (const b of fresh) if (b.view.liveness !== 'crashed') ids.add(b.from);
    const members: MemberView[] = [];
    for (const id of [...ids].sort((a, b) => a - b)) {
      const report = fresh.find((b) => b.from === id);
      if (report) members.push(report.view);
      else if (nodes.has(id)) members.push(this.inferredView(id, nodes.get(id)!, 'node', fresh, config.learners));
      else members.push(this.inferredView(id, tabs.get(id) ?? shortName(`tab-${id.toString(16)}`), 'tab', fresh, config.learners));
    }
    const cut = new Map<string, [MemberId, MemberId]>();
    for (const b of fresh) {
      for (const peer of b.blocked) {
        const pair: [MemberId, MemberId] = b.from < peer ? [b.from, peer] : [peer, b.from];
        cut.set(pair.join('-'), pair);
      }
    }
    return { members, cutLinks: [...cut.values()], self: this.selfId, clientMember: this.selfId, ...this.policyView() };
  }

  /** The tab vote policy where Node members vote, and the member's quorum report, from its own status. */
  private policyView(): Pick<ClusterView, 'tabVotes' | 'quorumLoss' | 'offline'> {
    const member = this.member;
    if (!member || member.kv.isStopped()) return {};
    const s = member.status();
    const nodeVoters = nodeVotersOf(member.kv.members, s);
    return { ...(nodeVoters.length > 0 ? { tabVotes: { tabsMayOutvote: s.tabsMayOutvote } } : {}), quorumLoss: s.quorumLoss, offline: { cutOff: s.cutOff, connectivity: s.connectivity } };
  }

  setOffline(offline: boolean): void {
    this.requireMember().setOffline(offline);
    this.maybeNotify();
  }

  openOutbox(): Promise<Outbox> {
    return this.requireMember().outbox();
  }

  async setTabsMayOutvote(tabsMayOutvote: boolean): Promise<void> {
    if (!this.member) throw new Error('this tab runs no member');
    await this.member.setTabsMayOutvote(tabsMayOutvote);
    this.maybeNotify();
  }

  onChange(fn: () => void): () => void {
    this.changeListeners.add(fn);
    return () => this.changeListeners.delete(fn);
  }

  onMessage(fn: (m: WireMessage) => void): () => void {
    this.messageListeners.add(fn);
    return () => this.messageListeners.delete(fn);
  }

  can(action: FaultAction, id: MemberId): boolean {
    const view = this.view();
    const m = view.members.find((x) => x.id === id);
    if (!m || this.busy) return false;
    // Only tabs that report (this browser's) carry out commands.
    const reporting = !m.inferred;
    const selfRunning = this.member !== null && !this.paused;
    switch (action) {
      case 'isolate':
        return reporting && m.liveness === 'running' && view.members.some((p) => p.id !== id && !isCut(view, id, p.id));
      case 'heal':
        return view.cutLinks.some(([a, b]) => a === id || b === id);
      case 'pause':
        return reporting && m.liveness === 'running';
      case 'resume':
        return reporting && m.liveness === 'paused';
      case 'crash':
        return reporting && (m.liveness === 'running' || m.liveness === 'paused');
      case 'restart':
        return reporting && m.liveness === 'crashed';
      case 'remove':
        // A tab removes itself by leaving; any other member through this tab's member.
        return view.members.length > 1 && clusterLeader(view) !== 0 && (id === this.selfId ? selfRunning : reporting ? m.liveness === 'running' : selfRunning);
    }
  }

  async act(action: FaultAction, id: MemberId): Promise<void> {
    if (!this.can(action, id)) throw new Error(`cannot ${action} member ${id.toString(16)} now`);
    const view = this.view();
    const target = view.members.find((m) => m.id === id)!;
    if (action === 'heal') {
      // Both ends of every cut link the member has heal it.
      for (const [a, b] of view.cutLinks) if (a === id || b === id) this.setLink(a, b, false);
      return;
    }
    if (action === 'isolate') {
      for (const p of view.members) if (p.id !== id) this.setLink(id, p.id, true);
      return;
    }
    if (action === 'remove' && target.inferred) return this.requireMember().kv.removeMember(id);
    if (id === this.selfId) return this.execute(action);
    this.command({ kind: 'command', to: id, action });
  }

  canCut(a: MemberId, b: MemberId): boolean {
    const view = this.view();
    const reporting = (id: MemberId) => view.members.some((m) => m.id === id && !m.inferred && (m.liveness === 'running' || m.liveness === 'paused'));
    return a !== b && (reporting(a) || reporting(b));
  }

  /** Every tab end of the link blocks (or unblocks) the other end; a Node end is cut by its tab alone. */
  setLink(a: MemberId, b: MemberId, cut: boolean): void {
    const action: CommandAction = cut ? 'block' : 'unblock';
    for (const [end, peer] of [[a, b], [b, a]] as const) {
      if (end === this.selfId) this.execute(action, peer);
      else if (this.isTab(end)) this.command({ kind: 'command', to: end, action, peer });
    }
  }

  /** Opens this tab's member (again after a crash: the same member, from IndexedDB). */
  private async open(): Promise<void> {
    const options: BrowserMemberOptions = {
      cluster: this.opts.cluster,
      secret: this.opts.secret,
      signaling: this.opts.signaling,
      wrap: {
        clock: (c) => pausableClock(c, () => this.paused),
        transport: (t) =>
          (this.link = new TabLink(t, {
            paused: () => this.paused,
            sent: (m, dropped) => this.report(describeMessage(m, drawnFlightMs, dropped)),
            received: (m) => {
              // Members that report nothing here (Node members, other browsers' tabs): their messages are drawn from this end.
              if (!this.reportsHere(m.from)) this.report(describeMessage(m, drawnFlightMs, false));
            },
          })),
      },
    };
    const member = await openBrowserMember(options);
    this.member = member;
    this.kvs[0] = member.kv;
    this.selfId = member.id;
    this.selfName = shortName(member.status().name);
    this.left = false;
    this.paused = false;
    this.blocked.clear();
  }

  private async execute(action: CommandAction, peer?: MemberId): Promise<void> {
    const member = this.member;
    switch (action) {
      case 'block':
        if (!member || peer === undefined) return;
        member.faults.block(peer);
        this.blocked.add(peer);
        break;
      case 'unblock':
        if (!member || peer === undefined) return;
        member.faults.heal(peer);
        this.blocked.delete(peer);
        break;
      case 'pause':
        this.paused = true;
        break;
      case 'resume':
        this.paused = false;
        this.link?.release();
        break;
      case 'crash':
        await this.stopMember(false);
        break;
      case 'restart':
        if (this.member) return;
        await this.whileBusy(() => this.open());
        break;
      case 'remove':
        await this.stopMember(true);
        break;
      case 'isolate':
      case 'heal':
        return; // carried out link by link (setLink)
    }
    this.sendBeacon();
    this.maybeNotify();
  }

  /** A crash: the member stops and keeps what it synced. Leaving: it is removed and its data deleted. */
  private async stopMember(leave: boolean): Promise<void> {
    const member = this.member;
    if (!member) return;
    this.lastOwn = this.ownView();
    await this.whileBusy(async () => {
      this.paused = false;
      this.link?.release();
      await member.close({ leave });
      this.member = null;
      this.link = null;
      this.left = leave;
      this.blocked.clear();
    });
  }

  private async whileBusy(fn: () => Promise<void>): Promise<void> {
    this.busy = true;
    this.maybeNotify();
    try {
      await fn();
    } finally {
      this.busy = false;
    }
  }

  private requireMember(): BrowserMember {
    if (!this.member) throw new Error('this tab’s member is not running');
    return this.member;
  }

  private command(cmd: Command): void {
    this.channel.postMessage(cmd);
  }

  private onTelemetry(raw: unknown): void {
    const t = parseTelemetry(raw);
    if (!t) return;
    if (t.kind === 'beacon') {
      if (t.from !== this.selfId) this.heard.set(t.from, { beacon: t, atMs: Date.now() });
    } else if (t.kind === 'messages') {
      if (t.from !== this.selfId) for (const m of t.messages) this.emitMessage(m);
    } else if (t.to === this.selfId) {
      this.execute(t.action, t.peer).catch((err: Error) => console.warn(`demo: ${t.action} failed: ${err.message}`));
    }
  }

  private report(m: WireMessage): void {
    if (!this.sampler.keep(m)) return;
    this.emitMessage(m);
    if (this.outbox.length < batchMessagesMax) this.outbox.push(m);
  }

  private emitMessage(m: WireMessage): void {
    for (const fn of this.messageListeners) fn(m);
  }

  private flushMessages(): void {
    if (this.outbox.length === 0) return;
    this.channel.postMessage({ kind: 'messages', from: this.selfId, messages: this.outbox });
    this.outbox = [];
  }

  private sendBeacon(): void {
    this.channel.postMessage(this.ownBeacon());
  }

  private ownBeacon(): Beacon {
    const kv = this.member?.kv;
    if (kv && !kv.isStopped()) {
      const cs = kv.status().confState;
      const table = kv.members.list().map((r) => ({ id: r.id, name: r.name, tab: r.peerURLs.length > 0 && r.peerURLs.every((u) => u.startsWith('webrtc:')) }));
      this.lastConfig = { voters: [...cs.voters], learners: [...cs.learners], table };
    }
    return { kind: 'beacon', from: this.selfId, view: this.ownView(), ...this.lastConfig, blocked: [...this.blocked] };
  }

  private ownView(): MemberView {
    const member = this.member;
    if (!member || member.kv.isStopped()) {
      const last = this.lastOwn ?? blankView(this.selfId, this.selfName);
      return { ...last, liveness: 'crashed', reachable: [], name: this.left ? `${last.name} (left)` : last.name };
    }
    const st = member.kv.status();
    const s = member.status();
    this.selfName = shortName(s.name);
    const own: MemberView = {
      id: this.selfId,
      name: this.selfName,
      kind: 'tab',
      persistence: 'indexeddb',
      liveness: this.paused ? 'paused' : 'running',
      role: st.confState.learners.includes(this.selfId) ? 'learner' : (st.role as Role),
      term: st.term,
      leader: st.lead,
      commit: st.commit,
      applied: st.applied,
      lastIndex: st.lastIndex,
      revision: member.kv.currentRevision,
      compactRevision: member.kv.compactRevision,
      reachable: s.connectedPeers.filter((p) => !this.blocked.has(p)),
      inferred: false,
    };
    this.lastOwn = own;
    return own;
  }

  /** The configuration of the running member that knows the most (highest term, then applied index). */
  private configuration(reports: Beacon[]): { voters: MemberId[]; learners: MemberId[] } {
    let best: Beacon | null = null;
    for (const b of reports) {
      if (b.view.liveness !== 'running' || b.voters.length === 0) continue;
      if (!best || b.view.term > best.view.term || (b.view.term === best.view.term && b.view.applied > best.view.applied)) best = b;
    }
    return best ?? this.lastConfig;
  }

  /**
   * A member that reports nothing here (a Node member, a tab of another browser, a tab that
   * closed): what the running tabs say about it. Silent when none of them reaches it.
   */
  private inferredView(id: MemberId, name: string, kind: MemberKind, reports: Beacon[], learners: MemberId[]): MemberView {
    const running = reports.filter((b) => b.view.liveness === 'running');
    const newest = running.reduce<Beacon | null>((best, b) => (!best || b.view.term > best.view.term ? b : best), null);
    const isLeader = newest !== null && newest.view.leader === id;
    const reachable = running.filter((b) => b.view.reachable.includes(id)).map((b) => b.from).sort((a, b) => a - b);
    const inferred: MemberView = {
      ...blankView(id, name),
      kind,
      persistence: kind === 'node' ? 'disk' : 'indexeddb',
      liveness: isLeader || reachable.length > 0 ? 'running' : 'silent',
      role: isLeader ? 'leader' : learners.includes(id) ? 'learner' : 'follower',
      term: newest?.view.term ?? 0,
      leader: newest?.view.leader ?? 0,
      reachable,
      inferred: true,
    };
    // The member that served the page reports its own term, leader and indexes over HTTP.
    const own = this.servingStatus;
    if (own === null || own.id !== id || Date.now() - own.atMs > silentAfterMs) return inferred;
    return {
      ...inferred,
      liveness: 'running',
      role: own.leader === id ? 'leader' : learners.includes(id) ? 'learner' : 'follower',
      term: own.term,
      leader: own.leader,
      commit: own.commit,
      applied: own.applied,
      lastIndex: own.commit,
      revision: own.revision,
      indexesKnown: true,
    };
  }

  private servingStatus: ServingStatus | null = null;
  private polling = false;

  private async pollServingMember(origin: string): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      const res = await fetch(new URL('/v3/maintenance/status', origin), { method: 'POST', body: '{}', cache: 'no-store' });
      const status = res.ok ? parseServingStatus(await res.json(), Date.now()) : null;
      if (status) this.servingStatus = status;
    } catch {
      // The member is down or unreachable: its card falls back to what the tabs see.
    } finally {
      this.polling = false;
    }
  }

  /** Whether `id` is a tab of this browser that reported lately (it draws its own messages). */
  private reportsHere(id: MemberId): boolean {
    const h = this.heard.get(id);
    return h !== undefined && Date.now() - h.atMs < silentAfterMs;
  }

  private isTab(id: MemberId): boolean {
    if (this.heard.has(id)) return true;
    const r = this.member?.kv.members.get(id);
    return r !== undefined && r.peerURLs.every((u) => u.startsWith('webrtc:'));
  }

  private maybeNotify(): void {
    const json = JSON.stringify([this.view(), this.busy]);
    if (json === this.lastViewJson) return;
    this.lastViewJson = json;
    for (const fn of this.changeListeners) fn();
  }
}

/**
 * A tab's default name carries its whole id in hex (`tab-14e50835c12c7`), too long for the
 * picture: the page shows its first four digits. Other names are shown as they are.
 */
function shortName(name: string): string {
  const m = /^tab-([0-9a-f]{5,})$/.exec(name);
  return m ? `tab-${m[1].slice(0, 4)}` : name;
}

function isCut(view: ClusterView, a: MemberId, b: MemberId): boolean {
  return view.cutLinks.some(([x, y]) => (x === a && y === b) || (x === b && y === a));
}

function blankView(id: MemberId, name: string): MemberView {
  return {
    id, name, kind: 'tab', persistence: 'indexeddb', liveness: 'crashed', role: 'follower',
    term: 0, leader: 0, commit: 0, applied: 0, lastIndex: 0, revision: 0, compactRevision: 0, reachable: [], inferred: false,
  };
}
