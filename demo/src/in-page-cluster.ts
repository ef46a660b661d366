// "This tab runs a whole cluster": real KvMembers (Raft + MVCC) in this page, on memory
// storage and the memory transport, with real time. Nothing is simulated but the wire: messages
// take a fixed flight time so they can be watched. The tab-member mode replaces this as the
// default once browser members exist; this mode stays useful on its own.

import { systemClock } from '../../adapters/clock/system.ts';
import { MemoryStorage } from '../../adapters/storage/memory.ts';
import { MemoryHub } from '../../adapters/transport/memory.ts';
import { Client, InProcessConnection } from '../../src/client/index.ts';
import { type MemberId, type Message } from '../../src/raft/types.ts';
import type { Clock } from '../../src/seams.ts';
import { KvMember, learnerReadyFraction } from '../../src/server/kv-member.ts';
import type { MemberRecord } from '../../src/server/member-table.ts';
import type { ClusterView, DemoCluster, FaultAction, Liveness, MemberView, Role, WireMessage } from './cluster.ts';
import { clusterLeader } from './cluster.ts';
import { DemoLink, describeMessage, pausableClock } from './demo-link.ts';

export interface InPageClusterOptions {
  /** Members at start (odd sizes make sense: 3, 5). */
  size: number;
  /** One-way message flight time. */
  flightMs: number;
  tickMs: number;
  heartbeatTicks: number;
  electionTicks: number;
}

export const inPageDefaults: InPageClusterOptions = { size: 3, flightMs: 160, tickMs: 100, heartbeatTicks: 4, electionTicks: 15 };

/** Members at most: the picture stays readable and a tab's CPU is shared. */
export const inPageMembersMax = 7;
/** How often the view is rebuilt to look for changes. */
const viewPollMs = 100;
/** How long a joining learner may take to catch up before it is left a learner. */
const learnerCatchUpMsMax = 20_000;

/** A member's place in the cluster: it outlives crashes (storage is kept), not removal. */
interface Slot {
  id: MemberId;
  name: string;
  kv: KvMember | null;
  link: DemoLink | null;
  /** What survives a crash: the synced part of the last storage. */
  storage: MemoryStorage;
  paused: boolean;
  /** The last view taken while running, shown (greyed) while crashed. */
  last: MemberView | null;
}

export class InPageCluster implements DemoCluster {
  readonly mode = 'in-page' as const;
  readonly description: string;
  readonly flightMs: number;

  private readonly hub = new MemoryHub();
  private readonly slots: Slot[] = [];
  /** The connection's member list: slot order, replaced in place on restart, appended on add. */
  private readonly kvs: KvMember[] = [];
  private readonly cut = new Set<string>();
  private readonly changeListeners = new Set<() => void>();
  private readonly messageListeners = new Set<(m: WireMessage) => void>();
  private lastViewJson = '';
  private readonly stopPoll: () => void;
  private clientOrNull: Client | null = null;
  /**
   * One client per member chosen to take requests first, all kept open: a lease granted or a
   * watch opened through one stays usable after another is chosen.
   */
  private readonly clients = new Map<MemberId, Client>();
  /** The first members, as every member is configured with them (etcd's --initial-cluster). */
  private initialMembers: MemberRecord[] = [];

  private constructor(private readonly opts: InPageClusterOptions) {
    this.flightMs = opts.flightMs;
    const wire = opts.flightMs > 0 ? `each message delayed ${opts.flightMs} ms so you can watch it` : 'messages delivered at once';
    this.description = `This tab runs all ${opts.size} members itself: real Raft and MVCC, in memory, ${wire}.`;
    this.stopPoll = systemClock.every(viewPollMs, () => this.maybeNotify());
  }

  static async start(options: Partial<InPageClusterOptions> = {}): Promise<InPageCluster> {
    const opts = { ...inPageDefaults, ...options };
    if (!(opts.size >= 1 && opts.size <= inPageMembersMax)) throw new Error(`demo: cluster size ${opts.size} is not in [1, ${inPageMembersMax}]`);
    const cluster = new InPageCluster(opts);
    const ids = Array.from({ length: opts.size }, (_, i) => i + 1);
    for (const id of ids) cluster.slots.push({ id, name: `n${id}`, kv: null, link: null, storage: new MemoryStorage(), paused: false, last: null });
    cluster.initialMembers = cluster.slots.map((s) => ({ id: s.id, name: s.name, peerURLs: [peerUrl(s.name)], clientURLs: [], isLearner: false }));
    const kvs = await Promise.all(cluster.slots.map((s) => cluster.boot(s, ids)));
    cluster.kvs.push(...kvs);
    cluster.setClientMember(ids[0]);
    return cluster;
  }

  /** Requests go to member `id` first (and to the next running one while it is stopped). */
  setClientMember(id: MemberId): void {
    const index = this.kvs.findIndex((k) => k.id === id);
    if (index < 0 || !this.slots.some((s) => s.id === id)) throw new Error(`demo: no member ${id} to send requests to`);
    let client = this.clients.get(id);
    if (!client) {
      // The connection reads `kvs` live: a restarted member replaces its entry, a new one is appended.
      client = new Client({ connection: new InProcessConnection(this.kvs, { clock: systemClock, preferred: index }), clock: systemClock });
      this.clients.set(id, client);
    }
    this.clientOrNull = client;
    this.maybeNotify();
  }

