// Members driven over real timers, the in-process transport and memory or fs-wal storage.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../adapters/clock/system.ts';
import { FsWalStorage } from '../../adapters/storage/fs-wal/index.ts';
import { MemoryStorage } from '../../adapters/storage/memory.ts';
import { MemoryHub } from '../../adapters/transport/memory.ts';
import { ConfChangeType, ConfChangeTransition } from '../../src/raft/confchange.ts';
import { StateRole, type MemberId, type Snapshot } from '../../src/raft/types.ts';
import type { DeliveryReport, DeliveryReports, SnapshotPreparation, Storage, Transport } from '../../src/seams.ts';
import { MessageType, type Message } from '../../src/raft/types.ts';
import { ProgressState } from '../../src/raft/progress.ts';
import { Member, MemberError, type MemberOptions } from '../../src/server/member.ts';
import { ListMachine } from '../helpers/list-machine.ts';
import { waitFor } from '../helpers/wait.ts';
import { prng } from '../raft/prng.ts';

const enc = new TextEncoder();


interface Node {
  member: Member;
  sm: ListMachine;
  storage: Storage;
}

const running: Member[] = [];
afterEach(async () => {
  for (const m of running.splice(0)) await m.stop();
});

async function startMember(hub: MemoryHub, id: MemberId, peers: MemberId[], storage: Storage, extra: Partial<MemberOptions> = {}): Promise<Node> {
  const sm = new ListMachine();
  const member = await Member.start({
    id,
    peers,
    clock: systemClock,
    storage,
    transport: extra.transport ?? hub.connect(id),
    stateMachine: sm,
    random: prng(id * 31 + Date.now()),
    tickMs: 5,
    electionTicks: 10,
    requestTimeoutMs: 3000,
    ...extra,
  });
  running.push(member);
  return { member, sm, storage };
}


/** Passes everything on to `inner`; the test transports below override what they watch. */
class PassThroughTransport implements Transport {
  constructor(protected readonly inner: Transport) {}

  get faults() {
    return this.inner.faults;
  }

  start(onMessage: (m: Message) => void): void {
    this.inner.start(onMessage);
  }

  send(messages: readonly Message[]): void {
    this.inner.send(messages);
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
}

/**
 * A transport that reports deliveries (DeliveryReports), with the snapshots it was asked to
 * send held back: the test decides whether each one is lost or delivered, and reports it.
 */
class ReportingTransport extends PassThroughTransport implements DeliveryReports {
  readonly heldSnapshots: Message[] = [];
  readonly reportsSnapshots = true;
  private report: ((r: DeliveryReport) => void) | null = null;

  override send(messages: readonly Message[]): void {
    this.heldSnapshots.push(...messages.filter((m) => m.type === MessageType.Snap));
    this.inner.send(messages.filter((m) => m.type !== MessageType.Snap));
  }

  onDeliveryReport(fn: (r: DeliveryReport) => void): void {
    this.report = fn;
  }

  /** Delivers the oldest held snapshot, or loses it; either way the member hears which. */
  settleSnapshot(delivered: boolean): void {
    const m = this.heldSnapshots.shift()!;
    if (delivered) this.inner.send([m]);
    this.report!({ kind: 'snapshot', peer: m.to, delivered });
  }
}

/** Passes every message on, and notes the commit index each one it sends carries, in order with `log`'s other entries. */
class CommitNoticeLog extends PassThroughTransport {
  constructor(
    inner: Transport,
    readonly log: string[],
  ) {
    super(inner);
  }

