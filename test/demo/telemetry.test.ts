// The demo's telemetry between tabs: malformed messages are refused, and heartbeats are sampled
// while every vote, append with entries and refusal is kept.

import { describe, expect, it } from 'vitest';
import type { WireMessage } from '../../demo/src/cluster.ts';
import { heartbeatSampleMs, MessageSampler, parseServingStatus, parseTelemetry } from '../../demo/src/telemetry.ts';

function wire(over: Partial<WireMessage>): WireMessage {
  return { from: 1, to: 2, kind: 'heartbeat', response: false, reject: false, term: 3, entries: 0, flightMs: 320, dropped: false, ...over };
}

describe('demo telemetry', () => {
  it('refuses malformed messages', () => {
    expect(parseTelemetry(null)).toBeNull();
    expect(parseTelemetry({ kind: 'beacon', from: 1, view: { id: 2 }, voters: [], learners: [], blocked: [], table: [] })).toBeNull(); // view of another member
    expect(parseTelemetry({ kind: 'command', to: 1, action: 'format-disk' })).toBeNull();
    expect(parseTelemetry({ kind: 'command', to: 1, action: 'block' })).toBeNull(); // no peer
    expect(parseTelemetry({ kind: 'messages', from: 0, messages: [] })).toBeNull();
    expect(parseTelemetry({ kind: 'command', to: 7, action: 'block', peer: 9 })).toEqual({ kind: 'command', to: 7, action: 'block', peer: 9 });
  });

  it('samples heartbeats per link and direction, keeps votes, entries and refusals', () => {
    let now = 1000;
    const s = new MessageSampler(() => now);
    expect(s.keep(wire({}))).toBe(true);
    expect(s.keep(wire({}))).toBe(false);
    expect(s.keep(wire({ response: true }))).toBe(true);
    expect(s.keep(wire({ from: 1, to: 3 }))).toBe(true);
    for (let i = 0; i < 3; i++) {
      expect(s.keep(wire({ kind: 'vote' }))).toBe(true);
      expect(s.keep(wire({ kind: 'append', entries: 2 }))).toBe(true);
      expect(s.keep(wire({ kind: 'append', reject: true }))).toBe(true);
    }
    now += heartbeatSampleMs;
    expect(s.keep(wire({}))).toBe(true);
  });
});

describe('the serving Node member status', () => {
  it("reads etcd's Status answer from the JSON gateway (int64 fields as strings) and refuses anything else", () => {
    const body = {
      header: { cluster_id: '1', member_id: '749227089421180', revision: '42', raft_term: '3' },
      version: '3.4.23',
      leader: '749227089421180',
      raftIndex: '57',
      raftTerm: '3',
      raftAppliedIndex: '57',
    };
    expect(parseServingStatus(body, 5)).toEqual({ id: 749227089421180, term: 3, leader: 749227089421180, commit: 57, applied: 57, revision: 42, atMs: 5 });
    expect(parseServingStatus({ ...body, raftIndex: 'x' }, 5)).toBeNull();
    expect(parseServingStatus({ error: 'not found' }, 5)).toBeNull();
    expect(parseServingStatus(null, 5)).toBeNull();
  });
});