  get client(): Client {
    if (!this.clientOrNull) throw new Error('demo: the cluster has not started yet');
    return this.clientOrNull;
  }

  // ---- reading ----

  view(): ClusterView {
    const members = this.slots.map((s) => this.memberView(s));
    const cutLinks = [...this.cut].map((k) => k.split('-').map(Number) as [MemberId, MemberId]);
    let clientMember: MemberId | null = null;
    if (this.clientOrNull && this.kvs.some((k) => !k.isStopped())) clientMember = (this.client.connection as InProcessConnection).member.id;
    return { members, cutLinks, self: null, clientMember };
  }

  onChange(fn: () => void): () => void {
    this.changeListeners.add(fn);
    return () => this.changeListeners.delete(fn);
  }

  onMessage(fn: (m: WireMessage) => void): () => void {
    this.messageListeners.add(fn);
    return () => this.messageListeners.delete(fn);
  }

  // ---- faults ----

  can(action: FaultAction, id: MemberId): boolean {
    const s = this.slot(id);
    const running = s.kv !== null;
    switch (action) {
      case 'isolate':
        return running && this.peersOf(id).some((p) => !this.isCut(id, p));
      case 'heal':
        return this.peersOf(id).some((p) => this.isCut(id, p));
      case 'pause':
        return running && !s.paused;
      case 'resume':
        return running && s.paused;
      case 'crash':
        return running;
      case 'restart':
        return !running;
      case 'remove':
        return this.slots.length > 1;
    }
  }

  async act(action: FaultAction, id: MemberId): Promise<void> {
    const s = this.slot(id);
    if (!this.can(action, id)) throw new Error(`demo: cannot ${action} ${s.name} now`);
    switch (action) {
      case 'isolate':
      case 'heal':
        for (const p of this.peersOf(id)) this.setLink(id, p, action === 'isolate');
        break;
      case 'pause':
      case 'resume':
        s.paused = action === 'pause';
        if (s.paused) s.link!.pause();
        else s.link!.resume();
        break;
      case 'crash':
        await this.crash(s);
        break;
      case 'restart':
        await this.restart(s);
        break;
      case 'remove':
        await this.remove(s);
        break;
    }
    this.maybeNotify();
  }

  canCut(a: MemberId, b: MemberId): boolean {
    return a !== b && this.slots.some((s) => s.id === a) && this.slots.some((s) => s.id === b);
  }

  setLink(a: MemberId, b: MemberId, cut: boolean): void {
    if (!this.canCut(a, b)) throw new Error(`demo: there is no link between ${a} and ${b}`);
    const key = linkKey(a, b);
    if (cut) this.cut.add(key);
    else this.cut.delete(key);
    this.applyLink(this.slot(a), b);
    this.applyLink(this.slot(b), a);
    this.maybeNotify();
  }

  /** A new member joins as a learner (etcd's member add --learner), then is promoted once caught up. */
  async addMember(): Promise<void> {
    if (this.slots.length >= inPageMembersMax) throw new Error(`demo: at most ${inPageMembersMax} members`);
    const leader = this.leaderKv();
    const id = Math.max(0, ...this.slots.map((s) => s.id), ...this.kvs.map((k) => k.id)) + 1;
    const slot: Slot = { id, name: `n${id}`, kv: null, link: null, storage: new MemoryStorage(), paused: false, last: null };
    this.slots.push(slot);
    const kv = await this.boot(slot, []);
    this.kvs.push(kv);
    try {
      await leader.addMember(id, [peerUrl(slot.name)], true);
    } catch (err) {
      // Not in the configuration: the new member would wait forever for a leader. Take it away.
      this.slots.splice(this.slots.indexOf(slot), 1);
      slot.kv = null;
      await kv.stop();
      throw err;
    } finally {
      this.maybeNotify();
    }
    void this.promoteWhenReady(slot);
  }

  close(): Promise<void> {
    this.stopPoll();
    for (const client of this.clients.values()) client.close();
    return Promise.all(this.slots.map((s) => s.kv?.stop())).then(() => undefined);
  }

  // ---- internals ----

  private async boot(slot: Slot, peers: MemberId[]): Promise<KvMember> {
    const link = new DemoLink(this.hub.connect(slot.id), {
      flightMs: this.opts.flightMs,
      tap: (m, dropped) => this.tap(m, dropped),
      isLost: (to) => this.isCut(slot.id, to) || !this.isUp(to),
    });
    slot.link = link;
    for (const p of this.peersOf(slot.id)) this.applyLink(slot, p);
    const kv = await KvMember.start({
      id: slot.id,
      peers,
      clock: pausableClock(systemClock, () => slot.paused),
      storage: slot.storage,
      transport: link,
      random: Math.random,
      tickMs: this.opts.tickMs,
      heartbeatTicks: this.opts.heartbeatTicks,
      electionTicks: this.opts.electionTicks,
      requestTimeoutMs: 5000,
      // Small, so a member that was away long enough catches up from a snapshot you can see.
      snapshotEntries: 40,
      snapshotKeepEntries: 10,
      mvcc: { lessor: { minTtlSeconds: 3 } },
      initialMembers: this.initialMembers,
    });
    slot.kv = kv;
    slot.paused = false;
    return kv;
  }

