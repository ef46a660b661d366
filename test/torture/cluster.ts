// The real processes of a torture run: member slots that keep their client port for the whole
// run (so clients and watchers always know where to go) while the member behind a slot may be
// killed, paused, partitioned, corrupted, or removed and replaced by a new member.

import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { etcdctl } from '../etcd-api/harness.ts';
import { freePort, spawnCollecting, type Spawned } from '../helpers/processes.ts';
import { memberIdOf, memberIdOfPeerUrls } from '../../adapters/node/config.ts';

const bin = new URL('../../bin/meshkv.mjs', import.meta.url).pathname;
const clusterToken = 'torture';
const admissionSecret = 'torture-admission-secret';
/** A loaded machine (two cores, many processes) may take seconds to answer a local request. */
const fetchTimeoutMs = 5000;

export interface MemberRun {
  name: string;
  id: number;
  peerPort: number;
  dataDir: string;
  /** The --initial-cluster it was (and is, on restarts) started with. */
  initialCluster: string;
  state: 'new' | 'existing';
}

export interface Slot {
  index: number;
  clientPort: number;
  endpoint: string;
  member: MemberRun;
  proc: Spawned | null;
  paused: boolean;
  /** The member's data dir was corrupted on purpose: it must be replaced, never restarted as it is. */
  corrupt: boolean;
  /** Every log line of every process that ran in this slot, for the report of a failure. */
  logs: string[];
}

export interface MemberStatus {
  memberId: number;
  leader: number;
  revision: number;
  raftIndex: number;
  appliedIndex: number;
}

export class TortureCluster {
  readonly slots: Slot[] = [];
  private generation = 0;

  constructor(
    readonly root: string,
    private readonly snapshotCount: number,
  ) {}

  /** Starts `size` founding members and waits until each sees a leader. */
  async start(size: number): Promise<void> {
    const founders = [];
    for (let i = 0; i < size; i++) founders.push({ name: `m${i}`, peerPort: await freePort(), clientPort: await freePort() });
    const initialCluster = founders.map((f) => `${f.name}=http://127.0.0.1:${f.peerPort}`).join(',');
    for (const [index, f] of founders.entries()) {
      const member: MemberRun = { name: f.name, id: memberIdOf(f.name), peerPort: f.peerPort, dataDir: join(this.root, `${f.name}.data`), initialCluster, state: 'new' };
      this.slots.push({ index, clientPort: f.clientPort, endpoint: `127.0.0.1:${f.clientPort}`, member, proc: null, paused: false, corrupt: false, logs: [] });
    }
    for (const s of this.slots) this.launch(s);
    for (const s of this.slots) await this.ready(s);
  }

  /** Spawns the slot's member process (with the flags it was first started with). */
  launch(slot: Slot): Spawned {
    const m = slot.member;
    mkdirSync(this.root, { recursive: true });
    const proc = spawnCollecting(process.execPath, [
      bin,
      '--name', m.name,
      '--data-dir', m.dataDir,
      '--listen-client-urls', `http://127.0.0.1:${slot.clientPort}`,
      '--listen-peer-urls', `http://127.0.0.1:${m.peerPort}`,
      '--initial-advertise-peer-urls', `http://127.0.0.1:${m.peerPort}`,
      '--initial-cluster', m.initialCluster,
      '--initial-cluster-state', m.state,
      '--initial-cluster-token', clusterToken,
      '--snapshot-count', String(this.snapshotCount),
      '--admission-secret', admissionSecret,
      '--experimental-fault-injection',
    ]);
    // The slot's log spans every process that ran in it: each one's lines are added when it ends.
    slot.logs.push(`--- ${m.name} (${m.id.toString(16)}) started, pid ${proc.child.pid}`);
    slot.proc = proc;
    slot.paused = false;
    proc.exited.then(() => {
      for (const line of proc.logs) slot.logs.push(line);
      slot.logs.push(`--- ${m.name} exited (code ${proc.child.exitCode}, signal ${proc.child.signalCode})`);
    });
    return proc;
  }

