// The membership control channel over real WebSocket signaling: transport signals pass through
// untouched, control messages reach control handlers, and a member serving the protocol
// answers probes and adds a joiner.

import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { systemClock } from '../../adapters/clock/system.ts';
import { ControlChannel, parseControl, serveMembershipControl, type ControlMessage } from '../../adapters/signaling/control.ts';
import { WebSocketSignaling } from '../../adapters/signaling/ws-client.ts';
import { SignalingServer } from '../../adapters/signaling/ws-server.ts';
import { MemoryHub } from '../../adapters/transport/memory.ts';
import type { MemberId } from '../../src/raft/types.ts';
import { AutoMembership } from '../../src/server/auto-membership.ts';
import type { KvMember } from '../../src/server/kv-member.ts';
import { startKvMember } from '../helpers/kv-members.ts';
import { waitFor } from '../helpers/wait.ts';

const cluster = 'control-test';
const secret = 'control-secret';
const cleanups: (() => Promise<void> | void)[] = [];

afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups.length = 0;
});

async function server(): Promise<string> {
  const s = new SignalingServer({ cluster, secret });
  const url = await s.listen(0);
  cleanups.push(() => s.close());
  return url;
}

interface Joined {
  channel: ControlChannel;
  transportSignals: [MemberId, unknown][];
  control: [MemberId, ControlMessage][];
}

async function join(url: string, id: MemberId): Promise<Joined> {
  const channel = new ControlChannel(new WebSocketSignaling({ url, cluster, secret, id, WebSocket }));
  const transportSignals: [MemberId, unknown][] = [];
  const control: [MemberId, ControlMessage][] = [];
  channel.onControl((from, msg) => control.push([from, msg]));
  await channel.transportSignaling.join({ onSignal: (from, data) => transportSignals.push([from, data]), onPresence: () => {} });
  cleanups.push(() => channel.close());
  return { channel, transportSignals, control };
}

describe('ControlChannel', () => {
  it('keeps transport signals and control messages apart', async () => {
    const url = await server();
    const a = await join(url, 1);
    const b = await join(url, 2);
    await waitFor('each to see the other', () => a.channel.presentMembers().includes(2) && b.channel.presentMembers().includes(1));
    a.channel.transportSignaling.send(2, { session: 's', knock: true });
    a.channel.broadcast({ kind: 'leave', id: 1 });
    await waitFor('both to arrive', () => b.transportSignals.length === 1 && b.control.length === 1);
    expect(b.transportSignals[0]).toEqual([1, { session: 's', knock: true }]);
    expect(b.control[0]).toEqual([1, { kind: 'leave', id: 1 }]);
  });

  it('refuses control messages that speak for another member or are malformed', () => {
    expect(parseControl(2, { kind: 'leave', id: 3 })).toBeNull();
    expect(parseControl(2, { kind: 'join', request: { id: 3, name: 'x', peerURLs: [], wantsVote: true } })).toBeNull();
    expect(parseControl(2, { kind: 'join', request: { id: 2, name: 'x', peerURLs: [7], wantsVote: true } })).toBeNull();
    expect(parseControl(2, { kind: 'probe-reply', inCluster: 'yes', leader: 0, voters: [], learners: [], bootstrapMembers: [] })).toBeNull();
    expect(parseControl(2, { kind: 'probe-reply', inCluster: true, leader: 1, voters: [1], learners: [], bootstrapMembers: [{ id: 0, name: '', peerURLs: [] }] })).toBeNull();
    expect(parseControl(2, { kind: 'leave', id: 2, successor: { id: 2, term: 3 } })).toBeNull();
    expect(parseControl(2, { kind: 'leave', id: 2, successor: { id: 4, term: 0 } })).toBeNull();
    expect(parseControl(2, { kind: 'leave', id: 2, successor: { id: 4, term: 3 } })).toEqual({ kind: 'leave', id: 2, successor: { id: 4, term: 3 } });
    expect(parseControl(2, { kind: 'nonsense' })).toBeNull();
    expect(parseControl(2, { kind: 'join', request: { id: 2, name: 'tab', peerURLs: ['webrtc://2'], wantsVote: false } })).toEqual({
      kind: 'join',
      request: { id: 2, name: 'tab', peerURLs: ['webrtc://2'], wantsVote: false },
    });
  });

  it('a serving member answers probes and adds a joiner that asks through the channel', async () => {
    const url = await server();
    const hub = new MemoryHub();
    const bootstrap = [{ id: 1, name: 'founder', peerURLs: ['memory://1'] }];
    const founder: KvMember = await startKvMember(hub, 1, [1], { initialMembers: bootstrap.map((b) => ({ ...b, clientURLs: [], isLearner: false })) });
    const auto = new AutoMembership(founder, { clock: systemClock, checkIntervalMs: 20 });
    cleanups.push(async () => {
      auto.stop();
      await founder.stop();
    });
    const served = await join(url, 1);
    cleanups.push(serveMembershipControl(served.channel, founder, auto, bootstrap));
    await waitFor('the founder to lead', () => founder.member.isLeader());

    const joiner = await join(url, 2);
    await waitFor('the founder to be present', () => joiner.channel.presentMembers().includes(1));
    joiner.channel.send(1, { kind: 'probe' });
    await waitFor('a probe reply', () => joiner.control.some(([, m]) => m.kind === 'probe-reply'));
    expect(joiner.control.find(([, m]) => m.kind === 'probe-reply')).toEqual([1, { kind: 'probe-reply', inCluster: true, leader: 1, voters: [1], learners: [], bootstrapMembers: bootstrap }]);

    joiner.channel.broadcast({ kind: 'join', request: { id: 2, name: 'tab-2', peerURLs: ['webrtc://2'], wantsVote: false } });
    await waitFor('member 2 added as a learner', () => founder.member.status().confState.learners.includes(2), 5000);
    expect(founder.members.get(2)?.peerURLs).toEqual(['webrtc://2']);
  });
});
