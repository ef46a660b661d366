import type { MemberId } from './types.ts';

export enum ReadOnlyOption {
  /** ReadIndex confirmed by a heartbeat round to a quorum: safe under any clock behaviour. */
  Safe = 'safe',
  /**
   * Leader lease: a leader that heard from a quorum within the last election timeout, less
   * `leaseDriftTicks`, answers reads from its commit index without a round trip. Needs
   * check-quorum and bounded clock drift between members.
   */
  LeaseBased = 'lease',
}

/** A logger the core can call; adapters decide where lines go. */
export interface Logger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {} };

export interface RaftConfig {
  id: MemberId;
  /** Ticks without hearing from a leader before a follower campaigns (randomized in [e, 2e)). */
  electionTicks: number;
  /** Ticks between a leader's heartbeats. Must be smaller than electionTicks. */
  heartbeatTicks: number;
  /** Uniform random number in [0, 1): the only source of randomness the core uses. */
  random: () => number;
  preVote?: boolean;
  checkQuorum?: boolean;
  readOnlyOption?: ReadOnlyOption;
  /** Safety margin subtracted from the lease for clock drift between members. */
  leaseDriftTicks?: number;
  /** Bytes of entries in one append message (at least one entry is always sent). */
  messageBytesMax?: number;
  /** Append messages in flight to one follower in the replicate state. */
  inflightMessagesMax?: number;
  /** Bytes of entries in flight to one follower; 0 means unbounded. */
  inflightBytesMax?: number;
  /** Bytes of proposed but uncommitted entries the leader accepts; 0 means unbounded. */
  uncommittedBytesMax?: number;
  /** Refuse proposals on followers instead of forwarding them to the leader. */
  disableProposalForwarding?: boolean;
  logger?: Logger;
}

/** Default of RaftConfig.messageBytesMax; peer transports size their frames from it. */
export const defaultMessageBytesMax = 1024 * 1024;

export interface ResolvedRaftConfig extends Required<RaftConfig> {}

export function resolveConfig(c: RaftConfig): ResolvedRaftConfig {
  const r: ResolvedRaftConfig = {
    preVote: true,
    checkQuorum: true,
    readOnlyOption: ReadOnlyOption.Safe,
    leaseDriftTicks: 1,
    messageBytesMax: defaultMessageBytesMax,
    inflightMessagesMax: 256,
    inflightBytesMax: 0,
    uncommittedBytesMax: 0,
    disableProposalForwarding: false,
    logger: silentLogger,
    // An option given as undefined keeps its default.
    ...Object.fromEntries(Object.entries(c).filter(([, v]) => v !== undefined)),
  } as ResolvedRaftConfig;
  if (!Number.isSafeInteger(r.id) || r.id <= 0) throw new Error(`raft config: id must be a positive safe integer, got ${r.id}`);
  if (r.heartbeatTicks <= 0) throw new Error(`raft config: heartbeatTicks must be > 0, got ${r.heartbeatTicks}`);
  if (r.electionTicks <= r.heartbeatTicks) {
    throw new Error(`raft config: electionTicks (${r.electionTicks}) must exceed heartbeatTicks (${r.heartbeatTicks})`);
  }
  if (r.inflightMessagesMax <= 0) throw new Error(`raft config: inflightMessagesMax must be > 0, got ${r.inflightMessagesMax}`);
  if (r.readOnlyOption === ReadOnlyOption.LeaseBased && !r.checkQuorum) {
    throw new Error('raft config: lease-based reads need checkQuorum');
  }
  if (r.leaseDriftTicks < 0 || r.leaseDriftTicks >= r.electionTicks) {
    throw new Error(`raft config: leaseDriftTicks must be in [0, electionTicks), got ${r.leaseDriftTicks}`);
  }
  return r;
}
