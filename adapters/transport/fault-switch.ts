// The fault switch every transport carries: sets of peers whose frames are dropped, per direction.

import type { MemberId } from '../../src/raft/types.ts';
import type { FaultSwitch } from '../../src/seams.ts';

export class PeerFaults implements FaultSwitch {
  private readonly blockedIn = new Set<MemberId>();
  private readonly blockedOut = new Set<MemberId>();

  block(peer: MemberId, direction: 'in' | 'out' | 'both' = 'both'): void {
    if (direction !== 'out') this.blockedIn.add(peer);
    if (direction !== 'in') this.blockedOut.add(peer);
  }

  heal(peer?: MemberId): void {
    if (peer === undefined) {
      this.blockedIn.clear();
      this.blockedOut.clear();
    } else {
      this.blockedIn.delete(peer);
      this.blockedOut.delete(peer);
    }
  }

  isBlocked(peer: MemberId, direction: 'in' | 'out'): boolean {
    return direction === 'in' ? this.blockedIn.has(peer) : this.blockedOut.has(peer);
  }
}
