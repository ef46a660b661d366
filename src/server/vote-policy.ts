// Who may vote: the rule that keeps a cluster with Node members alive when its browser tabs
// vanish. A tab is a member whose peer URLs are all `webrtc://` (every member derives this from
// the replicated member table, so every leader decides alike). Node members are everything
// else (`http(s)://` peer URLs).
//
//   - No Node voter (tabs of one origin over BroadcastChannel): tabs vote; nothing else could.
//   - Node voters present, default: tabs stay learners. Losing any set of tabs at once then
//     never costs the quorum, and a Node member that dies costs what it would cost without
//     tabs (docs/architecture.md, "Tab votes", compares this with the alternatives).
//   - Node voters present, `tabsMayOutvote` set in the member table (opt-in): tabs vote too,
//     and closing them all at once may leave the Node members without a quorum.
//
// AutoMembership enforces it on the leader (promotes, and demotes tab voters the rule no longer
// allows); KvMember.promoteMember and addMember refuse changes that break it, so etcdctl's
// `member promote` cannot either.

import type { MemberId } from '../raft/types.ts';
import type { MemberRecord, MemberTable } from './member-table.ts';

/** The peer URL scheme of a browser tab (adapters/browser: `webrtc://<id>`). */
export const tabPeerUrlPrefix = 'webrtc://';

/** A member reached over WebRTC only: a browser tab. */
export function isTabRecord(r: Pick<MemberRecord, 'peerURLs'> | undefined): boolean {
  return r !== undefined && r.peerURLs.length > 0 && r.peerURLs.every((u) => u.startsWith(tabPeerUrlPrefix));
}

/** Whether member `id` is a tab according to the table (unknown members count as Node members). */
export function isTab(table: MemberTable, id: MemberId): boolean {
  return isTabRecord(table.get(id));
}

/** Voters of `cs` that are Node members (not tabs). */
export function nodeVoters(table: MemberTable, cs: { readonly voters: readonly MemberId[] }): MemberId[] {
  return cs.voters.filter((v) => !isTab(table, v));
}

/**
 * Whether member `id` may hold a vote in configuration `cs` under the table's policy. A Node
 * member always may; a tab may when no Node member votes, or when the cluster opted in.
 */
export function mayVote(table: MemberTable, cs: { readonly voters: readonly MemberId[] }, id: MemberId): boolean {
  return !isTab(table, id) || tabMayVote(nodeVoters(table, cs).length, table.tabsMayOutvote);
}

/** The rule itself: a tab may vote when no Node member votes, or when the cluster opted in. */
export function tabMayVote(nodeVoterCount: number, tabsMayOutvote: boolean): boolean {
  return tabsMayOutvote || nodeVoterCount === 0;
}

/**
 * Whether losing every tab at once leaves a quorum, in each half of a (possibly joint)
 * configuration: the Node voters alone are a majority of its voters. What the default policy
 * guarantees whenever a Node member votes.
 */
export function nodeVotersAreQuorum(isTabId: (id: MemberId) => boolean, voterSets: readonly (readonly MemberId[])[]): boolean {
  return voterSets.every((set) => set.length === 0 || set.filter((v) => !isTabId(v)).length > set.length / 2);
}

/** Why a tab may not vote, for refusals and logs; the remedy included. */
export function voteRefusal(id: MemberId): string {
  return (
    `meshkv: member ${id.toString(16)} is a browser tab and the cluster has Node voters, so it stays a learner ` +
    '(losing tabs must never cost the quorum); to let tabs outvote the Node members, start a Node member with --tabs-may-outvote'
  );
}

/** Tab voters the policy no longer allows (after a Node voter joined, or the opt-in was turned off). */
export function disallowedTabVoters(table: MemberTable, cs: { readonly voters: readonly MemberId[] }): MemberId[] {
  return cs.voters.filter((v) => !mayVote(table, cs, v));
}
