// The nemesis of a torture run: a seeded schedule of faults, each applied, held for a while,
// healed, and followed by a wait until the cluster is whole again. Some kinds overlap two
// faults (a kill during a partition, a pause during a membership change, clock skew during a
// leader transfer). The first round takes each kind once, in a seeded order, so even a short
// run exercises all of them.
//
// Replay: the seed fixes the order of kinds, hold times, directions, offsets and every target
// not chosen as "the leader"; who leads, and all timing of real processes, vary between runs.

import { openSync, closeSync, readdirSync, readFileSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { sleep, type Slot, type TortureCluster } from './cluster.ts';
import type { Spawned } from '../helpers/processes.ts';
import { emptyLandings, noteKillLanding } from './durable-state.ts';
import { nodeWalFs } from '../../adapters/storage/fs-wal/index.ts';
import { readWal, snapshotName } from '../../adapters/storage/fs-wal/replay.ts';
import { frameBytesMaxDefault } from '../../adapters/storage/fs-wal/wal.ts';

export const faultKinds = [
  'kill-leader',
  'kill-member',
  'partition-member',
  'partition-leader',
  'partition-one-way',
  'pause',
  'membership',
  'clock',
  'wal-torn',
  'wal-flip',
  'snap-flip',
  'disk-full',
  'slow-fsync',
  'backend-full',
  'slow-backend',
  'lag-snapshot',
  'kill-during-partition',
  'pause-during-membership',
  'skew-during-transfer',
] as const;
export type FaultKind = (typeof faultKinds)[number];

export interface FaultRecord {
  kind: FaultKind;
  target: string;
  at: number;
  detail: string;
}

export interface NemesisOptions {
  random: () => number;
  /** How long a fault is held before it is healed. */
  holdMs: [number, number];
  /** Quiet time between faults. */
  gapMs: number;
  log: (line: string) => void;
  now: () => number;
  /** Keep going past end() until every kind has been injected once (the CI run asserts that). */
  coverEveryKind?: boolean;
  /** The cluster's --snapshot-count: lag-snapshot keeps a member down until the leader is four times this far ahead. */
  snapshotCount: number;
}

/** A seeded schedule: every kind once in a shuffled order, then kinds at random. */
export function* schedule(random: () => number): Generator<FaultKind> {
  const first = [...faultKinds];
  for (let i = first.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [first[i], first[j]] = [first[j], first[i]];
  }
  yield* first;
  for (;;) yield faultKinds[Math.floor(random() * faultKinds.length)];
}

export class Nemesis {
  readonly faults: FaultRecord[] = [];
  readonly anomalies: string[] = [];
  /** How long each refusal to start on a corrupted file took, from spawn to exit. */
  readonly refusalMs: number[] = [];
  /** Windows [from, to] on the run's clock while some member's clock was being skewed (lease expiry may come early then). */
  readonly skewWindows: [number, number][] = [];
  /** Members that stopped on a full disk (ENOSPC; by what was full), and lag-snapshot restarts that adopted a streamed snapshot. */
  readonly outcomes = { diskFullStops: { wal: 0, backend: 0 }, lagSnapshotsAdopted: 0, transfersRefused: 0 };
  /** Where each plain SIGKILL landed relative to the backend commit (durable-state.ts). */
  readonly killLandings = emptyLandings();
  private running = false;
  private loop: Promise<void> | null = null;

  constructor(
    private readonly cluster: TortureCluster,
    private readonly opts: NemesisOptions,
  ) {}

  begin(): void {
    this.running = true;
    this.loop = this.run();
  }

  /** Stops after the fault in progress has been healed (with coverEveryKind, after the first round). */
  async end(): Promise<void> {
    this.running = false;
    await this.loop;
  }

  private pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.opts.random() * xs.length)];
  }

  private holdTime(): number {
    const [lo, hi] = this.opts.holdMs;
    return lo + this.opts.random() * (hi - lo);
  }

  private hold(): Promise<void> {
    return sleep(this.holdTime());
  }

  private async run(): Promise<void> {
    let injected = 0;
    for (const kind of schedule(this.opts.random)) {
      if (!this.running && !(this.opts.coverEveryKind && injected < faultKinds.length)) return;
      injected++;
      try {
        await this.cluster.healthy(60_000);
      } catch (err) {
        this.anomaly(`before ${kind}: ${(err as Error).message}`);
        return;
      }
      await sleep(this.opts.gapMs);
      let failed = false;
      try {
        await this.inject(kind);
      } catch (err) {
        this.anomaly(`${kind}: ${(err as Error).message}`);
        failed = true;
      }
      try {
        await this.cluster.healAll();
      } catch (err) {
        this.anomaly(`after ${kind}: ${(err as Error).message}`);
        failed = true;
      }
      if (failed) return;
    }
  }

  /** An anomaly, logged at once too: a run whose nemesis stopped early shows why while it goes on. */
  private anomaly(text: string): void {
    this.anomalies.push(text);
    this.opts.log(`nemesis: ANOMALY ${text}`);
  }

  private record(kind: FaultKind, slot: Slot, detail: string): void {
    const f = { kind, target: slot.member.name, at: Math.round(this.opts.now()), detail };
    this.faults.push(f);
    this.opts.log(`nemesis: ${kind} on ${f.target} at ${f.at} ms: ${detail}`);
  }

  private async leaderOrAny(): Promise<Slot> {
    return (await this.cluster.leader()) ?? this.pick(this.cluster.slots);
  }

  /** A member other than `slot`, drawn from the seeded stream. */
  private other(slot: Slot): Slot {
    return this.pick(this.cluster.slots.filter((s) => s !== slot));
  }

  /**
   * Proof that cutting off the leader took effect: the other members agree on another leader
   * within 15 s (a few election timeouts). Without it, a fault switch that did nothing would
   * pass every check.
   */
  private async expectNewLeader(kind: FaultKind, old: Slot): Promise<void> {
    const others = this.cluster.slots.filter((s) => s !== old);
    const start = Date.now();
    for (;;) {
      const statuses = await Promise.all(others.map((s) => this.cluster.status(s)));
      const leaders = new Set(statuses.map((st) => st?.leader ?? 0));
      if (statuses.every((st) => st !== null) && leaders.size === 1 && !leaders.has(0) && !leaders.has(old.member.id)) return;
      if (Date.now() - start > 15_000) {
        this.anomaly(`${kind}: no new leader among the other members 15 s after cutting off leader ${old.member.name}: ${JSON.stringify(statuses)}`);
        return;
      }
      await sleep(100);
    }
  }

  private async restart(slot: Slot): Promise<void> {
    this.cluster.launch(slot);
    await this.cluster.ready(slot);
  }

  private async inject(kind: FaultKind): Promise<void> {
    const c = this.cluster;
    switch (kind) {
      case 'kill-leader':
      case 'kill-member': {
        const leader = await c.leader();
        const slot = kind === 'kill-leader' ? (leader ?? this.pick(c.slots)) : this.pick(c.slots);
        this.record(kind, slot, 'SIGKILL, restart after the hold');
        await c.kill9(slot);
        await noteKillLanding(this.killLandings, slot.member.dataDir);
        if (slot === leader) await this.expectNewLeader(kind, slot);
        await this.hold();
        return this.restart(slot);
      }
      case 'partition-member':
      case 'partition-leader': {
        const leader = await c.leader();
        const slot = kind === 'partition-leader' ? (leader ?? this.pick(c.slots)) : this.pick(c.slots);
        this.record(kind, slot, 'isolated in a minority of one through the fault switches');
        await c.isolate(slot);
        if (slot === leader) await this.expectNewLeader(kind, slot);
        await this.hold();
        return;
      }
      case 'partition-one-way': {
        const direction = this.opts.random() < 0.5 ? 'out' : 'in';
        const slot = this.opts.random() < 0.6 ? await this.leaderOrAny() : this.pick(c.slots);
        const leader = await c.leader();
        this.record(kind, slot, direction === 'out' ? 'its messages to every peer dropped (it still hears them)' : 'every peer\'s messages to it dropped (it still reaches them)');
        await c.isolateOneWay(slot, direction);
        // A leader that can send but not hear loses its quorum (check-quorum) and steps down; one
        // that cannot send stops heartbeating. Either way the others elect another leader.
        if (slot === leader) await this.expectNewLeader(kind, slot);
        await this.hold();
        return;
      }
      case 'pause': {
        const slot = this.opts.random() < 0.5 ? await this.leaderOrAny() : this.pick(c.slots);
        this.record(kind, slot, 'SIGSTOP, SIGCONT after the hold');
        c.pause(slot);
        await this.hold();
        c.resume(slot);
        return;
      }
      case 'membership': {
        const slot = this.pick(c.slots);
        this.record(kind, slot, 'removed, wiped and re-added as a new member');
        await c.replace(slot);
        return;
      }
      case 'clock': {
        const slot = this.opts.random() < 0.7 ? await this.leaderOrAny() : this.pick(c.slots);
        const jumpMs = Math.round(1000 + this.opts.random() * 9000);
        const rate = 0.25 + this.opts.random() * 0.5;
        this.record(kind, slot, `clock jumped ${jumpMs} ms forward, then run at rate ${rate.toFixed(2)} until healed`);
        const from = this.opts.now();
        await c.fault(slot, 'clock', { jumpMs, rate });
        await this.hold();
        this.skewWindows.push([from, this.opts.now() + 1000]);
        return;
      }
      case 'wal-torn':
        return this.walTruncate();
      case 'wal-flip':
      case 'snap-flip':
        return this.flip(kind);
      case 'disk-full':
        return this.diskFull(kind, 'wal');
      case 'backend-full':
        return this.diskFull(kind, 'backend');
      case 'slow-fsync':
      case 'slow-backend': {
        const slot = this.opts.random() < 0.5 ? await this.leaderOrAny() : this.pick(c.slots);
        const syncDelayMs = Math.round(100 + this.opts.random() * 900);
        const target = kind === 'slow-fsync' ? 'wal' : 'backend';
        this.record(kind, slot, target === 'wal' ? `every WAL sync waits ${syncDelayMs} ms until healed` : `backend commits wait ${syncDelayMs} ms before reaching LMDB until healed`);
        await c.fault(slot, 'disk', { syncDelayMs, target });
        await this.hold();
        return;
      }
      case 'lag-snapshot':
        return this.lagSnapshot();
      case 'kill-during-partition': {
        const leader = await c.leader();
        const isolated = this.opts.random() < 0.5 && leader ? leader : this.pick(c.slots);
        const killSelf = this.opts.random() < 0.5;
        const killed = killSelf ? isolated : this.other(isolated);
        this.record(kind, isolated, `isolated, then ${killSelf ? 'itself' : killed.member.name} SIGKILLed during the partition and restarted before the heal`);
        await c.isolate(isolated);
        await sleep(this.holdTime() / 2);
        await c.kill9(killed);
        await noteKillLanding(this.killLandings, killed.member.dataDir);
        await this.hold();
        // A restarted member's own switch is clear, but its peers still block it until the heal.
        this.cluster.launch(killed);
        await sleep(this.holdTime() / 2);
        await c.healAll();
        await c.ready(killed);
        return;
      }
      case 'pause-during-membership': {
        const slot = this.pick(c.slots);
        const paused = this.other(slot);
        const holdMs = this.holdTime();
        const delayMs = this.opts.random() * 1000;
        this.record(kind, slot, `removed, wiped and re-added while ${paused.member.name} is paused for ${Math.round(holdMs)} ms from ${Math.round(delayMs)} ms in`);
        const pausing = (async () => {
          await sleep(delayMs);
          c.pause(paused);
          await sleep(holdMs);
          c.resume(paused);
        })();
        try {
          await c.replace(slot);
        } finally {
          await pausing;
        }
        return;
      }
      case 'skew-during-transfer': {
        const leader = await c.leader();
        if (leader === null) throw new Error('no leader to transfer from');
        const target = this.other(leader);
        const skewed = this.opts.random() < 0.5 ? leader : target;
        const jumpMs = Math.round(500 + this.opts.random() * 4500);
        const rate = 0.25 + this.opts.random() * 1.75;
        this.record(kind, leader, `clock of ${skewed.member.name} jumped ${jumpMs} ms and run at rate ${rate.toFixed(2)}, then leadership moved to ${target.member.name}`);
        const from = this.opts.now();
        await c.fault(skewed, 'clock', { jumpMs, rate });
        const refused = await c.moveLeader(leader, target);
        if (refused !== null) {
          this.outcomes.transfersRefused++;
          this.opts.log(`nemesis: move-leader to ${target.member.name} refused under skew: ${refused}`);
        }
        await this.hold();
        this.skewWindows.push([from, this.opts.now() + 1000]);
        return;
      }
    }
  }

  /**
   * Fills a member's disk: its WAL writes, or its backend's commits, fail with ENOSPC. A member
   * whose save or commit fails stops (nothing it acknowledges after a failed write could be
   * trusted), and an operator restarts it once space is freed: after the hold the disk is
   * healed and a stopped member restarted.
   */
  private async diskFull(kind: 'disk-full' | 'backend-full', target: 'wal' | 'backend'): Promise<void> {
    const c = this.cluster;
    const slot = this.opts.random() < 0.5 ? await this.leaderOrAny() : this.pick(c.slots);
    this.record(kind, slot, target === 'wal' ? 'WAL writes fail with ENOSPC until healed' : 'backend commits fail with ENOSPC until healed');
    const proc = slot.proc!;
    const linesBefore = proc.logs.length;
    await c.fault(slot, 'disk', { full: true, target });
    await this.hold();
    await c.fault(slot, 'disk', { full: false });
    const stopped = proc.logs.slice(linesBefore).find((l) => l.includes('stopped:') && l.includes('ENOSPC'));
    if (stopped === undefined) return;
    this.outcomes.diskFullStops[target]++;
    this.opts.log(`nemesis: ${slot.member.name} stopped on the full disk (${target}); restarting it`);
    await c.kill9(slot);
    await this.restart(slot);
  }

  /**
   * Keeps a follower down until the leader has applied twice the snapshot count beyond it, so
   * the leader has compacted its log past the follower: it must catch up from a streamed
   * snapshot of the backend.
   */
  private async lagSnapshot(): Promise<void> {
    const c = this.cluster;
    const leader = await c.leader();
    const slot = this.pick(c.slots.filter((s) => s !== leader));
    const before = leader ? await c.status(leader) : null;
    // The leader snapshots every snapshotCount entries and keeps snapshotCount entries behind the
    // snapshot: four times that is surely past what its log still holds.
    const lagEntries = 4 * this.opts.snapshotCount;
    this.record('lag-snapshot', slot, `SIGKILL, restarted once the leader has applied ${lagEntries} more entries`);
    await c.kill9(slot);
    await noteKillLanding(this.killLandings, slot.member.dataDir);
    const start = Date.now();
    for (;;) {
      const now = leader ? await c.status(leader) : null;
      if (before && now && now.appliedIndex - before.appliedIndex >= lagEntries) break;
      if (Date.now() - start > 60_000) {
        this.opts.log(`nemesis: lag-snapshot: the leader did not apply ${lagEntries} entries in 60 s; restarting ${slot.member.name} anyway`);
        break;
      }
      await sleep(200);
    }
    const proc = c.launch(slot);
    await c.ready(slot);
    const adopted = await waitForLine(proc, '"msg":"member ', 'adopted snapshot', 30_000);
    if (adopted) this.outcomes.lagSnapshotsAdopted++;
  }

  /** Whether a launched member exited (its code), logged that it started, or is still loading at the timeout. */
  private async startOutcome(proc: Spawned, timeoutMs: number): Promise<number | 'started' | 'loading'> {
    const start = Date.now();
    const logs = proc.logs;
    for (;;) {
      const code = proc.child.exitCode;
      if (code !== null) {
        // Its last lines may still be in the pipe when the exit is reported.
        while (!proc.child.stderr!.closed && Date.now() - start < timeoutMs) await sleep(10);
        return code;
      }
      if (logs.some((l) => l.includes('"msg":"member started"'))) return 'started';
      if (Date.now() - start > timeoutMs) return 'loading';
      await sleep(50);
    }
  }

  /**
   * Kills a member and leaves a torn write at the end of its WAL, as a crash in the middle of
   * a save would: a prefix of a copy of its last frame, written right after it, cut before the
   * copy's last non-zero byte.
   * The member must restart, logging the torn write it dropped. Only a save that never
   * completed can be torn: cutting into a frame already synced would destroy an entry the
   * member acknowledged, which Raft assumes never happens (see docs/reliability.md).
   */
  private async walTruncate(): Promise<void> {
    const c = this.cluster;
    const slot = this.pick(c.slots);
    await c.kill9(slot);
    const segment = lastSegment(slot.member.dataDir);
    const bytes = readFileSync(segment);
    const [lastStart, end] = lastFrame(bytes);
    const frameBytes = end - lastStart;
    // The torn copy must stop before the frame's last non-zero byte: a frame ending in zeros,
    // cut among them, would lie on the zeroed tail whole, a valid copy of the last frame.
    let lastNonZero = end - 1;
    while (bytes[lastNonZero] === 0) lastNonZero--;
    const tornBytes = 1 + Math.floor(this.opts.random() * (lastNonZero - lastStart));
    const fd = openSync(segment, 'r+');
    try {
      writeSync(fd, bytes, lastStart, tornBytes, end);
    } finally {
      closeSync(fd);
    }
    this.record('wal-torn', slot, `${segment}: a torn write of ${tornBytes} of ${frameBytes} bytes after its last frame (which ends at byte ${end})`);
    c.launch(slot);
    await c.ready(slot);
    const proc = slot.proc!;
    if (!proc.logs.some((l) => l.includes('dropping a torn final write'))) {
      this.anomaly(`wal-torn: ${slot.member.name} restarted without reporting the torn write it had to drop`);
    }
  }

  /**
   * Kills a member, flips one byte in the middle of its WAL or of its latest snapshot file,
   * and expects it to refuse to start with a message naming the file (and the offset, for the
   * WAL). Then the member is wiped and re-added as a new one.
   */
  private async flip(kind: 'wal-flip' | 'snap-flip'): Promise<void> {
    const c = this.cluster;
    const candidates = c.slots.filter((s) => (kind === 'wal-flip' ? walBytes(s.member.dataDir) >= 4096 : latestSnapshot(s.member.dataDir) !== null));
    if (candidates.length === 0) throw new Error(`no member has a ${kind === 'wal-flip' ? 'WAL of 4 KiB or more' : 'snapshot file'} to corrupt`);
    const slot = this.pick(candidates);
    await c.kill9(slot);
    const file = kind === 'wal-flip' ? lastSegment(slot.member.dataDir) : await snapshotInUse(slot.member.dataDir);
    if (file === null) {
      // Only an orphan snapshot file (written, its WAL record cut off by the kill): the member
      // rightly ignores it, so flipping it proves nothing. Restart untouched.
      this.opts.log(`nemesis: ${kind} on ${slot.member.name}: its WAL names no snapshot yet; restarted untouched`);
      c.launch(slot);
      await c.ready(slot);
      return;
    }
    const size = kind === 'wal-flip' ? dataEnd(readFileSync(file)) : statSync(file).size;
    const offset = Math.floor(size * (0.25 + this.opts.random() * 0.4));
    flipByte(file, offset);
    slot.corrupt = true;
    this.record(kind, slot, `flipped byte ${offset} of ${file} (${size} bytes of data)`);
    const proc = c.launch(slot);
    const launched = Date.now();
    // Deciding torn-versus-corrupt may take a while (see docs/reliability.md): allow a minute.
    const outcome = await this.startOutcome(proc, 60_000);
    const tookMs = Date.now() - launched;
    if (outcome === 'started') {
      this.anomaly(`${kind}: ${slot.member.name} started on a corrupted ${file} (byte ${offset} flipped)`);
    } else if (outcome === 'loading') {
      this.anomaly(`${kind}: ${slot.member.name} neither refused nor started within 60 s on a corrupted ${file} (byte ${offset} flipped)`);
    } else {
      const refusal = proc.logs.find((l) => l.includes('"level":"error"') && l.includes(file));
      const named = refusal !== undefined && (kind === 'snap-flip' || /at byte \d+/.test(refusal));
      if (outcome !== 1 || !named) {
        this.anomaly(`${kind}: ${slot.member.name} exited with ${outcome} without an error naming ${file}${kind === 'wal-flip' ? ' and the byte offset' : ''}:\n${proc.logs.slice(-5).join('\n')}`);
      } else {
        this.refusalMs.push(tookMs);
        this.opts.log(`nemesis: ${slot.member.name} refused to start after ${tookMs} ms: ${JSON.parse(refusal).msg}`);
      }
    }
    await c.replace(slot);
  }
}