  /** Stops the member; its storage keeps what was synced, as a disk would after a power cut. */
  private async crash(s: Slot): Promise<void> {
    s.last = this.memberView(s);
    // Taken before stop(), which would sync what a power cut loses.
    const synced = s.storage.copyState('synced');
    const kv = s.kv!;
    s.kv = null;
    s.paused = false;
    await kv.stop();
    s.link = null;
    s.storage = new MemoryStorage(synced);
  }

  private async restart(s: Slot): Promise<void> {
    const index = this.kvs.findIndex((k) => k.id === s.id);
    this.kvs[index] = await this.boot(s, []);
  }

  private async remove(s: Slot): Promise<void> {
    const leader = this.leaderKv();
    await leader.removeMember(s.id);
    this.slots.splice(this.slots.indexOf(s), 1);
    for (const key of [...this.cut]) if (key.split('-').map(Number).includes(s.id)) this.cut.delete(key);
    if (s.kv) {
      const kv = s.kv;
      s.kv = null;
      await kv.stop();
    }
  }

  private async promoteWhenReady(slot: Slot): Promise<void> {
    const deadline = systemClock.now() + learnerCatchUpMsMax;
    while (systemClock.now() < deadline && this.slots.includes(slot)) {
      await new Promise((r) => setTimeout(r, 250));
      const kv = slot.kv;
      const leader = this.leaderKvOrNull();
      if (!kv || !leader) continue;
      if (kv.status().applied < leader.status().commit * learnerReadyFraction) continue;
      try {
        await leader.promoteMember(slot.id);
        return;
      } catch {
        // Not in sync yet by the leader's own count, or leadership moved: try again shortly.
      }
    }
  }

  private tap(m: Message, dropped: boolean): void {
    if (this.messageListeners.size === 0) return;
    const wire = describeMessage(m, this.opts.flightMs, dropped);
    for (const fn of this.messageListeners) fn(wire);
  }

  private memberView(s: Slot): MemberView {
    if (!s.kv) return { ...(s.last ?? blankView(s)), liveness: 'crashed', reachable: [] };
    const st = s.kv.status();
    const learner = st.confState.learners.includes(s.id);
    const liveness: Liveness = s.paused ? 'paused' : 'running';
    return {
      id: s.id,
      name: s.name,
      kind: 'tab',
      persistence: 'memory',
      liveness,
      role: learner ? 'learner' : (st.role as Role),
      term: st.term,
      leader: st.lead,
      commit: st.commit,
      applied: st.applied,
      lastIndex: st.lastIndex,
      revision: s.kv.currentRevision,
      compactRevision: s.kv.compactRevision,
      reachable: this.peersOf(s.id).filter((p) => !this.isCut(s.id, p) && this.isUp(p)),
      inferred: false,
    };
  }

  private maybeNotify(): void {
    const json = JSON.stringify(this.view());
    if (json === this.lastViewJson) return;
    this.lastViewJson = json;
    for (const fn of this.changeListeners) fn();
  }

  private applyLink(s: Slot, peer: MemberId): void {
    if (!s.link) return;
    if (this.isCut(s.id, peer)) s.link.faults.block(peer);
    else s.link.faults.heal(peer);
  }

  private slot(id: MemberId): Slot {
    const s = this.slots.find((x) => x.id === id);
    if (!s) throw new Error(`demo: no member ${id}`);
    return s;
  }

  private peersOf(id: MemberId): MemberId[] {
    return this.slots.filter((s) => s.id !== id).map((s) => s.id);
  }

  private isCut(a: MemberId, b: MemberId): boolean {
    return this.cut.has(linkKey(a, b));
  }

  /** Running (paused members still hold their sockets; their traffic waits). */
  private isUp(id: MemberId): boolean {
    return this.slots.some((s) => s.id === id && s.kv !== null);
  }

  private leaderKvOrNull(): KvMember | null {
    const id = clusterLeader(this.view());
    return this.slots.find((s) => s.id === id)?.kv ?? null;
  }

  private leaderKv(): KvMember {
    const kv = this.leaderKvOrNull();
    if (!kv) throw new Error('etcdserver: no leader');
    return kv;
  }
}

/** Members on the memory transport have no address; the member table still wants a unique URL. */
function peerUrl(name: string): string {
  return `memory://${name}`;
}

function linkKey(a: MemberId, b: MemberId): string {
  return a < b ? `${a}-${b}` : `${b}-${a}`;
}

function blankView(s: Slot): MemberView {
  return {
    id: s.id, name: s.name, kind: 'tab', persistence: 'memory', liveness: 'crashed', role: 'follower',
    term: 0, leader: 0, commit: 0, applied: 0, lastIndex: 0, revision: 0, compactRevision: 0, reachable: [], inferred: false,
  };
}
