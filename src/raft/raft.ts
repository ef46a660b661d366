// The Raft state machine: elections, replication, commitment, reads and membership.
// It has no clock and no I/O: time is tick(), input is step(), output is collected in
// `msgs` and the log and handed to the caller by RawNode.

import { assert } from './assert.ts';
import { resolveConfig, ReadOnlyOption, type RaftConfig, type ResolvedRaftConfig } from './config.ts';
import {
  applyChange,
  ConfChangeError,
  ConfChangeTransition,
  decodeConfChange,
  encodeConfChange,
  enterJoint,
  isLeaveJoint,
  type ConfChange,
} from './confchange.ts';
import { RaftLog } from './log.ts';
import { Progress, ProgressState, ProgressTracker } from './progress.ts';
import { jointCommitted, jointVoteResult, VoteResult } from './quorum.ts';
import { ReadOnly } from './read-only.ts';
import {
  EntryType,
  entrySize,
  isLocalMessage,
  isResponseMessage,
  MessageType,
  newMessage,
  NONE,
  StateRole,
  type ConfState,
  type Entry,
  type HardState,
  type MemberId,
  type Message,
  type ReadState,
  type Snapshot,
} from './types.ts';

/** Context of a Vote sent because the leader handed over leadership: voters skip the lease check. */
export const CAMPAIGN_TRANSFER = new Uint8Array([0x74, 0x72]); // "tr"

/** Pending ReadIndex requests the leader holds at most; more are dropped (the client retries). */
export const readRequestsMax = 4096;

export type ProposalDropReason =
  | 'no leader'
  | 'not a member'
  | 'leader transfer in progress'
  | 'uncommitted entries too large'
  | 'proposal forwarding disabled'
  | 'empty proposal'
  | `conf change refused: ${string}`;

export class RaftError extends Error {
  constructor(
    readonly code: 'proposal-dropped' | 'invalid-conf-change',
    message: string,
  ) {
    super(message);
  }
}

function isTransferContext(ctx: Uint8Array | null): boolean {
  return ctx !== null && ctx.length === 2 && ctx[0] === CAMPAIGN_TRANSFER[0] && ctx[1] === CAMPAIGN_TRANSFER[1];
}

function isWellFormedConfState(cs: ConfState): boolean {
  const isIdList = (xs: unknown) => Array.isArray(xs) && xs.every((id) => Number.isSafeInteger(id) && id > 0);
  return (
    isIdList(cs.voters) &&
    cs.voters.length > 0 &&
    isIdList(cs.learners) &&
    isIdList(cs.votersOutgoing) &&
    isIdList(cs.learnersNext) &&
    typeof cs.autoLeave === 'boolean'
  );
}

export interface RaftRestore {
  hardState: HardState;
  snapshot: Snapshot | null;
  entries: Entry[];
}

export class Raft {
  readonly id: MemberId;
  readonly cfg: ResolvedRaftConfig;
  term = 0;
  vote: MemberId = NONE;
  lead: MemberId = NONE;
  role = StateRole.Follower;
  readonly log: RaftLog;
  readonly trk: ProgressTracker;
  private readonly readOnly = new ReadOnly(readRequestsMax);
  /** Reads released to the local application. */
  readStates: ReadState[] = [];
  /** Messages to send after the current Ready is persisted. */
  msgs: Message[] = [];
  /**
   * Leader: appends to send at the next flush(). Proposals and commit advances between two
   * Readies then go out as one append per follower instead of one each.
   */
  private broadcastPending = false;
  /** Follower: proposals to forward to the leader at the next flush(), as one message. */
  private forwardBuffer: Entry[] = [];
  /** Last proposal refusal, for the caller's error message. */
  lastDropReason: ProposalDropReason | null = null;

  /** Ticks since the last election timeout reset (follower/candidate) or check-quorum round (leader). */
  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  /** In [electionTicks, 2 * electionTicks), re-drawn at every role change. */
  private randomizedElectionTimeout = 0;
  /** Monotonic count of ticks since this member started: the leader lease is measured in it. */
  private ticks = 0;
  /** Member the leader is handing leadership to, or NONE. */
  leadTransferee: MemberId = NONE;
  /** Log index of the latest conf change the leader proposed; another waits until it is applied. */
  private pendingConfIndex = 0;
  /** Bytes of entries the leader appended that have not committed yet. */
  private uncommittedBytes = 0;
  /** ReadIndex requests that arrived before this leader committed an entry in its term. */
  private pendingReadIndexMessages: Message[] = [];
  /**
   * Leader lease: for each voter, the leader tick at which it sent the newest heartbeat that
   * voter acknowledged in this term.
   */
  private heartbeatAckTick = new Map<MemberId, number>();
  /** Set once this leader has sent TimeoutNow in its term: voters may then ignore its lease. */
  private leaseForfeited = false;
  /**
   * A member that just started does not know whether a leader it followed before a crash
   * still holds a lease, so with lease-based reads it refuses votes for one election timeout.
   */
  private bootGrace = true;

