// A small in-memory cluster for Raft behaviour tests. Every step prints what happened so
// scenarios read as transcripts: see scenario.ts and test/raft/scenarios/*.txt.

import { ReadOnlyOption, type RaftConfig } from '../../src/raft/config.ts';
import { ConfChangeTransition, ConfChangeType, decodeConfChange, type ConfChange } from '../../src/raft/confchange.ts';
import { RawNode } from '../../src/raft/raw-node.ts';
import {
  EntryType,
  MessageType,
  type Entry,
  type HardState,
  type MemberId,
  type Message,
  type Ready,
  type Snapshot,
} from '../../src/raft/types.ts';
import { prng } from './prng.ts';

const enc = new TextEncoder();
const dec = new TextDecoder();

export interface NodeOptions {
  preVote: boolean;
  checkQuorum: boolean;
  lease: boolean;
  electionTicks: number;
  heartbeatTicks: number;
  inflightMessagesMax: number;
  messageBytesMax: number;
}

export const defaultNodeOptions: NodeOptions = {
  preVote: false,
  checkQuorum: false,
  lease: false,
  electionTicks: 10,
  heartbeatTicks: 1,
  inflightMessagesMax: 256,
  messageBytesMax: 1024 * 1024,
};

interface Persisted {
  hardState: HardState;
  snapshot: Snapshot | null;
  entries: Entry[];
}

interface SimNode {
  id: MemberId;
  raw: RawNode;
  opts: NodeOptions;
  persisted: Persisted;
  /** (index, data) of every applied normal entry, for assertions. */
  applied: { index: number; term: number; data: string }[];
  logs: string[];
  crashed: boolean;
}

export function formatEntry(e: Entry): string {
  if (e.type === EntryType.ConfChange) return `${e.term}/${e.index} ${formatConfChange(decodeConfChange(e.data))}`;
  if (e.data.length === 0) return `${e.term}/${e.index}`;
  return `${e.term}/${e.index} "${dec.decode(e.data)}"`;
}

function formatConfChange(cc: ConfChange): string {
  if (cc.changes.length === 0) return 'conf(leave-joint)';
  const kind = { [ConfChangeType.AddNode]: 'v', [ConfChangeType.AddLearnerNode]: 'l', [ConfChangeType.RemoveNode]: 'r' };
  const tr = ['', ' joint-implicit', ' joint-explicit'][cc.transition];
  return `conf(${cc.changes.map((c) => `${kind[c.type]}${c.memberId}`).join(' ')}${tr})`;
}

export function formatMessage(m: Message): string {
  const head = `${m.from}->${m.to} ${MessageType[m.type]} term=${m.term}`;
  switch (m.type) {
    case MessageType.Vote:
    case MessageType.PreVote:
      return `${head} last=${m.logTerm}/${m.index}${m.context ? ' transfer' : ''}`;
    case MessageType.VoteResp:
    case MessageType.PreVoteResp:
      return `${head}${m.reject ? ' rejected' : ' granted'}`;
    case MessageType.App:
      return `${head} prev=${m.logTerm}/${m.index} commit=${m.commit}${m.entries.length ? ` [${m.entries.map(formatEntry).join(', ')}]` : ''}`;
    case MessageType.ForwardProp:
      return `${head} [${m.entries.map((e) => (e.type === EntryType.ConfChange ? formatConfChange(decodeConfChange(e.data)) : `"${dec.decode(e.data)}"`)).join(', ')}]`;
    case MessageType.AppResp:
      return m.reject ? `${head} rejected index=${m.index} hint=${m.logTerm}/${m.rejectHint}` : `${head} index=${m.index}`;
    case MessageType.Heartbeat:
      return `${head} commit=${m.commit}${m.context ? ` ctx=${dec.decode(m.context)}` : ''}`;
    case MessageType.HeartbeatResp:
      return `${head}${m.context ? ` ctx=${dec.decode(m.context)}` : ''}`;
    case MessageType.Snap:
      return `${head} snapshot=${m.snapshot!.metadata.term}/${m.snapshot!.metadata.index} voters=${m.snapshot!.metadata.confState.voters}`;
    case MessageType.ReadIndex:
      return `${head} ctx=${dec.decode(m.context!)}`;
    case MessageType.ReadIndexResp:
      return `${head} index=${m.index} ctx=${dec.decode(m.context!)}`;
    default:
      return head;
  }
}

export class Cluster {
  readonly nodes = new Map<MemberId, SimNode>();
  /** Messages sent and not yet delivered, in send order. */
  inflight: Message[] = [];
  /** Pairs "a-b" whose messages are dropped (one direction each). */
  private cut = new Set<string>();
  private seed = 1;
  out: string[] = [];

  /** Adds `count` members bootstrapped with `voters` (default: the members added). */
  addNodes(count: number, opts: Partial<NodeOptions>, voters?: MemberId[]): MemberId[] {
    const first = this.nodes.size + 1;
    const ids = Array.from({ length: count }, (_, i) => first + i);
    for (const id of ids) this.addNode(id, opts, voters ?? ids);
    return ids;
  }

