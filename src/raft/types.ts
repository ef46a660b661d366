// The Raft core's vocabulary: messages, entries, persistent state and the Ready batch.
// Everything here is plain data so that any codec (msgpackr on the wire, structured clone
// into IndexedDB) can carry it unchanged.

/** A member id. Ids are positive safe integers; 0 means "none". */
export type MemberId = number;
export const NONE: MemberId = 0;

export enum EntryType {
  Normal = 0,
  /** data holds an encoded ConfChange (see confchange.ts). */
  ConfChange = 1,
}

export interface Entry {
  term: number;
  index: number;
  type: EntryType;
  /** Opaque to Raft. An empty payload of type Normal is a leader's no-op. */
  data: Uint8Array;
}

/** What a member must persist before it answers anything: Raft paper figure 2. */
export interface HardState {
  term: number;
  vote: MemberId;
  commit: number;
}

/**
 * A membership. With `votersOutgoing` non-empty the cluster is in a joint configuration:
 * decisions need a majority of `voters` AND a majority of `votersOutgoing`.
 */
export interface ConfState {
  voters: MemberId[];
  learners: MemberId[];
  votersOutgoing: MemberId[];
  /** Learners that become voters when the joint configuration is left. */
  learnersNext: MemberId[];
  /** Leave the joint configuration automatically once entering it has committed. */
  autoLeave: boolean;
}

export interface SnapshotMetadata {
  index: number;
  term: number;
  confState: ConfState;
}

export interface Snapshot {
  metadata: SnapshotMetadata;
  /** The state machine's image at metadata.index; opaque to Raft. */
  data: Uint8Array;
}

export enum MessageType {
  // Local messages: never sent over the network; a transport must refuse them.
  Hup = 0,
  Beat = 1,
  Prop = 2,
  CheckQuorum = 3,
  SnapStatus = 4,
  Unreachable = 5,
  // Network messages.
  App = 10,
  AppResp = 11,
  Vote = 12,
  VoteResp = 13,
  PreVote = 14,
  PreVoteResp = 15,
  Snap = 16,
  Heartbeat = 17,
  HeartbeatResp = 18,
  TimeoutNow = 19,
  TransferLeader = 20,
  ReadIndex = 21,
  ReadIndexResp = 22,
  /** A follower forwards client proposals to the leader with this type. */
  ForwardProp = 23,
  /**
   * A piece of a snapshot streamed from the backend, and its acknowledgement. The member
   * handles both (src/server/snapshot-stream.ts); Raft never sees them.
   */
  SnapChunk = 24,
  SnapChunkResp = 25,
}

export function isLocalMessage(type: MessageType): boolean {
  return type < MessageType.App;
}

export function isResponseMessage(type: MessageType): boolean {
  return (
    type === MessageType.AppResp ||
    type === MessageType.VoteResp ||
    type === MessageType.PreVoteResp ||
    type === MessageType.HeartbeatResp ||
    type === MessageType.ReadIndexResp
  );
}

export interface Message {
  type: MessageType;
  to: MemberId;
  from: MemberId;
  term: number;
  /** App: term of the entry at `index`. Vote/PreVote: term of the candidate's last entry. */
  logTerm: number;
  /** App: index preceding `entries`. AppResp: highest matching index. Vote: candidate's last index. */
  index: number;
  entries: Entry[];
  commit: number;
  reject: boolean;
  /** AppResp reject: the follower's hint for where the leader should probe next. */
  rejectHint: number;
  snapshot: Snapshot | null;
  /** ReadIndex request id; Vote/PreVote "transfer" marker (see CAMPAIGN_TRANSFER). */
  context: Uint8Array | null;
}

/** What the application learns when a linearizable read may proceed. */
export interface ReadState {
  index: number;
  requestCtx: Uint8Array;
}

export enum StateRole {
  Follower = 'follower',
  Candidate = 'candidate',
  PreCandidate = 'pre-candidate',
  Leader = 'leader',
}

export interface SoftState {
  lead: MemberId;
  role: StateRole;
}

/**
 * One batch of work the caller must do, in this order:
 * 1. persist `snapshot`, `entries` and `hardState` (one sync when `mustSync`);
 * 2. then send `messages` — never before the persist completes, or a vote or an
 *    acknowledgement could outlive a crash;
 * 3. apply `snapshot` then `committedEntries` to the state machine;
 * 4. call `advance()`.
 */
export interface Ready {
  softState: SoftState | null;
  hardState: HardState | null;
  readStates: ReadState[];
  entries: Entry[];
  snapshot: Snapshot | null;
  committedEntries: Entry[];
  messages: Message[];
  mustSync: boolean;
  /**
   * The messages may be sent while this Ready is being persisted instead of after (Raft
   * thesis §10.2.1): they come from a leader, carry no snapshot, and reveal no commit index
   * beyond what is already durable here. The leader's disk write and its followers' then
   * overlap, which takes one fsync off every write's latency.
   */
  sendBeforePersist: boolean;
}

export function emptyConfState(): ConfState {
  return { voters: [], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
}

export function emptyHardState(): HardState {
  return { term: 0, vote: NONE, commit: 0 };
}

export function isEmptyHardState(hs: HardState): boolean {
  return hs.term === 0 && hs.vote === NONE && hs.commit === 0;
}

export function emptySnapshot(): Snapshot {
  return { metadata: { index: 0, term: 0, confState: emptyConfState() }, data: new Uint8Array(0) };
}

export function newMessage(type: MessageType, to: MemberId, from: MemberId, term: number): Message {
  return {
    type,
    to,
    from,
    term,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    reject: false,
    rejectHint: 0,
    snapshot: null,
    context: null,
  };
}

/** The approximate byte size of an entry, used for flow control and message size limits. */
export function entrySize(e: Entry): number {
  return e.data.byteLength + 24;
}