  override send(messages: readonly Message[]): void {
    for (const m of messages) if (m.type === MessageType.App) this.log.push(`commit ${m.commit} sent to ${m.to}`);
    this.inner.send(messages);
  }
}

function leaderOf(nodes: Node[]): Node | undefined {
  return nodes.find((n) => n.member.status().role === StateRole.Leader);
}

describe('member', () => {
  it('elects a leader, replicates proposals from any member, and answers with the apply result', async () => {
    const hub = new MemoryHub();
    const nodes = await Promise.all([1, 2, 3].map((id) => startMember(hub, id, [1, 2, 3], new MemoryStorage())));
    const leader = await waitFor('a leader', () => leaderOf(nodes));
    const follower = nodes.find((n) => n !== leader)!;
    expect(await leader.member.propose(enc.encode('a'))).toBe(1);
    expect(await follower.member.propose(enc.encode('b'))).toBe(2);
    // Concurrent proposals are batched into one append and all resolve.
    const results = await Promise.all(['c', 'd', 'e'].map((s) => follower.member.propose(enc.encode(s))));
    expect(results.sort()).toEqual([3, 4, 5]);
    await waitFor('all members applied', () => nodes.every((n) => n.sm.items.length === 5));
    for (const n of nodes) expect(n.sm.items).toEqual(leader.sm.items);
  });

  it('answers its own proposer before it tells the followers the entry committed', async () => {
    const hub = new MemoryHub();
    const logs = new Map<MemberId, string[]>();
    const nodes = await Promise.all(
      [1, 2, 3].map((id) => {
        const log: string[] = [];
        logs.set(id, log);
        return startMember(hub, id, [1, 2, 3], new MemoryStorage(), { transport: new CommitNoticeLog(hub.connect(id), log), afterTurn: setImmediate });
      }),
    );
    const leader = await waitFor('a leader', () => leaderOf(nodes));
    await leader.member.propose(enc.encode('warm-up'));
    for (let i = 0; i < 5; i++) {
      const log = logs.get(leader.member.id)!;
      log.length = 0;
      let index = 0;
      await leader.member.propose(enc.encode(`v${i}`)).then(() => {
        index = leader.member.basicStatus().commit;
        log.push('answered');
      });
      const followers = nodes.filter((n) => n !== leader).map((n) => n.member.id);
      await waitFor('both followers told of the commit', () => followers.every((f) => log.includes(`commit ${index} sent to ${f}`)));
      // A commit notice sent before the answer would show here ahead of it.
      const firstNotice = log.findIndex((l) => l.startsWith(`commit ${index} `));
      expect(log.indexOf('answered'), log.join('; ')).toBeLessThan(firstNotice);
    }
    await waitFor('all members applied', () => nodes.every((n) => n.sm.items.length === 6));
  });

  it('a leader stopped as it applies its own removal has told the others the removal committed, even with its own proposal in that commit', async () => {
    const hub = new MemoryHub();
    // Election timeouts of 200-400 ms: the followers hear the commit long before one could pass.
    const nodes = await Promise.all([1, 2, 3].map((id) => startMember(hub, id, [1, 2, 3], new MemoryStorage(), { afterTurn: setImmediate, tickMs: 20, requestTimeoutMs: 10_000 })));
    const leader = await waitFor('a leader', () => leaderOf(nodes));
    await leader.member.propose(enc.encode('warm-up'));
    const term = leader.member.basicStatus().term;
    const followers = nodes.filter((n) => n !== leader);
    // One append, one acknowledgement: both commit in one Ready, with an answer waiting in it.
    const put = leader.member.propose(enc.encode('last'));
    const removal = leader.member.changeMembership({ transition: ConfChangeTransition.Auto, changes: [{ type: ConfChangeType.RemoveNode, memberId: leader.member.id }], context: null });
    // As a removed member is stopped (the simulator, etcd): in the apply's own reactions.
    const stopped = removal.then(() => leader.member.stop());
    await put;
    await stopped;
    const removed = (n: Node) => !n.member.status().confState.voters.includes(leader.member.id);
    await waitFor('the followers applied the removal', () => followers.every(removed), 5000);
    // Told by the removed leader, not by a leader of a later term elected without it.
    for (const f of followers) expect(f.member.basicStatus().term).toBe(term);
    for (const f of followers) expect(f.sm.items).toEqual(['warm-up', 'last']);
  });

  it('with a transport that reports deliveries, a leader waits for a snapshot\'s fate and resends a lost one at once', async () => {
    const hub = new MemoryHub();
    const transports = new Map<MemberId, ReportingTransport>();
    const start = (id: MemberId, peers: MemberId[]) => {
      const transport = new ReportingTransport(hub.connect(id));
      transports.set(id, transport);
      // Steady ticks: the three members share this event loop, and a freeze longer than a 50 ms
      // election timeout (seen under load) changed leaders mid-test.
      return startMember(hub, id, peers, new MemoryStorage(), { transport, snapshotEntries: 10, snapshotKeepEntries: 0, tickMs: 20, requestTimeoutMs: 10_000 });
    };
    const nodes = await Promise.all([1, 2, 3].map((id) => start(id, [1, 2, 3])));
    const leader = await waitFor('a leader', () => leaderOf(nodes));
    for (let i = 0; i < 30; i++) await leader.member.propose(enc.encode(`v${i}`));
    // A joiner behind the compacted log can only catch up from a snapshot.
    const joiner = await start(4, []);
    await leader.member.changeMembership({ transition: ConfChangeTransition.Auto, changes: [{ type: ConfChangeType.AddLearnerNode, memberId: 4 }], context: null });
    const sent = transports.get(leader.member.id)!;
    await waitFor('a snapshot for the joiner', () => sent.heldSnapshots.length > 0);
    // Unreported, the snapshot is in flight: the leader sends no other while it waits.
    await new Promise((r) => setTimeout(r, 200));
    expect(sent.heldSnapshots.length).toBe(1);
    expect(leader.member.status().progress!.get(4)!.state).toBe(ProgressState.Snapshot);
    sent.settleSnapshot(false);
    await waitFor('the lost snapshot sent again', () => sent.heldSnapshots.length > 0);
    sent.settleSnapshot(true);
    await waitFor('the joiner caught up', () => joiner.sm.items.length >= 30);
    expect(joiner.sm.items.slice(0, 30)).toEqual(leader.sm.items.slice(0, 30));
  });

  it('a read barrier on a follower waits until it has applied what the leader committed', async () => {
    const hub = new MemoryHub();
    const nodes = await Promise.all([1, 2, 3].map((id) => startMember(hub, id, [1, 2, 3], new MemoryStorage())));
    const leader = await waitFor('a leader', () => leaderOf(nodes));
    await leader.member.propose(enc.encode('x'));
    const follower = nodes.find((n) => n !== leader)!;
    await follower.member.readBarrier();
    expect(follower.sm.items).toContain('x');
  });

  it('survives the loss of the leader and restarts a member from its storage', async () => {
    const hub = new MemoryHub();
    const nodes = await Promise.all([1, 2, 3].map((id) => startMember(hub, id, [1, 2, 3], new MemoryStorage())));
    const leader = await waitFor('a leader', () => leaderOf(nodes));
    await leader.member.propose(enc.encode('before'));
    const synced = (leader.storage as MemoryStorage).copyState('synced');
    await leader.member.stop();
    const rest = nodes.filter((n) => n !== leader);
    const next = await waitFor('a new leader', () => leaderOf(rest));
    await next.member.propose(enc.encode('after'));
    // The old leader comes back with only what it had synced, and catches up.
    const back = await startMember(hub, leader.member.id, [], new MemoryStorage(synced));
    await waitFor('the restarted member catches up', () => back.sm.items.length === 2);
    expect(back.sm.items).toEqual(['before', 'after']);
  });

  it('a proposal with no leader reachable times out with etcd\'s message', async () => {
    const hub = new MemoryHub();
    const a = await startMember(hub, 1, [1, 2, 3], new MemoryStorage(), { requestTimeoutMs: 200 });
    await expect(a.member.propose(enc.encode('lonely'))).rejects.toThrow(/etcdserver: request timed out|proposal dropped/);
    await expect(a.member.propose(enc.encode('lonely'))).rejects.toBeInstanceOf(MemberError);
  });

  it('adds a member that catches up from a snapshot, on fs-wal storage', async () => {
    const dirs: string[] = [];
    const wal = async () => {
      const dir = mkdtempSync(join(tmpdir(), 'meshkv-member-'));
      dirs.push(dir);
      return FsWalStorage.open(dir);
    };
    try {
      const hub = new MemoryHub();
      // Disk-backed members tick slower: an fdatasync under a loaded machine can take tens of
      // milliseconds, and 50 ms election timeouts would make leadership churn.
      const timing = { tickMs: 20 };
      const nodes = await Promise.all([1, 2, 3].map(async (id) => startMember(hub, id, [1, 2, 3], await wal(), { ...timing, snapshotEntries: 20, snapshotKeepEntries: 0 })));
      const leader = await waitFor('a leader', () => leaderOf(nodes));
      for (let i = 0; i < 50; i++) await leader.member.propose(enc.encode(`v${i}`));
      const joiner = await startMember(hub, 4, [], await wal(), { ...timing, snapshotEntries: 20 });
      await leader.member.changeMembership({
        transition: ConfChangeTransition.Auto,
        changes: [{ type: ConfChangeType.AddLearnerNode, memberId: 4 }],
        context: null,
      });
      await waitFor('the learner caught up', () => joiner.sm.items.length === 50, 10_000);
      expect(joiner.sm.items).toEqual(leader.sm.items);
      expect(joiner.sm.imagesRestored).toBe(1);
      expect(joiner.member.status().confState.learners).toEqual([4]);
    } finally {
      for (const m of running.splice(0)) await m.stop();
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    }
  });
});

/** A ListMachine whose state stays in a persistent backend: durableAt resolves when the test says so. */
class HeldBackendMachine extends ListMachine {
  readonly durableCalls: { index: number; release: () => void }[] = [];
  durableAt(index: number): Promise<void> {
    return new Promise((resolve) => this.durableCalls.push({ index, release: resolve }));
  }
}

/** One member that snapshots every 10 entries, keeping 2, over `storage` and `sm`. */
async function startSnapshottingMember(storage: MemoryStorage, sm: HeldBackendMachine): Promise<Member> {
  const member = await Member.start({
    id: 1,
    peers: [1],
    clock: systemClock,
    storage,
    transport: new MemoryHub().connect(1),
    stateMachine: sm,
    random: prng(5),
    tickMs: 5,
    electionTicks: 10,
    requestTimeoutMs: 3000,
    snapshotEntries: 10,
    snapshotKeepEntries: 2,
  });
  running.push(member);
  return member;
}

describe('Member snapshots on a persistent backend', () => {
  it('answers proposals while the backend makes a snapshot durable, and stores the snapshot after it', async () => {
    const storage = new MemoryStorage();
    const sm = new HeldBackendMachine();
    const member = await startSnapshottingMember(storage, sm);
    await waitFor('leadership', () => member.isLeader());
    for (let i = 0; i < 12 && sm.durableCalls.length === 0; i++) await member.propose(enc.encode(`a${i}`));
    expect(sm.durableCalls).toHaveLength(1);
    const { index, release } = sm.durableCalls[0];
    // The backend has not flushed: these are still acknowledged (once durable in the log),
    // and the snapshot is not stored.
    const later = await Promise.all(Array.from({ length: 5 }, (_, i) => member.propose(enc.encode(`b${i}`))));
    expect(later).toEqual([1, 2, 3, 4, 5].map((n) => sm.items.length - 5 + n));
    expect(storage.copyState('written').snapshot?.metadata.index ?? 0).toBeLessThan(index);
    release();
    await waitFor('the snapshot stored', () => storage.copyState('written').snapshot?.metadata.index === index);
    expect(sm.durableCalls).toHaveLength(1);
  });
});

/** A memory storage with SnapshotPreparation whose preparations wait for the test to release them. */
class PreparingStorage extends MemoryStorage implements SnapshotPreparation {
  readonly prepared: { snapshot: Snapshot; release: () => void }[] = [];
  readonly savedSnapshots: Snapshot[] = [];
  prepareSnapshot(snapshot: Snapshot): Promise<void> {
    return new Promise((resolve) => this.prepared.push({ snapshot, release: resolve }));
  }
  override async saveSnapshot(snapshot: Snapshot): Promise<void> {
    this.savedSnapshots.push(snapshot);
    return super.saveSnapshot(snapshot);
  }
}

describe('Member snapshots on a storage that prepares them (SnapshotPreparation)', () => {
  it('prepares its own snapshot beside the Ready loop, answering proposals meanwhile, then saves that snapshot', async () => {
    const storage = new PreparingStorage();
    const sm = new HeldBackendMachine();
    const member = await startSnapshottingMember(storage, sm);
    await waitFor('leadership', () => member.isLeader());
    for (let i = 0; i < 12 && sm.durableCalls.length === 0; i++) await member.propose(enc.encode(`a${i}`));
    const { index, release } = sm.durableCalls[0];
    // Prepared only once the backend holds the snapshot's entries.
    expect(storage.prepared).toHaveLength(0);
    release();
    await waitFor('the snapshot prepared', () => storage.prepared.length === 1);
    const { snapshot, release: prepared } = storage.prepared[0];
    expect(snapshot.metadata.index).toBe(index);
    // Still preparing: proposals are answered, and nothing is saved as a snapshot yet.
    const later = await Promise.all(Array.from({ length: 5 }, (_, i) => member.propose(enc.encode(`b${i}`))));
    expect(later).toEqual([1, 2, 3, 4, 5].map((n) => sm.items.length - 5 + n));
    expect(storage.savedSnapshots).toHaveLength(0);
    prepared();
    await waitFor('the snapshot saved', () => storage.savedSnapshots.length === 1);
    // The very snapshot prepared: its point and image.
    expect(storage.savedSnapshots[0].metadata).toEqual(snapshot.metadata);
    expect(storage.savedSnapshots[0].data).toBe(snapshot.data);
    expect(storage.copyState('written').snapshot?.metadata.index).toBe(index);
  });
});

describe('Member snapshots bounded by bytes', () => {
  // Large entries (txns of many puts) would otherwise stay in memory for snapshotEntries entries.
  const run = async (extra: object) => {
    const storage = new MemoryStorage();
    const { member } = await startMember(new MemoryHub(), 1, [1], storage, { snapshotEntries: 1000, snapshotKeepEntries: 500, ...extra });
    await waitFor('leadership', () => member.isLeader());
    for (let i = 0; i < 30; i++) await member.propose(new Uint8Array(1000).fill(i));
    const snapshotIndex = storage.copyState('written').snapshot?.metadata.index ?? 0;
    return { snapshotIndex, inMemory: member.entriesInMemory(), lastIndex: member.status().lastIndex };
  };

  it('snapshots after snapshotLogBytesMax of entries and keeps about snapshotKeepBytesMax behind it', async () => {
    const bounded = await run({ snapshotLogBytesMax: 10_000, snapshotKeepBytesMax: 3_000 });
    expect(bounded.snapshotIndex).toBeGreaterThanOrEqual(10);
    // At most ~10 KB since the snapshot plus ~3 KB kept behind it, of 1 KB entries.
    expect(bounded.inMemory).toBeLessThanOrEqual(bounded.lastIndex - bounded.snapshotIndex + 4);
    expect(bounded.inMemory).toBeLessThanOrEqual(15);
    expect(bounded.inMemory).toBeGreaterThan(bounded.lastIndex - bounded.snapshotIndex);
    // The default bounds (32 MiB) leave these 30 KB alone: the entry count decides.
    const unbounded = await run({});
    expect(unbounded.snapshotIndex).toBeLessThan(10);
    expect(unbounded.inMemory).toBeGreaterThanOrEqual(30);
  });
});
