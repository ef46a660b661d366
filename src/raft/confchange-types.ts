import type { MemberId } from './types.ts';

export enum ConfChangeType {
  AddNode = 0,
  RemoveNode = 1,
  AddLearnerNode = 2,
}

export enum ConfChangeTransition {
  /** One simple change applies directly; several use a joint configuration left automatically. */
  Auto = 0,
  /** Always joint, left automatically once entering it commits. */
  JointImplicit = 1,
  /** Always joint; the application proposes an empty ConfChange to leave. */
  JointExplicit = 2,
}

export interface ConfChangeSingle {
  type: ConfChangeType;
  memberId: MemberId;
}

/** A membership change. No changes and transition Auto means "leave the joint configuration". */
export interface ConfChange {
  transition: ConfChangeTransition;
  changes: ConfChangeSingle[];
  /** Opaque to Raft: the server puts the new member's addresses here. */
  context: Uint8Array | null;
}
