// What every kind of member reports about itself (a Node member's `status()`, a tab's), so the
// two runtimes describe a member in the same words.

import type { MemberId, StateRole } from '../raft/types.ts';

export interface MemberStatusBase {
  id: MemberId;
  name: string;
  role: StateRole;
  term: number;
  /** 0 while no leader is known. */
  leader: MemberId;
  commit: number;
  applied: number;
  voters: MemberId[];
  learners: MemberId[];
}
