// Membership changes: one voter at a time, or several through a joint configuration.
//
// Safety: a simple change alters at most one voter, so any majority of the old voters and
// any majority of the new voters intersect, and two leaders can never be elected in one
// term across the switch. Anything larger enters a joint configuration in which every
// decision (election or commit) needs a majority of both the old and the new voters, and
// only after that has committed does the cluster leave it.

import { ConfChangeTransition, ConfChangeType, type ConfChange } from './confchange-types.ts';
import { Progress, type ProgressTracker } from './progress.ts';
import type { MemberId } from './types.ts';

export * from './confchange-types.ts';

export class ConfChangeError extends Error {}

/** Whether the change enters a joint configuration, and whether it leaves it automatically. */
export function enterJoint(cc: ConfChange): { joint: boolean; autoLeave: boolean } {
  if (cc.changes.length === 0) return { joint: false, autoLeave: false };
  switch (cc.transition) {
    case ConfChangeTransition.Auto:
      return cc.changes.length > 1 ? { joint: true, autoLeave: true } : { joint: false, autoLeave: false };
    case ConfChangeTransition.JointImplicit:
      return { joint: true, autoLeave: true };
    case ConfChangeTransition.JointExplicit:
      return { joint: true, autoLeave: false };
    default:
      // Decoded entries are untrusted: refuse the same way on every member rather than crash.
      throw new ConfChangeError(`unknown conf change transition ${String(cc.transition)}`);
  }
}

export function isLeaveJoint(cc: ConfChange): boolean {
  return cc.changes.length === 0;
}

/**
 * Applies `cc` to the tracker in place, or throws ConfChangeError and leaves it untouched.
 * `nextIndex` is where a new member's replication starts.
 */
export function applyChange(trk: ProgressTracker, cc: ConfChange, nextIndex: number): void {
  const incoming = new Set(trk.config.incoming);
  const outgoing = new Set(trk.config.outgoing);
  const learners = new Set(trk.learners);
  const learnersNext = new Set(trk.learnersNext);
  const added = new Map<MemberId, Progress>();
  const removed = new Set<MemberId>();
  const hasProgress = (id: MemberId) => (trk.progress.has(id) && !removed.has(id)) || added.has(id);
  const ensure = (id: MemberId, learner: boolean) => {
    removed.delete(id);
    if (!hasProgress(id)) {
      const p = new Progress(Math.max(nextIndex, 1), trk.inflightMessagesMax, trk.inflightBytesMax, learner);
      // A new member is treated as active so that it is sent a snapshot straight away.
      p.recentActive = true;
      added.set(id, p);
    }
  };
  let autoLeave = trk.autoLeave;
  const joint = outgoing.size > 0;

  if (isLeaveJoint(cc)) {
    if (!joint) throw new ConfChangeError('cannot leave a joint configuration: the configuration is not joint');
    for (const id of learnersNext) learners.add(id);
    learnersNext.clear();
    for (const id of outgoing) {
      if (!incoming.has(id) && !learners.has(id)) removed.add(id);
    }
    outgoing.clear();
    autoLeave = false;
  } else {
    const mode = enterJoint(cc);
    if (joint) throw new ConfChangeError('configuration is joint: leave it before making another change');
    if (mode.joint) {
      if (incoming.size === 0) throw new ConfChangeError('cannot enter a joint configuration from one with no voters');
      for (const id of incoming) outgoing.add(id);
      autoLeave = mode.autoLeave;
    }
    for (const ch of cc.changes) {
      const id = ch.memberId;
      if (!Number.isSafeInteger(id) || id <= 0) throw new ConfChangeError(`invalid member id ${id}`);
      switch (ch.type) {
        case ConfChangeType.AddNode:
          ensure(id, false);
          incoming.add(id);
          learners.delete(id);
          learnersNext.delete(id);
          break;
        case ConfChangeType.AddLearnerNode:
          ensure(id, true);
          incoming.delete(id);
          if (outgoing.has(id)) learnersNext.add(id);
          else learners.add(id);
          break;
        case ConfChangeType.RemoveNode:
          // A member added earlier in this same change must not keep the progress made for it.
          added.delete(id);
          incoming.delete(id);
          learners.delete(id);
          learnersNext.delete(id);
          if (!outgoing.has(id)) removed.add(id);
          break;
        default:
          throw new ConfChangeError(`unknown change type ${String((ch as { type: unknown }).type)}`);
      }
    }
  }
  if (incoming.size === 0) throw new ConfChangeError('the change removes all voters');
  for (const id of learners) {
    if (incoming.has(id) || outgoing.has(id)) throw new ConfChangeError(`member ${id} would be both voter and learner`);
  }
  for (const id of learnersNext) {
    if (!outgoing.has(id)) throw new ConfChangeError(`member ${id} is a pending learner but not an outgoing voter`);
  }

  trk.config = { incoming, outgoing };
  trk.learners = learners;
  trk.learnersNext = learnersNext;
  trk.autoLeave = outgoing.size > 0 && autoLeave;
  for (const id of removed) trk.progress.delete(id);
  for (const [id, p] of added) trk.progress.set(id, p);
  // Every tracked member that votes in neither half is a learner.
  for (const [id, p] of trk.progress) p.isLearner = !incoming.has(id) && !outgoing.has(id);
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** ConfChange entries are small and rare: JSON keeps them readable in a WAL dump. */
export function encodeConfChange(cc: ConfChange): Uint8Array {
  const ctx = cc.context ? Array.from(cc.context) : null;
  return encoder.encode(JSON.stringify({ t: cc.transition, c: cc.changes.map((c) => [c.type, c.memberId]), x: ctx }));
}

export function decodeConfChange(data: Uint8Array): ConfChange {
  let raw: { t: number; c: [number, number][]; x: number[] | null };
  try {
    raw = JSON.parse(decoder.decode(data));
  } catch {
    throw new ConfChangeError('malformed conf change: not JSON');
  }
  if (!raw || typeof raw.t !== 'number' || !Array.isArray(raw.c)) throw new ConfChangeError('malformed conf change');
  for (const c of raw.c) {
    if (!Array.isArray(c) || c.length !== 2 || !Number.isSafeInteger(c[0]) || !Number.isSafeInteger(c[1])) {
      throw new ConfChangeError(`malformed conf change item ${JSON.stringify(c)}`);
    }
  }
  if (raw.x !== null && raw.x !== undefined && (!Array.isArray(raw.x) || raw.x.some((b) => !Number.isInteger(b) || b < 0 || b > 255))) {
    throw new ConfChangeError('malformed conf change context');
  }
  return {
    transition: raw.t as ConfChangeTransition,
    changes: raw.c.map(([type, memberId]) => ({ type: type as ConfChangeType, memberId })),
    context: raw.x ? Uint8Array.from(raw.x) : null,
  };
}