  /**
   * Waits for the slot's process to log that it sees a leader; throws if it exits first. 60 s:
   * at a load average of 40 a restarted member took over 30 s from spawn to ready (seed 3002,
   * a lag-snapshot restart), most of it before its first log line.
   */
  async ready(slot: Slot, timeoutMs = 60_000): Promise<void> {
    const p = slot.proc!;
    const start = Date.now();
    while (!p.logs.some((l) => l.includes('"msg":"ready: the cluster has a leader"'))) {
      if (p.child.exitCode !== null || p.child.signalCode !== null) throw new Error(`${slot.member.name} exited with ${p.child.exitCode}:\n${p.logs.slice(-20).join('\n')}`);
      if (Date.now() - start > timeoutMs) throw new Error(`${slot.member.name} not ready after ${timeoutMs} ms:\n${p.logs.slice(-20).join('\n')}`);
      await sleep(20);
    }
  }

  isRunning(slot: Slot): boolean {
    const p = slot.proc;
    return p !== null && p.child.exitCode === null && p.child.signalCode === null;
  }

  async kill9(slot: Slot): Promise<void> {
    const p = slot.proc;
    if (p === null) return;
    if (this.isRunning(slot)) process.kill(p.child.pid!, 'SIGKILL');
    await p.exited;
    slot.paused = false;
  }

  pause(slot: Slot): void {
    if (!this.isRunning(slot)) return;
    process.kill(slot.proc!.child.pid!, 'SIGSTOP');
    slot.paused = true;
  }

  resume(slot: Slot): void {
    if (slot.paused && this.isRunning(slot)) process.kill(slot.proc!.child.pid!, 'SIGCONT');
    slot.paused = false;
  }

