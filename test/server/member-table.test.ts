// The member table follows applied conf changes and update entries, and travels in snapshots.

import { describe, expect, it } from 'vitest';
import { ConfChangeTransition, ConfChangeType, type ConfChange } from '../../src/raft/confchange.ts';
import type { ConfState } from '../../src/raft/types.ts';
import {
  MemberTable,
  decodeMemberUpdate,
  encodeMemberContext,
  encodeMemberUpdate,
  memberUpdateTag,
} from '../../src/server/member-table.ts';

const cs = (voters: number[], learners: number[] = []): ConfState => ({ voters, learners, votersOutgoing: [], learnersNext: [], autoLeave: false });
const change = (type: ConfChangeType, memberId: number, context: Uint8Array | null = null): ConfChange => ({
  transition: ConfChangeTransition.Auto,
  changes: [{ type, memberId }],
  context,
});

describe('MemberTable', () => {
  it('adds members with the addresses in the context, follows learner flags, drops removed members', () => {
    const t = new MemberTable();
    t.reset([{ id: 1, name: 'a', peerURLs: ['http://h:1'], clientURLs: [], isLearner: false }]);
    t.applyConfChange(change(ConfChangeType.AddLearnerNode, 2, encodeMemberContext({ name: '', peerURLs: ['http://h:2'], clientURLs: [] })), cs([1], [2]));
    expect(t.get(2)).toEqual({ id: 2, name: '', peerURLs: ['http://h:2'], clientURLs: [], isLearner: true });
    t.applyUpdate({ kind: 'attributes', id: 2, name: 'b', clientURLs: ['http://h:12'] });
    t.applyConfChange(change(ConfChangeType.AddNode, 2), cs([1, 2]));
    expect(t.get(2)).toEqual({ id: 2, name: 'b', peerURLs: ['http://h:2'], clientURLs: ['http://h:12'], isLearner: false });
    t.applyUpdate({ kind: 'peerURLs', id: 2, peerURLs: ['http://h:22'] });
    expect(t.get(2)!.peerURLs).toEqual(['http://h:22']);
    // A change Raft refused leaves the configuration, and so the table, as it was.
    t.applyConfChange(change(ConfChangeType.AddNode, 3, encodeMemberContext({ name: '', peerURLs: ['http://h:3'], clientURLs: [] })), cs([1, 2]));
    expect(t.get(3)).toBeUndefined();
    t.applyConfChange(change(ConfChangeType.RemoveNode, 1), cs([2]));
    expect(t.list().map((m) => m.id)).toEqual([2]);
    // Updates for unknown members are ignored alike everywhere.
    t.applyUpdate({ kind: 'attributes', id: 9, name: 'x', clientURLs: [] });
    expect(t.list().map((m) => m.id)).toEqual([2]);
  });

  it('counts as removed only members an applied RemoveNode took out, not members a seed or snapshot lacks', () => {
    const t = new MemberTable();
    // A joiner's seed from --initial-cluster names member 3, added to the cluster after the
    // leader's snapshot; the snapshot's table and the early entries lack it: not removed.
    t.reset([1, 2, 3].map((id) => ({ id, name: '', peerURLs: [`http://h:${id}`], clientURLs: [], isLearner: false })));
    t.reset([1, 2].map((id) => ({ id, name: '', peerURLs: [`http://h:${id}`], clientURLs: [], isLearner: false })));
    t.applyConfChange(change(ConfChangeType.AddNode, 2), cs([1, 2]));
    expect(t.removed()).toEqual([]);
    t.applyConfChange(change(ConfChangeType.RemoveNode, 2), cs([1]));
    expect(t.removed()).toEqual([2]);
    // Added back under the same id: no longer refused.
    t.applyConfChange(change(ConfChangeType.AddNode, 2, encodeMemberContext({ name: '', peerURLs: ['http://h:2'], clientURLs: [] })), cs([1, 2]));
    expect(t.removed()).toEqual([]);
    // In a joint change the removed voter stays (outgoing) until the joint configuration is left.
    const joint: ConfChange = { transition: ConfChangeTransition.JointExplicit, changes: [{ type: ConfChangeType.RemoveNode, memberId: 2 }], context: null };
    t.applyConfChange(joint, { ...cs([1]), votersOutgoing: [1, 2] });
    expect(t.removed()).toEqual([]);
    t.applyConfChange({ transition: ConfChangeTransition.Auto, changes: [], context: null }, cs([1]));
    expect(t.removed()).toEqual([2]);
    // A snapshot restore does not forget what this replica saw removed.
    t.reset([{ id: 1, name: '', peerURLs: ['http://h:1'], clientURLs: [], isLearner: false }]);
    expect(t.removed()).toEqual([2]);
  });

  it('round-trips through a snapshot image, and passes images without a table through untouched', () => {
    const t = new MemberTable();
    t.reset([{ id: 7, name: 'n', peerURLs: ['http://h:7'], clientURLs: ['http://h:17'], isLearner: true }]);
    const state = new Uint8Array([4, 0, 0, 0, 1, 2, 3, 4]);
    const { records, stateImage } = MemberTable.unwrapImage(t.wrapImage(state));
    expect(records).toEqual(t.list());
    expect([...stateImage]).toEqual([...state]);
    expect(MemberTable.unwrapImage(state)).toEqual({ records: null, settings: { tabsMayOutvote: false, clusterId: null }, authImage: new Uint8Array(0), sessionsImage: new Uint8Array(0), stateImage: state });
    expect(MemberTable.unwrapImage(new Uint8Array(0)).records).toBeNull();
  });

  it('carries the tab vote policy through updates and snapshot images', () => {
    const t = new MemberTable();
    t.reset([{ id: 7, name: 'n', peerURLs: ['webrtc://7'], clientURLs: [], isLearner: false }]);
    expect(t.tabsMayOutvote).toBe(false);
    const update = decodeMemberUpdate(encodeMemberUpdate({ kind: 'tabVotes', tabsMayOutvote: true }));
    expect(update).toEqual({ kind: 'tabVotes', tabsMayOutvote: true });
    t.applyUpdate(update!);
    expect(t.tabsMayOutvote).toBe(true);
    const { settings } = MemberTable.unwrapImage(t.wrapImage(new Uint8Array(0)));
    expect(settings).toEqual({ tabsMayOutvote: true, clusterId: null });
  });

  it('carries the cluster id through snapshot images, exactly beyond 2^53, and refuses a malformed one', () => {
    const t = new MemberTable();
    t.reset([{ id: 7, name: 'n', peerURLs: ['http://h:7'], clientURLs: [], isLearner: false }], { tabsMayOutvote: false, clusterId: '18446744073709551615' });
    const image = t.wrapImage(new Uint8Array(0));
    const restored = new MemberTable();
    const { records, settings } = MemberTable.unwrapImage(image);
    restored.reset(records!, settings);
    expect(restored.clusterId).toBe('18446744073709551615');
    // A header rebuilt for later outbox sessions keeps it.
    expect(MemberTable.unwrapImage(MemberTable.headerWithSessions(image, new Uint8Array([1]))).settings.clusterId).toBe('18446744073709551615');
    // A table that has not learned the id (a joiner before its snapshot, an older image) writes none.
    const unknown = new MemberTable();
    unknown.reset(records!);
    expect(MemberTable.unwrapImage(unknown.wrapImage(new Uint8Array(0))).settings.clusterId).toBeNull();
    const bad = new MemberTable();
    bad.reset(records!, { tabsMayOutvote: false, clusterId: '18446744073709551616' });
    expect(() => MemberTable.unwrapImage(bad.wrapImage(new Uint8Array(0)))).toThrow('member table image: cluster id "18446744073709551616" is not a uint64 in decimal');
  });

  it('encodes update entries under a tag no client request starts with', () => {
    const bytes = encodeMemberUpdate({ kind: 'peerURLs', id: 5, peerURLs: ['http://h:5'] });
    expect(bytes[0]).toBe(memberUpdateTag);
    expect(decodeMemberUpdate(bytes)).toEqual({ kind: 'peerURLs', id: 5, peerURLs: ['http://h:5'] });
    expect(decodeMemberUpdate(new Uint8Array([memberUpdateTag, 0xc1]))).toBeNull();
  });
});