  constructor(config: RaftConfig, restore: RaftRestore | null, peers: readonly MemberId[]) {
    this.cfg = resolveConfig(config);
    this.id = this.cfg.id;
    this.trk = new ProgressTracker(this.cfg.inflightMessagesMax, this.cfg.inflightBytesMax);
    const hasState = restore !== null && (restore.snapshot !== null || restore.entries.length > 0 || restore.hardState.term > 0);
    if (hasState) {
      this.log = new RaftLog(restore.snapshot, restore.entries, restore.hardState.commit);
      this.term = restore.hardState.term;
      this.vote = restore.hardState.vote;
      if (restore.snapshot) this.applyConfState(restore.snapshot.metadata.confState);
    } else {
      this.log = new RaftLog(null, [], 0);
      if (peers.length > 0) {
        // Bootstrapping is a snapshot at index 1, term 1, holding only the first membership
        // (and an empty state machine image). The first Ready persists it like any snapshot,
        // so a restart finds the configuration where every member finds it.
        const boot: Snapshot = {
          metadata: { index: 1, term: 1, confState: { voters: [...peers], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false } },
          data: new Uint8Array(0),
        };
        this.log.restore(boot);
        this.term = 1;
        this.applyConfState(boot.metadata.confState);
      }
    }
    this.becomeFollower(this.term, NONE);
    this.bootGrace = true;
  }