  /** POSTs to the slot's fault admin endpoint; throws on a refusal. */
  async fault(slot: Slot, action: 'block' | 'heal' | 'clock' | 'disk', body: Record<string, unknown>): Promise<void> {
    // Each member keeps its fault endpoint's secret in its data directory.
    const secret = readFileSync(join(slot.member.dataDir, 'fault-injection-secret'), 'utf8').trim();
    const res = await fetch(`http://${slot.endpoint}/meshkv/faults/${action}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${secret}` },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(fetchTimeoutMs),
    });
    if (res.status !== 200) throw new Error(`${slot.member.name}: /meshkv/faults/${action} answered ${res.status}: ${await res.text()}`);
  }

  /** Cuts `slot` off from every other member, both ways, on both ends of each link. */
  async isolate(slot: Slot): Promise<void> {
    for (const other of this.slots) {
      if (other === slot) continue;
      await this.fault(slot, 'block', { peer: other.member.id.toString(16) });
      await this.fault(other, 'block', { peer: slot.member.id.toString(16) });
    }
  }

  /**
   * A one-way partition: with 'out', nothing `slot` sends reaches any other member (it still
   * hears them); with 'in', nothing reaches it. Blocked on both ends of each link.
   */
  async isolateOneWay(slot: Slot, direction: 'in' | 'out'): Promise<void> {
    for (const other of this.slots) {
      if (other === slot) continue;
      await this.fault(slot, 'block', { peer: other.member.id.toString(16), direction });
      await this.fault(other, 'block', { peer: slot.member.id.toString(16), direction: direction === 'out' ? 'in' : 'out' });
    }
  }

  /**
   * Heals every link, resets the clock rate and the disk on every running, unpaused member, and
   * reads each member's fault state back until it shows nothing blocked. A heal request that
   * timed out on a loaded machine used to be ignored, leaving a switch blocking with no error
   * anywhere (a member that never hears its peers again); now it is retried for 30 s, then the
   * run fails naming the member.
   */
  async healAll(): Promise<void> {
    for (const s of this.slots) {
      if (!this.isRunning(s) || s.paused) continue;
      await retry(`healing ${s.member.name}'s faults`, async () => {
        if (!this.isRunning(s)) return;
        await this.fault(s, 'heal', {});
        await this.fault(s, 'clock', { rate: 1 });
        await this.fault(s, 'disk', { syncDelayMs: 0, full: false });
        const state = await this.faultState(s);
        const blocked = state.peers.filter((p) => p.blockedIn || p.blockedOut);
        if (blocked.length > 0 || state.clock.rate !== 1 || (state.disk && (state.disk.full || state.disk.syncDelayMs !== 0))) {
          throw new Error(`still faulty after healing: ${JSON.stringify(state)}`);
        }
      });
    }
  }

  /** The slot's fault state as its endpoint reports it. */
  async faultState(slot: Slot): Promise<{ peers: { id: string; blockedIn: boolean; blockedOut: boolean }[]; clock: { rate: number }; disk?: { full: boolean; syncDelayMs: number } }> {
    const secret = readFileSync(join(slot.member.dataDir, 'fault-injection-secret'), 'utf8').trim();
    const res = await fetch(`http://${slot.endpoint}/meshkv/faults`, { headers: { authorization: `Bearer ${secret}` }, signal: AbortSignal.timeout(fetchTimeoutMs) });
    if (res.status !== 200) throw new Error(`${slot.member.name}: GET /meshkv/faults answered ${res.status}: ${await res.text()}`);
    return res.json() as never;
  }

  /** etcdctl move-leader, asked of the current leader; the error text when it failed. */
  async moveLeader(leader: Slot, target: Slot): Promise<string | null> {
    const r = await etcdctl(leader.endpoint, ['move-leader', target.member.id.toString(16), '--command-timeout=10s']);
    return r.code === 0 ? null : r.stderr.trim() || `exit ${r.code}`;
  }

  /** The member's own status over the JSON gateway; null when it does not answer in time. */
  async status(slot: Slot): Promise<MemberStatus | null> {
    if (!this.isRunning(slot) || slot.paused) return null;
    try {
      const res = await fetch(`http://${slot.endpoint}/v3/maintenance/status`, { method: 'POST', body: '{}', signal: AbortSignal.timeout(fetchTimeoutMs) });
      if (res.status !== 200) return null;
      const j = (await res.json()) as { header: { member_id: string; revision?: string }; leader?: string; raftIndex?: string; raftAppliedIndex?: string };
      return {
        memberId: Number(j.header.member_id),
        leader: Number(j.leader ?? 0),
        revision: Number(j.header.revision ?? 0),
        raftIndex: Number(j.raftIndex ?? 0),
        appliedIndex: Number(j.raftAppliedIndex ?? 0),
      };
    } catch {
      return null;
    }
  }

  /** The slot whose member every answering member names as leader, if they agree. */
  async leader(): Promise<Slot | null> {
    const leaders = new Set<number>();
    for (const s of this.slots) {
      const st = await this.status(s);
      if (st && st.leader !== 0) leaders.add(st.leader);
    }
    if (leaders.size !== 1) return null;
    const [id] = leaders;
    return this.slots.find((s) => s.member.id === id) ?? null;
  }

  /**
   * Waits until every slot runs, answers, all name the same leader, and every member has caught
   * up to the leader's raft index as it was when they first agreed: naming a leader is not
   * proof of hearing it (a member keeps the name until its election timeout runs out).
   */
  async healthy(timeoutMs: number): Promise<Slot> {
    const start = Date.now();
    let target: { leader: number; index: number } | null = null;
    for (;;) {
      const statuses = await Promise.all(this.slots.map((s) => this.status(s)));
      const leaders = new Set(statuses.map((s) => s?.leader ?? 0));
      if (statuses.every((s) => s !== null) && leaders.size === 1 && !leaders.has(0)) {
        const leaderId = statuses[0]!.leader;
        const leader = this.slots.find((s) => s.member.id === leaderId);
        const leaderStatus = statuses.find((s) => s!.memberId === leaderId);
        if (leader && leaderStatus) {
          if (target === null || target.leader !== leaderId) target = { leader: leaderId, index: leaderStatus.raftIndex };
          if (statuses.every((s) => s!.raftIndex >= target!.index)) return leader;
        }
      }
      if (Date.now() - start > timeoutMs) {
        throw new Error(`cluster not healthy after ${timeoutMs} ms${target ? ` (members to reach raft index ${target.index} of leader ${target.leader.toString(16)})` : ''}: ${JSON.stringify(statuses.map((s, i) => ({ slot: i, name: this.slots[i].member.name, status: s })))}`);
      }
      await sleep(200);
    }
  }

  /**
   * Replaces the slot's member with a new, empty one (as after a disk loss): removes the old
   * member from the cluster, wipes its data dir, adds a new member under a new name and peer
   * port, and starts it with --initial-cluster-state existing. The slot keeps its client port.
   */
  async replace(slot: Slot): Promise<void> {
    await this.kill9(slot);
    const others = this.slots.filter((s) => s !== slot);
    const via = others.map((s) => s.endpoint).join(',');
    // A change whose answer timed out (a paused or slow member) may still have been applied, and
    // a retry is then refused for another reason (etcd checks "not enough started members"
    // before it looks for a duplicate): each retry first asks whether the change is there.
    await retry(`member remove ${slot.member.name}`, async () => {
      if (!(await this.memberList(via)).some((m) => m.id === slot.member.id)) return true;
      const r = await etcdctl(via, ['member', 'remove', slot.member.id.toString(16), '--command-timeout=5s']);
      if (r.code === 0 || r.stderr.includes('member not found')) return true;
      throw new Error(r.stderr);
    });
    rmSync(slot.member.dataDir, { recursive: true, force: true });
    slot.corrupt = false;
    const name = `m${slot.index}g${++this.generation}`;
    const peerPort = await freePort();
    const peerUrl = `http://127.0.0.1:${peerPort}`;
    await retry(`member add ${name}`, async () => {
      if ((await this.memberList(via)).some((m) => m.peerURLs.includes(peerUrl))) return true;
      const r = await etcdctl(via, ['member', 'add', name, `--peer-urls=${peerUrl}`, '--command-timeout=5s']);
      if (r.code === 0 || r.stderr.includes('Peer URLs already exists')) return true;
      throw new Error(r.stderr);
    });
    const initialCluster = [...others.map((s) => `${s.member.name}=http://127.0.0.1:${s.member.peerPort}`), `${name}=${peerUrl}`].join(',');
    slot.member = { name, id: memberIdOfPeerUrls([peerUrl]), peerPort, dataDir: join(this.root, `${name}.data`), initialCluster, state: 'existing' };
    this.launch(slot);
    await this.ready(slot);
  }

  /** etcdctl member list through `via`; throws when no member answers. */
  private async memberList(via: string): Promise<{ id: number; peerURLs: string[] }[]> {
    const r = await etcdctl(via, ['member', 'list', '-w', 'json', '--command-timeout=5s']);
    if (r.code !== 0) throw new Error(`member list: ${r.stderr}`);
    const answer = JSON.parse(r.stdout) as { members?: { ID: number | string; peerURLs?: string[] }[] };
    return (answer.members ?? []).map((m) => ({ id: Number(m.ID), peerURLs: m.peerURLs ?? [] }));
  }

  /** Kills every process started here, by PID (paused ones are killed too). */
  async stopAll(): Promise<void> {
    for (const s of this.slots) await this.kill9(s);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Retries `fn` every 500 ms for up to 30 s (a membership change needs a leader and a quorum). */
export async function retry<T>(what: string, fn: () => Promise<T>, timeoutMs = 30_000): Promise<T> {
  const start = Date.now();
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() - start > timeoutMs) throw new Error(`${what} failed for ${timeoutMs} ms: ${(err as Error).message}`);
      await sleep(500);
    }
  }
}