  /** Adds an empty member that knows nothing: it learns the cluster from the leader. */
  addEmptyNode(opts: Partial<NodeOptions>): MemberId {
    const id = this.nodes.size + 1;
    this.addNode(id, opts, []);
    return id;
  }

  private addNode(id: MemberId, opts: Partial<NodeOptions>, peers: MemberId[]): void {
    const node: SimNode = {
      id,
      opts: { ...defaultNodeOptions, ...opts },
      persisted: { hardState: { term: 0, vote: 0, commit: 0 }, snapshot: null, entries: [] },
      applied: [],
      logs: [],
      crashed: false,
      raw: undefined as unknown as RawNode,
    };
    this.nodes.set(id, node);
    this.boot(node, peers);
  }

  private config(node: SimNode): RaftConfig {
    const o = node.opts;
    const rand = prng(this.seed * 7919 + node.id);
    return {
      id: node.id,
      electionTicks: o.electionTicks,
      heartbeatTicks: o.heartbeatTicks,
      random: rand,
      preVote: o.preVote,
      checkQuorum: o.checkQuorum || o.lease,
      readOnlyOption: o.lease ? ReadOnlyOption.LeaseBased : ReadOnlyOption.Safe,
      inflightMessagesMax: o.inflightMessagesMax,
      messageBytesMax: o.messageBytesMax,
      logger: {
        debug: () => {},
        info: () => {},
        warn: (msg) => node.logs.push(msg),
      },
    };
  }

  private boot(node: SimNode, peers: MemberId[] = []): void {
    const p = node.persisted;
    const fresh = p.snapshot === null && p.entries.length === 0 && p.hardState.term === 0;
    const restore = fresh ? null : { hardState: { ...p.hardState }, snapshot: p.snapshot, entries: p.entries.slice() };
    node.raw = new RawNode(this.config(node), restore, fresh ? peers : []);
    node.applied = node.applied.filter((a) => a.index <= (p.snapshot?.metadata.index ?? 0));
    node.crashed = false;
  }

  node(id: MemberId): SimNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  /** Replaces a member's log (and term) as if it had persisted exactly these entry terms after the bootstrap entry. */
  setLog(id: MemberId, terms: number[], term?: number): void {
    const node = this.node(id);
    node.persisted.snapshot = node.raw.raft.log.snapshot;
    const base = node.persisted.snapshot?.metadata.index ?? 0;
    node.persisted.entries = terms.map((t, i) => ({ term: t, index: base + 1 + i, type: EntryType.Normal, data: new Uint8Array(0) }));
    const maxTerm = Math.max(1, ...terms);
    node.persisted.hardState = { term: term ?? maxTerm, vote: 0, commit: base };
    this.boot(node);
  }

  partition(groups: MemberId[][]): void {
    this.cut.clear();
    for (const a of groups) for (const b of groups) {
      if (a === b) continue;
      for (const x of a) for (const y of b) this.cut.add(`${x}-${y}`);
    }
  }

  isolate(id: MemberId): void {
    for (const other of this.nodes.keys()) {
      if (other === id) continue;
      this.cut.add(`${id}-${other}`);
      this.cut.add(`${other}-${id}`);
    }
  }

  heal(): void {
    this.cut.clear();
  }

  crash(id: MemberId): void {
    const node = this.node(id);
    node.crashed = true;
    this.inflight = this.inflight.filter((m) => m.to !== id && m.from !== id);
    this.out.push(`${id} crashed`);
  }

  restart(id: MemberId): void {
    const node = this.node(id);
    this.boot(node);
    const s = node.raw.status();
    this.out.push(`${id} restarted: term=${s.term} vote=${s.vote} commit=${s.commit} last=${s.lastIndex}`);
  }

  /** Processes one Ready of `id`: persist, queue messages, apply. Returns whether there was one. */
  processReady(id: MemberId): boolean {
    const node = this.node(id);
    if (node.crashed || !node.raw.hasReady()) return false;
    const rd = node.raw.ready();
    this.persist(node, rd);
    this.describeReady(node, rd);
    for (const m of rd.messages) this.inflight.push(m);
    this.apply(node, rd);
    node.raw.advance(rd);
    return true;
  }

  private persist(node: SimNode, rd: Ready): void {
    const p = node.persisted;
    if (rd.snapshot) {
      p.snapshot = rd.snapshot;
      p.entries = p.entries.filter((e) => e.index > rd.snapshot!.metadata.index);
    }
    if (rd.entries.length > 0) {
      const first = rd.entries[0].index;
      p.entries = p.entries.filter((e) => e.index < first).concat(rd.entries);
    }
    if (rd.hardState) p.hardState = { ...rd.hardState };
  }