function segments(dir: string): string[] {
  return readdirSync(dir).filter((n) => /^[0-9a-f]{16}\.wal$/.test(n)).sort();
}

/**
 * The segment the member wrote last: the newest, unless that one is the next segment prepared
 * ahead of its rollover, all zeros (adapters/storage/fs-wal/wal.ts, rule 6); then the one before.
 */
function lastSegment(dir: string): string {
  const all = segments(dir);
  if (all.length === 0) throw new Error(`${dir} has no WAL segment`);
  const newest = join(dir, all[all.length - 1]);
  if (all.length > 1 && dataEnd(readFileSync(newest)) === 0) return join(dir, all[all.length - 2]);
  return newest;
}

function latestSnapshot(dir: string): string | null {
  const snaps = readdirSync(dir).filter((n) => /^[0-9a-f]{16}-[0-9a-f]{16}\.snap$/.test(n)).sort();
  return snaps.length === 0 ? null : join(dir, snaps[snaps.length - 1]);
}

/**
 * The snapshot file a restart loads: the one the WAL's last snapshot record names. A newer file
 * whose record never reached the WAL (a kill between the two writes, a window a slow backend
 * widens) is an orphan the member ignores, as etcd ignores snapshot files its WAL does not name.
 */
async function snapshotInUse(dir: string): Promise<string | null> {
  const wal = await readWal(nodeWalFs, dir, frameBytesMaxDefault);
  return wal.marker === null ? null : join(dir, snapshotName(wal.marker));
}