  private get logger() {
    return this.cfg.logger;
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  /** Whether this member may campaign: it must be a voter. */
  promotable(): boolean {
    return this.trk.isVoter(this.id) && this.log.pendingSnapshot === null;
  }

  // ---- role transitions -------------------------------------------------------------

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = NONE;
    }
    this.lead = NONE;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedElectionTimeout = this.cfg.electionTicks + Math.floor(this.cfg.random() * this.cfg.electionTicks);
    this.leadTransferee = NONE;
    this.trk.resetVotes();
    const last = this.log.lastIndex();
    for (const [id, p] of this.trk.progress) {
      p.match = id === this.id ? last : 0;
      p.next = last + 1;
      p.becomeProbe();
      p.next = last + 1;
      p.recentActive = id === this.id;
    }
    this.pendingConfIndex = 0;
    this.uncommittedBytes = 0;
    this.readOnly.reset();
    this.pendingReadIndexMessages = [];
    this.heartbeatAckTick.clear();
    this.leaseForfeited = false;
    this.broadcastPending = false;
    this.forwardBuffer = [];
  }

  becomeFollower(term: number, lead: MemberId): void {
    this.reset(term);
    this.lead = lead;
    this.role = StateRole.Follower;
  }

  private becomeCandidate(): void {
    assert(this.role !== StateRole.Leader, `member ${this.id}: leader cannot become candidate directly`);
    this.reset(this.term + 1);
    this.vote = this.id;
    this.role = StateRole.Candidate;
    this.bootGrace = false;
    this.logger.info(`${this.id} became candidate at term ${this.term}`);
  }

  private becomePreCandidate(): void {
    assert(this.role !== StateRole.Leader, `member ${this.id}: leader cannot become pre-candidate directly`);
    // Pre-vote does not touch term or vote: a candidate that cannot win disturbs no one.
    this.trk.resetVotes();
    this.lead = NONE;
    this.role = StateRole.PreCandidate;
    this.logger.info(`${this.id} became pre-candidate at term ${this.term}`);
  }

  private becomeLeader(): void {
    assert(this.role !== StateRole.Follower, `member ${this.id}: follower cannot become leader directly`);
    this.reset(this.term);
    this.lead = this.id;
    this.role = StateRole.Leader;
    this.bootGrace = false;
    this.trk.progress.get(this.id)?.becomeReplicate();
    // Conf changes in the uncommitted tail may be pending; hold new ones until they apply.
    this.pendingConfIndex = this.log.lastIndex();
    // The no-op commits everything before it (Raft §8) and lets ReadIndex serve.
    const ok = this.appendEntries([{ term: 0, index: 0, type: EntryType.Normal, data: new Uint8Array(0) }]);
    assert(ok, 'leader no-op must always be accepted');
    this.logger.info(`${this.id} became leader at term ${this.term}`);
  }

  // ---- time -------------------------------------------------------------------------

  tick(): void {
    this.ticks++;
    if (this.role === StateRole.Leader) this.tickHeartbeat();
    else this.tickElection();
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.electionElapsed >= this.cfg.electionTicks) this.bootGrace = false;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.step(newMessage(MessageType.Hup, this.id, this.id, 0));
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.cfg.electionTicks) {
      this.electionElapsed = 0;
      if (this.cfg.checkQuorum) this.step(newMessage(MessageType.CheckQuorum, this.id, this.id, 0));
      // A transfer that has not finished within an election timeout is abandoned.
      if (this.role === StateRole.Leader && this.leadTransferee !== NONE) this.leadTransferee = NONE;
    }
    if (this.role !== StateRole.Leader) return;
    if (this.heartbeatElapsed >= this.cfg.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.step(newMessage(MessageType.Beat, this.id, this.id, 0));
    }
  }

  // ---- sending ----------------------------------------------------------------------

  private send(m: Message): void {
    if (m.type !== MessageType.ForwardProp && m.type !== MessageType.ReadIndex && m.type !== MessageType.TransferLeader) {
      // Votes carry the term they ask for; everything else carries ours.
      if (m.type !== MessageType.PreVote && m.type !== MessageType.PreVoteResp && m.type !== MessageType.VoteResp) {
        m.term = this.term;
      }
    }
    this.msgs.push(m);
  }

  /** Sends entries (or a snapshot) to `to` if flow control allows. Returns whether it sent. */
  private maybeSendAppend(to: MemberId, sendIfEmpty: boolean): boolean {
    const pr = this.trk.progress.get(to);
    if (!pr || pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    const ents = prevTerm === undefined ? undefined : this.log.slice(pr.next, this.log.lastIndex() + 1, this.cfg.messageBytesMax);
    if (ents !== undefined && ents.length === 0 && !sendIfEmpty) return false;
    if (prevTerm === undefined || ents === undefined) return this.maybeSendSnapshot(to, pr);
    const m = newMessage(MessageType.App, to, this.id, this.term);
    m.index = prevIndex;
    m.logTerm = prevTerm;
    m.entries = ents;
    m.commit = this.log.committed;
    if (ents.length > 0) {
      let bytes = 0;
      for (const e of ents) bytes += entrySize(e);
      pr.sentEntries(ents[ents.length - 1].index, bytes);
    } else {
      pr.sentEntries(prevIndex, 0);
    }
    this.send(m);
    return true;
  }

  private maybeSendSnapshot(to: MemberId, pr: Progress): boolean {
    if (!pr.recentActive) {
      this.logger.debug(`${this.id} holds snapshot for ${to}: not recently active`);
      return false;
    }
    const snap = this.log.snapshot;
    assert(snap !== null, `member ${this.id} needs a snapshot for ${to} (next ${pr.next}) but has none`);
    const m = newMessage(MessageType.Snap, to, this.id, this.term);
    m.snapshot = snap;
    pr.becomeSnapshot(snap.metadata.index);
    this.logger.info(`${this.id} sends snapshot at ${snap.metadata.index} to ${to}`);
    this.send(m);
    return true;
  }

  /** Sends each follower what it lacks, up to its inflight limits. */
  private bcastAppend(): void {
    for (const id of this.trk.memberIds()) {
      if (id === this.id || !this.maybeSendAppend(id, true)) continue;
      while (this.maybeSendAppend(id, false)) {
        /* up to the inflight limits */
      }
    }
  }

  private bcastHeartbeat(ctx: Uint8Array | null): void {
    for (const id of this.trk.memberIds()) {
      if (id === this.id) continue;
      const pr = this.trk.progress.get(id)!;
      const m = newMessage(MessageType.Heartbeat, id, this.id, this.term);
      // Never tell a follower to commit past what it is known to hold.
      m.commit = Math.min(pr.match, this.log.committed);
      m.context = ctx;
      // The follower echoes the send tick; it dates the lease this heartbeat confirms.
      m.index = this.ticks;
      this.send(m);
    }
  }

  private sendTimeoutNow(to: MemberId): void {
    this.leaseForfeited = true;
    this.send(newMessage(MessageType.TimeoutNow, to, this.id, this.term));
  }

  // ---- the leader's log -------------------------------------------------------------

  private appendEntries(ents: Entry[]): boolean {
    let bytes = 0;
    for (const e of ents) bytes += e.data.byteLength;
    const max = this.cfg.uncommittedBytesMax;
    if (max > 0 && this.uncommittedBytes > 0 && bytes > 0 && this.uncommittedBytes + bytes > max) {
      this.lastDropReason = 'uncommitted entries too large';
      return false;
    }
    this.uncommittedBytes += bytes;
    let index = this.log.lastIndex();
    for (const e of ents) {
      e.term = this.term;
      e.index = ++index;
    }
    const last = this.log.append(ents);
    this.trk.progress.get(this.id)?.maybeUpdate(last);
    this.maybeCommit();
    return true;
  }

  /** Advances commit to what a quorum holds, if that entry is from this term. */
  private maybeCommit(): boolean {
    const index = this.trk.committed();
    if (!Number.isFinite(index)) return false;
    const before = this.log.committed;
    if (!this.log.maybeCommit(index, this.term)) return false;
    this.reduceUncommitted(before, this.log.committed);
    return true;
  }

  private reduceUncommitted(from: number, to: number): void {
    if (this.uncommittedBytes === 0) return;
    let bytes = 0;
    for (let i = from + 1; i <= to; i++) bytes += this.log.entryAt(i)?.data.byteLength ?? 0;
    this.uncommittedBytes = Math.max(0, this.uncommittedBytes - bytes);
  }

  private committedEntryInCurrentTerm(): boolean {
    return this.log.term(this.log.committed) === this.term;
  }

  // ---- elections ----------------------------------------------------------------------

  private hup(transfer: boolean): void {
    if (this.role === StateRole.Leader) return;
    if (!this.promotable()) {
      this.logger.warn(`${this.id} is not promotable and cannot campaign`);
      return;
    }
    if (this.hasUnappliedConfChanges()) {
      this.logger.warn(`${this.id} cannot campaign at term ${this.term}: conf changes committed but not applied`);
      return;
    }
    if (this.cfg.preVote && !transfer) this.campaign(MessageType.PreVote, false);
    else this.campaign(MessageType.Vote, transfer);
  }

  private hasUnappliedConfChanges(): boolean {
    for (let i = this.log.applied + 1; i <= this.log.committed; i++) {
      const e = this.log.entryAt(i);
      if (e && e.type === EntryType.ConfChange) return true;
    }
    return false;
  }

  private campaign(type: MessageType.PreVote | MessageType.Vote, transfer: boolean): void {
    let term: number;
    if (type === MessageType.PreVote) {
      this.becomePreCandidate();
      term = this.term + 1;
    } else {
      this.becomeCandidate();
      term = this.term;
    }
    if (this.poll(this.id, type === MessageType.PreVote ? MessageType.PreVoteResp : MessageType.VoteResp, true) === VoteResult.Won) {
      // A single-voter cluster wins at once.
      if (type === MessageType.PreVote) this.campaign(MessageType.Vote, false);
      else this.becomeLeader();
      return;
    }
    for (const id of this.trk.voterIds()) {
      if (id === this.id) continue;
      const m = newMessage(type, id, this.id, term);
      m.index = this.log.lastIndex();
      m.logTerm = this.log.lastTerm();
      if (transfer) m.context = CAMPAIGN_TRANSFER;
      this.msgs.push(m);
    }
  }

  private poll(id: MemberId, _type: MessageType, granted: boolean): VoteResult {
    this.trk.recordVote(id, granted);
    return this.trk.tallyVotes().result;
  }

  /** With check-quorum, a member that heard from a leader within an election timeout ignores votes. */
  private inLease(): boolean {
    if (!this.cfg.checkQuorum || this.electionElapsed >= this.cfg.electionTicks) return false;
    return this.lead !== NONE || (this.bootGrace && this.cfg.readOnlyOption === ReadOnlyOption.LeaseBased);
  }

  // ---- validation -------------------------------------------------------------------

  /** Why a message cannot be processed, or null. Bad input is dropped, never trusted. */
  private invalidReason(m: Message): string | null {
    if (!m || typeof m !== 'object') return 'not a message';
    if (!(m.type in MessageType) || typeof m.type !== 'number') return `unknown type ${String(m.type)}`;
    if (isLocalMessage(m.type) && m.term !== 0) return `local message ${MessageType[m.type]} with term ${m.term}`;
    // One call per field, not a loop over a literal table: this runs for every message stepped.
    const badField =
      notCount('term', m.term) ?? notCount('index', m.index) ?? notCount('logTerm', m.logTerm) ?? notCount('commit', m.commit) ?? notCount('rejectHint', m.rejectHint);
    if (badField !== null) return badField;
    if (!Number.isSafeInteger(m.from) || m.from < 0) return `bad from ${String(m.from)}`;
    if (!isLocalMessage(m.type) && m.from === NONE) return 'network message without sender';
    if (!isLocalMessage(m.type) && m.to !== this.id && m.type !== MessageType.TransferLeader) return `addressed to ${m.to}`;
    if (!Array.isArray(m.entries)) return 'entries is not a list';
    if (m.type === MessageType.App) {
      for (let i = 0; i < m.entries.length; i++) {
        const e = m.entries[i];
        if (!e || e.index !== m.index + 1 + i) return `entry ${i} has index ${e?.index}, expected ${m.index + 1 + i}`;
        // Terms never decrease along a log, starting from the entry at m.index.
        const prevTerm = i === 0 ? m.logTerm : m.entries[i - 1].term;
        if (!Number.isSafeInteger(e.term) || e.term < 1 || e.term > m.term || e.term < prevTerm) {
          return `entry ${e.index} has term ${e.term} (message term ${m.term})`;
        }
        if (!(e.data instanceof Uint8Array)) return `entry ${e.index} data is not bytes`;
        if (e.type !== EntryType.Normal && e.type !== EntryType.ConfChange) return `entry ${e.index} has unknown type ${e.type}`;
      }
      // No check of m.commit against the entries sent: a leader sends its own commit index with
      // an append that messageBytesMax (or the inflight limits) cut short, and maybeAppend
      // clamps it to the last new entry (etcd-raft: commitTo(min(committed, lastnewi))).
    }
    if (m.type === MessageType.Heartbeat && m.term >= this.term && m.commit > this.log.lastIndex()) {
      return `heartbeat commit ${m.commit} past last index ${this.log.lastIndex()}`;
    }
    if (m.type === MessageType.Snap) {
      const s = m.snapshot;
      if (!s || !s.metadata || !(s.data instanceof Uint8Array) || !Number.isSafeInteger(s.metadata.index) || !s.metadata.confState) {
        return 'snapshot message without a valid snapshot';
      }
      const { term, confState } = s.metadata;
      if (!Number.isSafeInteger(term) || term < 1 || term > m.term) return `snapshot term ${term} is not in [1, message term ${m.term}]`;
      // restore() installs the conf state wholesale: it must be well formed.
      if (!isWellFormedConfState(confState)) return 'snapshot with a malformed conf state';
    }
    if (m.type === MessageType.ForwardProp) {
      // The leader appends these entries as they are; one no follower accepts would stall replication.
      for (const e of m.entries) {
        if (!e || !(e.data instanceof Uint8Array)) return 'forwarded proposal entry data is not bytes';
        if (e.type !== EntryType.Normal && e.type !== EntryType.ConfChange) return `forwarded proposal entry has unknown type ${e.type}`;
      }
    }
    if ((m.type === MessageType.ReadIndex || m.type === MessageType.ReadIndexResp) && !(m.context instanceof Uint8Array)) {
      return 'read index without context';
    }
    if (isResponseMessage(m.type) && this.role === StateRole.Leader && m.term === this.term && !this.trk.progress.has(m.from)) {
      return `response from ${m.from}, which is not a member`;
    }
    if (m.type === MessageType.AppResp && m.term === this.term && this.role === StateRole.Leader && !m.reject && m.index > this.log.lastIndex()) {
      return `ack of index ${m.index} past last index ${this.log.lastIndex()}`;
    }
    return null;
  }

  // ---- step -------------------------------------------------------------------------

  step(m: Message): void {
    const invalid = this.invalidReason(m);
    if (invalid !== null) {
      this.logger.warn(`${this.id} dropped message from ${m?.from}: ${invalid}`);
      return;
    }
    if (m.term === 0) {
      // Local message.
    } else if (m.term > this.term) {
      if (m.type === MessageType.Vote || m.type === MessageType.PreVote) {
        const force = isTransferContext(m.context);
        if (!force && this.inLease()) {
          this.logger.info(
            `${this.id} [term ${this.term}] ignores ${MessageType[m.type]} from ${m.from} at term ${m.term}: lease not expired`,
          );
          return;
        }
      }
      if (m.type === MessageType.PreVote) {
        // Never change term on a pre-vote.
      } else if (m.type === MessageType.PreVoteResp && !m.reject) {
        // The term we asked for; it is ours once we win the real election.
      } else if (m.type === MessageType.App || m.type === MessageType.Heartbeat || m.type === MessageType.Snap) {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, NONE);
      }
    } else if (m.term < this.term) {
      if ((this.cfg.checkQuorum || this.cfg.preVote) && (m.type === MessageType.Heartbeat || m.type === MessageType.App)) {
        // A stale leader (say, back from a partition) learns our term and steps down.
        this.send(newMessage(MessageType.AppResp, m.from, this.id, this.term));
      } else if (m.type === MessageType.PreVote) {
        const r = newMessage(MessageType.PreVoteResp, m.from, this.id, this.term);
        r.reject = true;
        this.send(r);
      }
      return;
    }

    switch (m.type) {
      case MessageType.Hup:
        this.hup(false);
        return;
      case MessageType.Vote:
      case MessageType.PreVote: {
        const canVote =
          this.vote === m.from ||
          (this.vote === NONE && this.lead === NONE) ||
          (m.type === MessageType.PreVote && m.term > this.term);
        const respType = m.type === MessageType.Vote ? MessageType.VoteResp : MessageType.PreVoteResp;
        if (canVote && this.log.isUpToDate(m.index, m.logTerm)) {
          const r = newMessage(respType, m.from, this.id, m.term);
          this.send(r);
          if (m.type === MessageType.Vote) {
            this.electionElapsed = 0;
            this.vote = m.from;
          }
        } else {
          const r = newMessage(respType, m.from, this.id, this.term);
          r.reject = true;
          this.send(r);
        }
        return;
      }
    }
    switch (this.role) {
      case StateRole.Leader:
        this.stepLeader(m);
        return;
      case StateRole.Candidate:
      case StateRole.PreCandidate:
        this.stepCandidate(m);
        return;
      case StateRole.Follower:
        this.stepFollower(m);
        return;
    }
  }

  private stepLeader(m: Message): void {
    switch (m.type) {
      case MessageType.Beat:
        // A new heartbeat round: each lagging follower may get one more empty append on its next
        // answer. Without it, a follower whose one empty append was lost (it went down right
        // after answering a heartbeat, and the appends in flight were lost with it) never heard
        // from the leader again but heartbeats: seen in the demo's crash-and-restart test.
        for (const pr of this.trk.progress.values()) pr.emptyAppendSent = false;
        this.bcastHeartbeat(this.readOnly.lastPendingContext());
        return;
      case MessageType.CheckQuorum:
        if (!this.trk.quorumActive(this.id)) {
          this.logger.warn(`${this.id} stepped down at term ${this.term}: a quorum is not active`);
          this.becomeFollower(this.term, NONE);
        }
        for (const [id, p] of this.trk.progress) p.recentActive = id === this.id;
        return;
      case MessageType.Prop:
      case MessageType.ForwardProp:
        this.handleProposal(m);
        return;
      case MessageType.ReadIndex:
        this.handleReadIndex(m);
        return;
      case MessageType.TransferLeader:
        this.handleTransferLeader(m.from);
        return;
    }

    const pr = this.trk.progress.get(m.from);
    if (!pr) {
      this.logger.debug(`${this.id} has no progress for ${m.from}; dropped ${MessageType[m.type]}`);
      return;
    }
    switch (m.type) {
      case MessageType.AppResp:
        this.handleAppendResponse(m, pr);
        return;
      case MessageType.HeartbeatResp: {
        pr.recentActive = true;
        pr.probeSent = false;
        if (this.trk.isVoter(m.from)) {
          const prev = this.heartbeatAckTick.get(m.from) ?? -1;
          if (m.index > prev && m.index <= this.ticks) this.heartbeatAckTick.set(m.from, m.index);
        }
        // Appends may have been lost with the inflight limit reached: let one more go so that the
        // follower's rejection (or acceptance) restarts the flow.
        if (pr.state === ProgressState.Replicate && pr.inflights.full()) pr.inflights.freeFirstOne();
        // A follower behind the log gets an append, empty if everything is in flight: if those
        // appends were lost, its rejection of this one sends the leader back to probing.
        if (pr.match < this.log.lastIndex()) {
          const inFlightOnly = pr.state === ProgressState.Replicate && pr.next > this.log.lastIndex();
          if (!inFlightOnly) this.maybeSendAppend(m.from, true);
          else if (!pr.emptyAppendSent && this.maybeSendAppend(m.from, true)) pr.emptyAppendSent = true;
        }
        if (m.context === null) return;
        const acks = this.readOnly.recvAck(m.from, m.context);
        if (!acks) return;
        acks.set(this.id, true);
        if (jointVoteResult(this.trk.config, acks) !== VoteResult.Won) return;
        for (const rs of this.readOnly.advance(m.context)) this.releaseRead(rs.request, rs.index);
        return;
      }
      case MessageType.SnapStatus:
        if (pr.state !== ProgressState.Snapshot) return;
        if (m.reject) pr.pendingSnapshot = 0;
        pr.becomeProbe();
        // Wait for the follower's answer (or the next heartbeat) before probing again.
        pr.probeSent = true;
        return;
      case MessageType.Unreachable:
        if (pr.state === ProgressState.Replicate) pr.becomeProbe();
        return;
    }
  }

  private handleAppendResponse(m: Message, pr: Progress): void {
    pr.recentActive = true;
    pr.emptyAppendSent = false;
    if (m.reject) {
      let nextProbe = m.rejectHint;
      if (m.logTerm > 0) nextProbe = this.log.findConflictByTerm(m.rejectHint, m.logTerm).index;
      if (pr.maybeDecrTo(m.index, nextProbe)) {
        if (pr.state === ProgressState.Replicate) pr.becomeProbe();
        this.maybeSendAppend(m.from, true);
      }
      return;
    }
    const wasPaused = pr.isPaused();
    if (!pr.maybeUpdate(m.index)) return;
    if (pr.state === ProgressState.Probe) {
      pr.becomeReplicate();
    } else if (pr.state === ProgressState.Snapshot && pr.match >= pr.pendingSnapshot) {
      pr.becomeProbe();
      pr.becomeReplicate();
    } else if (pr.state === ProgressState.Replicate) {
      pr.inflights.freeLE(m.index);
    }
    if (this.maybeCommit()) {
      this.releasePendingReadIndexMessages();
      this.broadcastPending = true;
    } else if (wasPaused && !this.broadcastPending) {
      // The follower may lag on commit: tell it now rather than at the next heartbeat.
      this.maybeSendAppend(m.from, true);
    }
    // Stream what the inflight limits allow without waiting for the next tick.
    while (this.maybeSendAppend(m.from, false)) {
      /* keep sending */
    }
    if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) {
      this.logger.info(`${this.id} sends TimeoutNow to ${m.from}: its log is up to date`);
      this.sendTimeoutNow(m.from);
    }
  }

  private handleProposal(m: Message): void {
    if (m.entries.length === 0) {
      this.lastDropReason = 'empty proposal';
      return;
    }
    if (!this.trk.progress.has(this.id)) {
      this.lastDropReason = 'not a member';
      return;
    }
    if (this.leadTransferee !== NONE) {
      this.lastDropReason = 'leader transfer in progress';
      return;
    }
    const ents: Entry[] = [];
    for (const e of m.entries) {
      let entry: Entry = { term: 0, index: 0, type: e.type, data: e.data };
      if (e.type === EntryType.ConfChange) {
        const refusal = this.confChangeRefusal(e.data);
        if (refusal !== null && m.type === MessageType.Prop) {
          // A local proposer can be told at once.
          this.lastDropReason = `conf change refused: ${refusal}`;
          return;
        }
        if (refusal !== null) {
          this.logger.warn(`${this.id} ignores conf change: ${refusal}`);
          // Keep the proposal's slot so the batch stays whole; the entry becomes a no-op.
          entry = { term: 0, index: 0, type: EntryType.Normal, data: new Uint8Array(0) };
        } else {
          this.pendingConfIndex = this.log.lastIndex() + ents.length + 1;
        }
      }
      ents.push(entry);
    }
    if (!this.appendEntries(ents)) return;
    this.broadcastPending = true;
  }

  /** Sends what was batched since the last Ready: called by RawNode before it builds one. */
  flush(): void {
    if (this.forwardBuffer.length > 0) {
      const ents = this.forwardBuffer;
      this.forwardBuffer = [];
      if (this.role === StateRole.Follower && this.lead !== NONE) {
        const m = newMessage(MessageType.ForwardProp, this.lead, this.id, 0);
        m.entries = ents;
        this.send(m);
      } else {
        this.logger.info(`${this.id} dropped ${ents.length} forwarded proposals: the leader was lost`);
      }
    }
    if (this.broadcastPending) {
      this.broadcastPending = false;
      if (this.role === StateRole.Leader) this.bcastAppend();
    }
  }

  private confChangeRefusal(data: Uint8Array): string | null {
    let cc: ConfChange;
    try {
      cc = decodeConfChange(data);
    } catch (err) {
      return `undecodable: ${(err as Error).message}`;
    }
    if (this.pendingConfIndex > this.log.applied) {
      return `a conf change at ${this.pendingConfIndex} is not applied yet (applied ${this.log.applied})`;
    }
    const joint = this.trk.isJoint();
    if (joint && !isLeaveJoint(cc)) return 'the configuration is joint: only leaving it is allowed';
    if (!joint && isLeaveJoint(cc)) return 'the configuration is not joint: nothing to leave';
    return null;
  }

  private handleReadIndex(m: Message): void {
    if (this.trk.voterIds().length === 1 && this.trk.isVoter(this.id)) {
      this.releaseRead(m, this.log.committed);
      return;
    }
    // Until an entry of this term commits, our commit index may lag the true one.
    if (!this.committedEntryInCurrentTerm()) {
      if (this.pendingReadIndexMessages.length < readRequestsMax) this.pendingReadIndexMessages.push(m);
      return;
    }
    this.serveReadIndex(m);
  }

  private serveReadIndex(m: Message): void {
    if (this.cfg.readOnlyOption === ReadOnlyOption.LeaseBased && this.leaseValid()) {
      this.releaseRead(m, this.log.committed);
      return;
    }
    if (this.readOnly.addRequest(this.log.committed, m)) {
      this.readOnly.recvAck(this.id, m.context!);
      this.bcastHeartbeat(m.context);
    }
  }

  private releasePendingReadIndexMessages(): void {
    if (!this.committedEntryInCurrentTerm() || this.pendingReadIndexMessages.length === 0) return;
    const msgs = this.pendingReadIndexMessages;
    this.pendingReadIndexMessages = [];
    for (const m of msgs) this.serveReadIndex(m);
  }

  private releaseRead(req: Message, index: number): void {
    if (req.from === NONE || req.from === this.id) {
      this.readStates.push({ index, requestCtx: req.context! });
      return;
    }
    const r = newMessage(MessageType.ReadIndexResp, req.from, this.id, this.term);
    r.index = index;
    r.context = req.context;
    this.send(r);
  }

  /**
   * The leader lease holds while a quorum acknowledged heartbeats sent less than an election
   * timeout (minus the drift margin) ago: no member of that quorum votes for anyone else
   * before its own election timeout passes, and every new leader needs one of them.
   */
  leaseValid(): boolean {
    if (this.role !== StateRole.Leader || this.leaseForfeited || this.leadTransferee !== NONE) return false;
    if (!this.committedEntryInCurrentTerm()) return false;
    // The newest send tick that a quorum has acknowledged; a voter without an ack counts as never.
    const base = jointCommitted(this.trk.config, (id) => (id === this.id ? this.ticks : (this.heartbeatAckTick.get(id) ?? -Infinity)));
    if (!Number.isFinite(base)) return false;
    return this.ticks < base + this.cfg.electionTicks - this.cfg.leaseDriftTicks;
  }

  private handleTransferLeader(transferee: MemberId): void {
    const pr = this.trk.progress.get(transferee);
    if (!pr || pr.isLearner) {
      this.logger.info(`${this.id} ignores transfer to ${transferee}: not a voter`);
      return;
    }
    if (transferee === this.id) return;
    if (this.leadTransferee === transferee) return;
    this.leadTransferee = transferee;
    // The transfer must finish within one election timeout.
    this.electionElapsed = 0;
    if (pr.match === this.log.lastIndex()) this.sendTimeoutNow(transferee);
    else this.maybeSendAppend(transferee, true);
  }

  private stepCandidate(m: Message): void {
    const myVoteResp = this.role === StateRole.PreCandidate ? MessageType.PreVoteResp : MessageType.VoteResp;
    switch (m.type) {
      case MessageType.Prop:
        this.lastDropReason = 'no leader';
        return;
      case MessageType.App:
        this.becomeFollower(m.term, m.from);
        this.handleAppend(m);
        return;
      case MessageType.Heartbeat:
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return;
      case MessageType.Snap:
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return;
      case MessageType.PreVoteResp:
      case MessageType.VoteResp: {
        if (m.type !== myVoteResp) return;
        const result = this.poll(m.from, m.type, !m.reject);
        if (result === VoteResult.Won) {
          if (this.role === StateRole.PreCandidate) {
            this.campaign(MessageType.Vote, false);
          } else {
            this.becomeLeader();
            this.bcastAppend();
          }
        } else if (result === VoteResult.Lost) {
          this.becomeFollower(this.term, NONE);
        }
        return;
      }
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case MessageType.Prop:
        if (this.lead === NONE) {
          this.lastDropReason = 'no leader';
          return;
        }
        if (this.cfg.disableProposalForwarding) {
          this.lastDropReason = 'proposal forwarding disabled';
          return;
        }
        for (const e of m.entries) this.forwardBuffer.push(e);
        return;
      case MessageType.App:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppend(m);
        return;
      case MessageType.Heartbeat:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleHeartbeat(m);
        return;
      case MessageType.Snap:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshot(m);
        return;
      case MessageType.TransferLeader:
        if (this.lead === NONE) return;
        this.send({ ...m, to: this.lead, term: 0 });
        return;
      case MessageType.TimeoutNow:
        this.logger.info(`${this.id} [term ${this.term}] campaigns at once: leadership transferred from ${m.from}`);
        this.hup(true);
        return;
      case MessageType.ReadIndex:
        if (this.lead === NONE) return;
        this.send({ ...m, to: this.lead, term: 0 });
        return;
      case MessageType.ReadIndexResp:
        this.readStates.push({ index: m.index, requestCtx: m.context! });
        return;
    }
  }

  private handleAppend(m: Message): void {
    const r = newMessage(MessageType.AppResp, m.from, this.id, this.term);
    // Entries at or below our commit index are settled: answer with where we stand. This
    // also means nothing a peer sends can rewrite committed history.
    if (m.index < this.log.committed) {
      r.index = this.log.committed;
      this.send(r);
      return;
    }
    const lastNew = this.log.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (lastNew >= 0) {
      r.index = lastNew;
      this.send(r);
      return;
    }
    // Reject, hinting where our log could match so the leader skips a whole conflicting term.
    const hint = this.log.findConflictByTerm(Math.min(m.index, this.log.lastIndex()), m.logTerm);
    r.index = m.index;
    r.reject = true;
    r.rejectHint = hint.index;
    r.logTerm = hint.term;
    this.send(r);
  }

  private handleHeartbeat(m: Message): void {
    this.log.commitTo(Math.min(m.commit, this.log.lastIndex()));
    const r = newMessage(MessageType.HeartbeatResp, m.from, this.id, this.term);
    r.context = m.context;
    r.index = m.index;
    this.send(r);
  }

  private handleSnapshot(m: Message): void {
    const s = m.snapshot!;
    const r = newMessage(MessageType.AppResp, m.from, this.id, this.term);
    if (this.restore(s)) {
      this.logger.info(`${this.id} restored snapshot at ${s.metadata.index} (term ${s.metadata.term})`);
      r.index = this.log.lastIndex();
    } else {
      r.index = this.log.committed;
    }
    this.send(r);
  }

  /** Installs a leader's snapshot if it is newer than what we have committed. */
  private restore(s: Snapshot): boolean {
    const { index, term, confState } = s.metadata;
    if (index <= this.log.committed) return false;
    // Committed entries handed out in a Ready are being applied right now: replacing the log and
    // the configuration under them would let their conf changes apply on top of the snapshot's
    // configuration, and leave the applied index inside the replaced log. The leader resends.
    if (this.log.applying > this.log.applied) {
      this.logger.info(`${this.id} defers snapshot at ${index}: entries up to ${this.log.applying} are being applied`);
      return false;
    }
    // A member added after the snapshot was taken is not in its configuration; it restores
    // anyway and learns of its own addition from the entries that follow.
    const cs = confState;
    if (this.log.matchTerm(index, term)) {
      // We already hold the snapshot's last entry: just advance commit.
      this.log.commitTo(index);
      return false;
    }
    this.log.restore(s);
    this.applyConfState(cs);
    return true;
  }

  // ---- membership -------------------------------------------------------------------

  /** Replaces the tracker's configuration wholesale (bootstrap or snapshot). */
  private applyConfState(cs: ConfState): void {
    const trk = this.trk;
    trk.config = { incoming: new Set(cs.voters), outgoing: new Set(cs.votersOutgoing) };
    trk.learners = new Set(cs.learners);
    trk.learnersNext = new Set(cs.learnersNext);
    trk.autoLeave = cs.autoLeave;
    const next = this.log.lastIndex() + 1;
    const keep = new Map<MemberId, Progress>();
    for (const id of [...cs.voters, ...cs.votersOutgoing, ...cs.learners, ...cs.learnersNext]) {
      if (keep.has(id)) continue;
      const old = trk.progress.get(id);
      const learner = !trk.isVoter(id);
      if (old) {
        old.isLearner = learner;
        keep.set(id, old);
      } else {
        keep.set(id, new Progress(next, trk.inflightMessagesMax, trk.inflightBytesMax, learner));
      }
    }
    trk.progress = keep;
    for (const [id, p] of trk.progress) {
      p.match = id === this.id ? this.log.lastIndex() : 0;
      p.next = next;
    }
  }

  /** Called by the application when it applies a committed ConfChange entry. */
  applyConfChange(cc: ConfChange): ConfState {
    try {
      applyChange(this.trk, cc, this.log.lastIndex());
    } catch (err) {
      if (!(err instanceof ConfChangeError)) throw err;
      // Every member applies the same entry and refuses it the same way.
      this.logger.warn(`${this.id} refused conf change: ${err.message}`);
      return this.trk.confState();
    }
    const cs = this.trk.confState();
    this.logger.info(`${this.id} applied conf change: voters ${cs.voters} outgoing ${cs.votersOutgoing} learners ${cs.learners}`);
    if (this.role !== StateRole.Leader) return cs;
    if (!this.trk.isVoter(this.id)) {
      // A leader removed from the configuration (or made a learner) steps down.
      this.logger.info(`${this.id} steps down: no longer a voter`);
      this.becomeFollower(this.term, NONE);
      return cs;
    }
    if (this.leadTransferee !== NONE && !this.trk.isVoter(this.leadTransferee)) this.leadTransferee = NONE;
    for (const id of this.heartbeatAckTick.keys()) if (!this.trk.isVoter(id)) this.heartbeatAckTick.delete(id);
    if (this.maybeCommit()) this.bcastAppend();
    else for (const id of this.trk.memberIds()) if (id !== this.id) this.maybeSendAppend(id, false);
    return cs;
  }

  /** The application applied entries up to `index`. */
  appliedTo(index: number): void {
    this.log.appliedTo(index);
    // Leave an auto-leave joint configuration once entering it has been applied.
    if (
      this.role === StateRole.Leader &&
      this.trk.autoLeave &&
      this.trk.isJoint() &&
      this.pendingConfIndex <= this.log.applied
    ) {
      const data = encodeConfChange({ transition: ConfChangeTransition.Auto, changes: [], context: null });
      const ok = this.appendEntries([{ term: 0, index: 0, type: EntryType.ConfChange, data }]);
      if (ok) {
        this.pendingConfIndex = this.log.lastIndex();
        this.logger.info(`${this.id} proposes leaving the joint configuration at ${this.pendingConfIndex}`);
        this.bcastAppend();
      }
    }
  }

  /** Whether a proposal of `cc` would enter a joint configuration. */
  static entersJoint(cc: ConfChange): boolean {
    return enterJoint(cc).joint;
  }
}

/** Why a message's numeric field is not a non-negative safe integer, or null when it is one. */
function notCount(field: string, v: number): string | null {
  return Number.isSafeInteger(v) && v >= 0 ? null : `${field} ${String(v)} is not a non-negative integer`;
}
