// What the demo's user interface consumes: a cluster seen from this tab. Two implementations:
// the in-page cluster (this tab runs every member, in memory) and, next, the tab member (this
// tab is one member of a cluster spanning tabs and Node processes). Everything here is a
// snapshot of real member state or a real action on real members; the UI invents nothing.

import type { Outbox } from '../../adapters/browser/outbox.ts';
import type { Client } from '../../src/client/index.ts';
import type { MemberId } from '../../src/raft/types.ts';

export type MemberKind = 'tab' | 'node';
/** Where the member's Raft log and snapshots live. */
export type Persistence = 'indexeddb' | 'disk' | 'memory';
export type Role = 'leader' | 'follower' | 'candidate' | 'pre-candidate' | 'learner';
/**
 * paused: timers and network frozen, state kept; crashed: stopped, its synced storage kept;
 * silent: nothing heard from it lately (a tab closed without leaving, a member nobody reaches).
 */
export type Liveness = 'running' | 'paused' | 'crashed' | 'silent';

export interface MemberView {
  id: MemberId;
  name: string;
  kind: MemberKind;
  persistence: Persistence;
  liveness: Liveness;
  /** The role this member last reported (a crashed member keeps its last values). */
  role: Role;
  term: number;
  /** The leader this member believes in; 0 when it knows none. */
  leader: MemberId;
  commit: number;
  applied: number;
  lastIndex: number;
  /** The MVCC store's revision and compaction point as applied on this member. */
  revision: number;
  compactRevision: number;
  /** Peers this member's transport has a working link to. */
  reachable: MemberId[];
  /**
   * True when the member does not report its own status (a Node member seen from tabs): role,
   * term and leader are what the reporting members say about it, and its indexes are unknown (0).
   */
  inferred: boolean;
  /**
   * An inferred member whose indexes and revision are its own after all: the Node member that
   * served the page answers etcd's Status over HTTP. It still takes no commands from tabs.
   */
  indexesKnown?: boolean;
}

export interface ClusterView {
  members: MemberView[];
  /** Links cut by the fault controls, each pair once with the smaller id first. */
  cutLinks: [MemberId, MemberId][];
  /** The member this tab is (null when the tab runs the whole cluster). */
  self: MemberId | null;
  /** The member the client's requests go to now. */
  clientMember: MemberId | null;
  /**
   * The cluster's tab vote policy, where Node members vote alongside tabs (tab mode): by default
   * tabs stay learners; `tabsMayOutvote` lets them vote. Absent where it does not apply.
   */
  tabVotes?: { tabsMayOutvote: boolean };
  /** Why this tab's member has no quorum (missing voters, for how long, the remedy), or null. */
  quorumLoss?: string | null;
  /** This tab's member: cut off by the "go offline" switch, and whether it hears a leader (tab mode). */
  offline?: { cutOff: boolean; connectivity: 'online' | 'offline' };
}

export type MessageKind =
  | 'prevote'
  | 'vote'
  | 'append'
  | 'heartbeat'
  | 'snapshot'
  | 'read-index'
  | 'forward'
  | 'timeout-now';

/** One Raft message on the wire, reported when it is sent. */
export interface WireMessage {
  from: MemberId;
  to: MemberId;
  kind: MessageKind;
  /** An answer (e.g. a vote granted or refused, an append acknowledged). */
  response: boolean;
  /** A refused vote or append. */
  reject: boolean;
  term: number;
  /** Log entries carried (appends and forwarded proposals). */
  entries: number;
  /** How long the message takes to arrive, in ms (0 when unknown). */
  flightMs: number;
  /** Sent into a cut link or to a stopped member: it will never arrive. */
  dropped: boolean;
}

export type FaultAction = 'isolate' | 'heal' | 'pause' | 'resume' | 'crash' | 'restart' | 'remove';

export interface DemoCluster {
  /** 'in-page': this tab runs every member; 'tab': this tab is one member among others. */
  readonly mode: 'in-page' | 'tab';
  /** One honest sentence about what this cluster is, shown in the page header. */
  readonly description: string;
  /** A client of the cluster (the full src/client API: kv, txn, watch, lease, …); see setClientMember. */
  readonly client: Client;
  /** How long a message is in flight, for drawing (0 when the transport does not say). */
  readonly flightMs: number;

  view(): ClusterView;
  /** Called whenever view() would return something different. */
  onChange(fn: () => void): () => void;
  onMessage(fn: (m: WireMessage) => void): () => void;

  /** Whether this tab may apply `action` to member `id` (a tab member controls only itself). */
  can(action: FaultAction, id: MemberId): boolean;
  act(action: FaultAction, id: MemberId): Promise<void>;
  canCut(a: MemberId, b: MemberId): boolean;
  /** Cut (drop every frame both ways) or heal the link between two members. */
  setLink(a: MemberId, b: MemberId, cut: boolean): void;
  /** Adds a fresh member (a learner, promoted once caught up); absent where tabs join by opening. */
  addMember?(): Promise<void>;
  /** Sends the client's requests to member `id` first; absent where the client is the tab's own member. */
  setClientMember?(id: MemberId): void;
  /** Switches the tab vote policy live (a replicated setting; the leader then promotes or demotes tabs). */
  setTabsMayOutvote?(tabsMayOutvote: boolean): Promise<void>;
  /** Cuts this tab's member off from every peer and from signaling, or reconnects it (tab mode; docs/offline.md). */
  setOffline?(offline: boolean): void;
  /** This origin's durable outbox for the cluster (tab mode; docs/offline.md). */
  openOutbox?(): Promise<Outbox>;
}

/** The leader of the highest term any running member knows, or 0. */
export function clusterLeader(view: ClusterView): MemberId {
  let best: MemberView | undefined;
  for (const m of view.members) {
    if (m.liveness !== 'running' || m.role !== 'leader') continue;
    if (best === undefined || m.term > best.term) best = m;
  }
  return best?.id ?? 0;
}