  private describeReady(node: SimNode, rd: Ready): void {
    const parts: string[] = [];
    if (rd.softState) parts.push(`${rd.softState.role}${rd.softState.lead ? ` lead=${rd.softState.lead}` : ''}`);
    if (rd.hardState) parts.push(`term=${rd.hardState.term} vote=${rd.hardState.vote} commit=${rd.hardState.commit}`);
    if (rd.snapshot) parts.push(`snapshot=${rd.snapshot.metadata.term}/${rd.snapshot.metadata.index}`);
    if (rd.entries.length) parts.push(`persist [${rd.entries.map(formatEntry).join(', ')}]`);
    if (parts.length) this.out.push(`${node.id}: ${parts.join(' ')}`);
    if (rd.committedEntries.length) this.out.push(`${node.id}: apply [${rd.committedEntries.map(formatEntry).join(', ')}]`);
    for (const rs of rd.readStates) this.out.push(`${node.id}: read ctx=${dec.decode(rs.requestCtx)} index=${rs.index}`);
  }

  private apply(node: SimNode, rd: Ready): void {
    if (rd.snapshot) node.applied = node.applied.filter((a) => a.index <= rd.snapshot!.metadata.index);
    for (const e of rd.committedEntries) {
      if (e.type === EntryType.ConfChange) {
        const cs = node.raw.applyConfChange(decodeConfChange(e.data));
        this.out.push(
          `${node.id}: config voters=${cs.voters}${cs.votersOutgoing.length ? ` outgoing=${cs.votersOutgoing}` : ''}${cs.learners.length ? ` learners=${cs.learners}` : ''}`,
        );
      } else if (e.data.length > 0) {
        node.applied.push({ index: e.index, term: e.term, data: dec.decode(e.data) });
      }
    }
  }

  /** Delivers in-flight messages to `ids` (all when empty). Returns how many were handled. */
  deliver(ids: MemberId[] = [], filter?: (m: Message) => boolean): number {
    const now: Message[] = [];
    const later: Message[] = [];
    for (const m of this.inflight) {
      if ((ids.length === 0 || ids.includes(m.to)) && (!filter || filter(m))) now.push(m);
      else later.push(m);
    }
    this.inflight = later;
    for (const m of now) {
      const target = this.nodes.get(m.to);
      if (!target || target.crashed || this.cut.has(`${m.from}-${m.to}`)) {
        this.out.push(`  ${formatMessage(m)} DROPPED`);
        continue;
      }
      this.out.push(`  ${formatMessage(m)}`);
      target.raw.step(m);
    }
    return now.length;
  }

  /** Runs readies and deliveries until nothing moves. */
  stabilize(): void {
    for (let round = 0; round < 1000; round++) {
      let moved = false;
      for (const id of [...this.nodes.keys()].sort((a, b) => a - b)) {
        while (this.processReady(id)) moved = true;
      }
      if (this.deliver() > 0) moved = true;
      if (!moved) return;
    }
    throw new Error('cluster did not stabilize in 1000 rounds');
  }

  tick(id: MemberId, n: number): void {
    const node = this.node(id);
    if (node.crashed) return;
    for (let i = 0; i < n; i++) node.raw.tick();
  }

  propose(id: MemberId, data: string): void {
    try {
      this.node(id).raw.propose(enc.encode(data));
    } catch (err) {
      this.out.push(`${id}: ${(err as Error).message}`);
    }
  }

  proposeConfChange(id: MemberId, cc: ConfChange): void {
    try {
      this.node(id).raw.proposeConfChange(cc);
    } catch (err) {
      this.out.push(`${id}: ${(err as Error).message}`);
    }
  }

  status(id: MemberId): string {
    const node = this.node(id);
    if (node.crashed) return `${id}: crashed`;
    const s = node.raw.status();
    return `${id}: ${s.role} term=${s.term} lead=${s.lead} commit=${s.commit} applied=${s.applied} last=${s.lastIndex}`;
  }

  logOf(id: MemberId): string {
    const node = this.node(id);
    const raft = node.raw.raft;
    const ents: string[] = [];
    for (let i = raft.log.firstIndex(); i <= raft.log.lastIndex(); i++) ents.push(formatEntry(raft.log.entryAt(i)!));
    return `${id}: ${ents.join(', ') || '(empty)'}`;
  }

  takeOutput(): string {
    const s = this.out.join('\n');
    this.out = [];
    return s;
  }
}

export function parseConfChange(args: string[]): ConfChange {
  let transition = ConfChangeTransition.Auto;
  const changes = [];
  for (const a of args) {
    if (a === 'implicit') transition = ConfChangeTransition.JointImplicit;
    else if (a === 'explicit') transition = ConfChangeTransition.JointExplicit;
    else if (a === 'leave') continue;
    else {
      const type = { v: ConfChangeType.AddNode, l: ConfChangeType.AddLearnerNode, r: ConfChangeType.RemoveNode }[a[0]];
      if (type === undefined) throw new Error(`bad conf change ${a}`);
      changes.push({ type, memberId: Number(a.slice(1)) });
    }
  }
  return { transition, changes, context: null };
}