function walBytes(dir: string): number {
  try {
    return dataEnd(readFileSync(lastSegment(dir)));
  } catch {
    return 0;
  }
}

/**
 * Where the last frame of a segment starts and ends, by walking the frames from the start
 * ([u32 payloadBytes][u32 crc][u8 type][payload], adapters/storage/fs-wal/records.ts; a zero
 * type marks the preallocated space after the last frame).
 */
function lastFrame(bytes: Buffer): [number, number] {
  const headerBytes = 9;
  let at = 0;
  let last = -1;
  while (at + headerBytes <= bytes.length && bytes[at + 8] !== 0) {
    last = at;
    at += headerBytes + bytes.readUInt32LE(at);
  }
  if (last < 0 || at > bytes.length) throw new Error(`no whole frame to copy in the WAL segment (walked to byte ${at} of ${bytes.length})`);
  return [last, at];
}

/** Waits until a line containing both `a` and `b` appears in the process's log. */
async function waitForLine(proc: Spawned, a: string, b: string, timeoutMs: number): Promise<boolean> {
  const start = Date.now();
  while (Date.now() - start < timeoutMs) {
    if (proc.logs.some((l) => l.includes(a) && l.includes(b))) return true;
    if (proc.child.exitCode !== null) return false;
    await sleep(100);
  }
  return false;
}

/** The length of a preallocated segment's written part: up to its last non-zero byte. */
function dataEnd(bytes: Uint8Array): number {
  let i = bytes.length - 1;
  while (i >= 0 && bytes[i] === 0) i--;
  return i + 1;
}

function flipByte(path: string, offset: number): void {
  const bytes = readFileSync(path);
  const fd = openSync(path, 'r+');
  try {
    writeSync(fd, Buffer.from([bytes[offset] ^ 0xff]), 0, 1, offset);
  } finally {
    closeSync(fd);
  }
}
