import { describe, expect, it } from 'vitest';
import {
  ConfChangeTransition,
  ConfChangeType,
  decodeConfChange,
  EntryType,
  MessageType,
  RaftError,
  RawNode,
  StateRole,
  emptyConfState,
  newMessage,
  type ConfState,
  type Entry,
  type Message,
  type RaftConfig,
  type Ready,
  type Snapshot,
} from '../../../src/raft/index.ts';

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array) => new TextDecoder().decode(b);

function cfg(id: number, extra: Partial<RaftConfig> = {}): RaftConfig {
  return { id, electionTicks: 10, heartbeatTicks: 1, random: () => 0, ...extra };
}

/**
 * Takes and advances every Ready, as a caller that persists and applies instantly would,
 * applying committed conf changes as the application must.
 */
function drain(rn: RawNode): Ready[] {
  const out: Ready[] = [];
  while (rn.hasReady()) {
    const rd = rn.ready();
    out.push(rd);
    for (const e of rd.committedEntries) if (e.type === EntryType.ConfChange) rn.applyConfChange(decodeConfChange(e.data));
    rn.advance(rd);
  }
  return out;
}
const committed = (rds: Ready[]) => rds.flatMap((rd) => rd.committedEntries);
const messages = (rds: Ready[]) => rds.flatMap((rd) => rd.messages);
const normalData = (ents: Entry[]) => ents.filter((e) => e.type === EntryType.Normal && e.data.length > 0).map((e) => text(e.data));

/** A member bootstrapped with `peers`, its first Ready (whatever bootstrap needs persisted) handled. */
function boot(id: number, peers: number[], extra: Partial<RaftConfig> = {}): RawNode {
  const rn = new RawNode(cfg(id, extra), null, peers);
  drain(rn);
  return rn;
}

function leaderOfOne(extra: Partial<RaftConfig> = {}): RawNode {
  const rn = boot(1, [1], extra);
  rn.campaign();
  drain(rn);
  return rn;
}

function appResp(from: number, term: number, index: number): Message {
  return { ...newMessage(MessageType.AppResp, 1, from, term), index };
}

/** Member 1 of {1,2,3}, elected with 2's pre-vote and vote; 2 and 3 acked its no-op. */
function leaderOfThree(): RawNode {
  const rn = boot(1, [1, 2, 3]);
  rn.campaign();
  expect(rn.status().role).toBe(StateRole.PreCandidate);
  rn.step(newMessage(MessageType.PreVoteResp, 1, 2, rn.status().term + 1));
  expect(rn.status().role).toBe(StateRole.Candidate);
  rn.step(newMessage(MessageType.VoteResp, 1, 2, rn.status().term));
  expect(rn.status().role).toBe(StateRole.Leader);
  drain(rn);
  const { term, lastIndex } = rn.status();
  rn.step(appResp(2, term, lastIndex));
  rn.step(appResp(3, term, lastIndex));
  drain(rn);
  expect(rn.status()).toMatchObject({ commit: lastIndex, applied: lastIndex });
  return rn;
}

function entry(index: number, term: number, data = ''): Entry {
  return { index, term, type: EntryType.Normal, data: bytes(data) };
}

function app(from: number, term: number, index: number, logTerm: number, entries: Entry[], commit: number): Message {
  const m = newMessage(MessageType.App, 1, from, term);
  m.index = index;
  m.logTerm = logTerm;
  m.entries = entries;
  m.commit = commit;
  return m;
}

/**
 * Member 1 of {1,2,3} following leader 2 at term `term`: leader 2 appended two entries after
 * the bootstrap log and committed the first; `last` is the second.
 */
function follower(extra: Partial<RaftConfig> = {}): { rn: RawNode; term: number; last: number } {
  const rn = boot(1, [1, 2, 3], extra);
  const base = rn.status().lastIndex;
  const baseTerm = rn.raft.log.lastTerm();
  const term = rn.status().term + 1;
  rn.step(app(2, term, base, baseTerm, [entry(base + 1, term), entry(base + 2, term, 'x')], base + 1));
  drain(rn);
  const last = base + 2;
  expect(rn.status()).toMatchObject({ role: StateRole.Follower, lead: 2, term, commit: last - 1, applied: last - 1, lastIndex: last });
  return { rn, term, last };
}

function confState(voters: number[]): ConfState {
  return { ...emptyConfState(), voters };
}

describe('single-member bootstrap', () => {
  it('campaigns, becomes leader and commits its no-op', () => {
    const rn = boot(1, [1]);
    const { term, lastIndex: base } = rn.status();
    expect(rn.status()).toMatchObject({ role: StateRole.Follower, lead: 0, confState: confState([1]) });
    rn.campaign();
    const t = term + 1;
    expect(rn.status()).toMatchObject({ role: StateRole.Leader, term: t, lead: 1, vote: 1, commit: base + 1, lastIndex: base + 1 });

    const rd = rn.ready();
    expect(rd.softState).toEqual({ lead: 1, role: StateRole.Leader });
    expect(rd.hardState).toEqual({ term: t, vote: 1, commit: base + 1 });
    expect(rd.entries.map((e) => [e.index, e.term, e.data.length])).toEqual([[base + 1, t, 0]]);
    expect(rd.committedEntries.map((e) => e.index)).toEqual([base + 1]);
    expect(rd.messages).toEqual([]);
    expect(rd.mustSync).toBe(true);
    rn.advance(rd);
    expect(rn.status().applied).toBe(base + 1);
    expect(rn.hasReady()).toBe(false);
  });

  it('elects itself after an election timeout of ticks', () => {
    const rn = boot(1, [1]);
    for (let i = 0; i < 9; i++) rn.tick();
    expect(rn.status().role).toBe(StateRole.Follower);
    rn.tick();
    expect(rn.status().role).toBe(StateRole.Leader);
  });

  it('commits proposals in order and hands them out once for applying', () => {
    const rn = leaderOfOne();
    const { term: t, lastIndex: b } = rn.status();
    rn.propose(bytes('a'));
    rn.propose(bytes('b'));
    const rd = rn.ready();
    expect(rd.entries.map((e) => [e.index, e.term, text(e.data)])).toEqual([[b + 1, t, 'a'], [b + 2, t, 'b']]);
    expect(rd.committedEntries.map((e) => [e.index, text(e.data)])).toEqual([[b + 1, 'a'], [b + 2, 'b']]);
    expect(rd.hardState).toEqual({ term: t, vote: 1, commit: b + 2 });
    expect(rd.softState).toBeNull();
    rn.advance(rd);
    expect(rn.status()).toMatchObject({ commit: b + 2, applied: b + 2, lastIndex: b + 2 });

    rn.propose(bytes('c'));
    expect(committed(drain(rn)).map((e) => text(e.data))).toEqual(['c']);
    expect(rn.hasReady()).toBe(false);
  });

  it('a proposed conf change commits as a ConfChange entry', () => {
    const rn = leaderOfOne();
    rn.proposeConfChange({ transition: ConfChangeTransition.Auto, changes: [{ type: ConfChangeType.AddNode, memberId: 2 }], context: null });
    const ents = committed(drain(rn));
    expect(ents.map((e) => e.type)).toEqual([EntryType.ConfChange]);
    expect(rn.status().confState.voters).toEqual([1, 2]);
  });
});

describe('ready/advance contract', () => {
  it('ready() twice without advance() throws', () => {
    const rn = leaderOfOne();
    rn.propose(bytes('a'));
    rn.ready();
    expect(() => rn.ready()).toThrow(/before advance/);
  });

  it('hasReady() is false while a Ready is outstanding, even with new work', () => {
    const rn = leaderOfOne();
    rn.propose(bytes('a'));
    expect(rn.hasReady()).toBe(true);
    const rd = rn.ready();
    expect(rn.hasReady()).toBe(false);
    rn.propose(bytes('b'));
    expect(rn.hasReady()).toBe(false);
    rn.advance(rd);
    expect(rn.hasReady()).toBe(true);
    const next = rn.ready();
    expect(next.entries.map((e) => text(e.data))).toEqual(['b']);
    expect(next.committedEntries.map((e) => text(e.data))).toEqual(['b']);
  });

  it('advance() refuses a Ready that is not the outstanding one', () => {
    const rn = leaderOfOne();
    rn.propose(bytes('a'));
    const rd = rn.ready();
    expect(() => rn.advance({ ...rd })).toThrow(/not the outstanding/);
    rn.advance(rd);
    expect(() => rn.advance(rd)).toThrow(/not the outstanding/);
  });

  it('an entry is handed out for persisting once, even if it is committed later', () => {
    const rn = leaderOfThree();
    rn.propose(bytes('a'));
    const rd = rn.ready();
    expect(rd.entries.map((e) => text(e.data))).toEqual(['a']);
    expect(rd.committedEntries).toEqual([]);
    expect(rd.messages.filter((m) => m.type === MessageType.App).map((m) => m.to).sort()).toEqual([2, 3]);
    rn.advance(rd);
    const { term, lastIndex } = rn.status();
    rn.step(appResp(2, term, lastIndex));
    const rds = drain(rn);
    expect(rds.flatMap((r) => r.entries)).toEqual([]);
    expect(committed(rds).map((e) => text(e.data))).toEqual(['a']);
    expect(rn.status()).toMatchObject({ commit: lastIndex, applied: lastIndex });
  });
});

describe('proposals', () => {
  it('a follower without a leader refuses with proposal-dropped', () => {
    const rn = boot(1, [1, 2, 3]);
    const before = rn.status();
    let err: unknown;
    try {
      rn.propose(bytes('a'));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RaftError);
    expect((err as RaftError).code).toBe('proposal-dropped');
    expect((err as RaftError).message).toMatch(/no leader/);
    expect(rn.status()).toEqual(before);
  });

  it('a pre-candidate refuses with proposal-dropped', () => {
    const rn = boot(1, [1, 2, 3]);
    rn.campaign();
    expect(() => rn.propose(bytes('a'))).toThrow(RaftError);
  });

  it('a follower with a leader forwards the proposal to it', () => {
    const { rn, last } = follower();
    rn.propose(bytes('p'));
    const msgs = messages(drain(rn));
    expect(msgs).toHaveLength(1);
    expect(msgs[0]).toMatchObject({ type: MessageType.ForwardProp, to: 2, from: 1 });
    expect(text(msgs[0].entries[0].data)).toBe('p');
    expect(rn.status().lastIndex).toBe(last);
  });

  it('a follower with forwarding disabled refuses', () => {
    const { rn } = follower({ disableProposalForwarding: true });
    expect(() => rn.propose(bytes('p'))).toThrow(/forwarding disabled/);
  });
});

describe('messages through step()', () => {
  const localTypes = [
    MessageType.Hup,
    MessageType.Beat,
    MessageType.Prop,
    MessageType.CheckQuorum,
    MessageType.SnapStatus,
    MessageType.Unreachable,
  ];

  it.each(localTypes)('local type %i is ignored on a follower', (type) => {
    const rn = boot(1, [1]);
    const before = rn.status();
    const m = newMessage(type, 1, 1, 0);
    m.entries = [entry(0, 0, 'x')];
    rn.step(m);
    expect(rn.status()).toEqual(before);
    expect(rn.hasReady()).toBe(false);
  });

  it.each(localTypes)('local type %i is ignored on a leader', (type) => {
    const rn = leaderOfThree();
    const before = rn.status();
    const m = newMessage(type, 1, 2, 0);
    m.entries = [entry(0, 0, 'x')];
    rn.step(m);
    expect(rn.status()).toEqual(before);
    expect(rn.hasReady()).toBe(false);
  });
});

describe('malformed messages are dropped without effect', () => {
  const snapOf = (metadata: unknown, data: unknown = new Uint8Array(0)) => ({ metadata, data }) as unknown as Snapshot;
  type F = { term: number; last: number };
  // Each case builds a message for member 1 following leader 2 at term t holding entries up to l.
  const snapMsg = ({ term: t, last: l }: F, metadata: object, data?: unknown) => ({
    ...newMessage(MessageType.Snap, 1, 2, t),
    snapshot: snapOf({ index: l + 5, term: t, confState: confState([1, 2, 3]), ...metadata }, data),
  });
  const followerCases: [string, (f: F) => Message][] = [
    ['negative term', ({ last: l }) => app(2, -1, l, 1, [], l)],
    ['non-integer index', ({ term: t, last: l }) => app(2, t, l + 0.5, t, [], l)],
    ['NaN commit', ({ term: t, last: l }) => app(2, t, l, t, [], NaN)],
    ['unknown type', ({ term: t }) => ({ ...newMessage(MessageType.Heartbeat, 1, 2, t), type: 99 as MessageType })],
    ['string type', ({ term: t }) => ({ ...newMessage(MessageType.Heartbeat, 1, 2, t), type: 'App' as unknown as MessageType })],
    ['no sender', ({ term: t, last: l }) => app(0, t, l, t, [], l)],
    ['entries not a list', ({ term: t, last: l }) => ({ ...app(2, t, l, t, [], l), entries: null as unknown as Entry[] })],
    ['entries with a gap', ({ term: t, last: l }) => app(2, t, l, t, [entry(l + 2, t)], l)],
    ['entries out of order', ({ term: t, last: l }) => app(2, t, l, t, [entry(l + 1, t), entry(l + 1, t)], l)],
    ['entry term past the message term', ({ term: t, last: l }) => app(2, t, l, t, [entry(l + 1, t + 1)], l)],
    ['entry terms decreasing', ({ term: t, last: l }) => app(2, t + 1, l, t, [entry(l + 1, t + 1), entry(l + 2, t)], l)],
    ['entry term 0', ({ term: t, last: l }) => app(2, t, l, t, [entry(l + 1, 0)], l)],
    ['entry term below the previous entry term', ({ term: t, last: l }) => app(2, t + 1, l, t, [entry(l + 1, t - 1)], l)],
    ['entry data not bytes', ({ term: t, last: l }) => app(2, t, l, t, [{ ...entry(l + 1, t), data: 'x' as unknown as Uint8Array }], l)],
    ['entry of unknown type', ({ term: t, last: l }) => app(2, t, l, t, [{ ...entry(l + 1, t), type: 7 as EntryType }], l)],
    ['heartbeat commit past the log', ({ term: t, last: l }) => ({ ...newMessage(MessageType.Heartbeat, 1, 2, t), commit: l + 3 })],
    ['heartbeat commit past the log at a higher term', ({ term: t, last: l }) => ({ ...newMessage(MessageType.Heartbeat, 1, 3, t + 1), commit: l + 3 })],
    ['snapshot missing', ({ term: t }) => newMessage(MessageType.Snap, 1, 2, t)],
    ['snapshot data not bytes', (f) => snapMsg(f, {}, 'x')],
    ['snapshot term past the message term', (f) => snapMsg(f, { term: f.term + 1 })],
    ['snapshot term NaN', (f) => snapMsg(f, { term: NaN })],
    ['snapshot term 0', (f) => snapMsg(f, { term: 0 })],
    ['snapshot conf state without voters', (f) => snapMsg(f, { confState: {} })],
    ['snapshot conf state with a bad id', (f) => snapMsg(f, { confState: confState([1, 2, -3]) })],
    ['read index response without context', ({ term: t }) => newMessage(MessageType.ReadIndexResp, 1, 2, t)],
  ];

  it.each(followerCases)('on a follower: %s', (_name, make) => {
    const { rn, term, last } = follower();
    const before = rn.status();
    expect(() => rn.step(make({ term, last }))).not.toThrow();
    expect(rn.status()).toEqual(before);
    expect(rn.hasReady()).toBe(false);
  });

  const leaderCases: [string, (term: number, last: number) => Message][] = [
    ['ack past the last index', (t, l) => appResp(2, t, l + 1)],
    ['response from a non-member', (t, l) => appResp(9, t, l)],
    ['forwarded proposal entry of unknown type', () => ({ ...newMessage(MessageType.ForwardProp, 1, 2, 0), entries: [{ ...entry(0, 0, 'x'), type: 7 as EntryType }] })],
    ['forwarded proposal entry without data', () => ({ ...newMessage(MessageType.ForwardProp, 1, 2, 0), entries: [{ index: 0, term: 0, type: EntryType.Normal } as Entry] })],
    ['forwarded proposal with a null entry', () => ({ ...newMessage(MessageType.ForwardProp, 1, 2, 0), entries: [null as unknown as Entry] })],
    ['read index without context', () => newMessage(MessageType.ReadIndex, 1, 2, 0)],
  ];

  it.each(leaderCases)('on a leader: %s', (_name, make) => {
    const rn = leaderOfThree();
    const before = rn.status();
    expect(() => rn.step(make(before.term, before.lastIndex))).not.toThrow();
    expect(rn.status()).toEqual(before);
    expect(rn.hasReady()).toBe(false);
  });
});

describe('replication', () => {
  it('a follower takes an append whose commit is past its entries, committing up to its last entry', () => {
    // A leader limited by messageBytesMax sends a lagging follower part of its log with its whole commit.
    const { rn, term, last } = follower();
    rn.step(app(2, term, last, term, [entry(last + 1, term, 'y')], last + 7));
    const rds = drain(rn);
    expect(rn.status()).toMatchObject({ commit: last + 1, applied: last + 1, lastIndex: last + 1 });
    expect(committed(rds).map((e) => e.index)).toEqual([last, last + 1]);
    expect(messages(rds)).toEqual([expect.objectContaining({ type: MessageType.AppResp, to: 2, index: last + 1, reject: false })]);
  });

  /** Members 1, 2, 3 with 1 elected, and a network that delivers until quiet, dropping what `drop` picks. */
  function cluster(extra: Partial<RaftConfig>) {
    const nodes = new Map([1, 2, 3].map((id) => [id, boot(id, [1, 2, 3], { checkQuorum: false, ...extra })]));
    const settle = (drop: (m: Message) => boolean = () => false) => {
      for (let round = 0; round < 1000; round++) {
        const msgs: Message[] = [];
        for (const rn of nodes.values()) msgs.push(...messages(drain(rn)));
        if (msgs.length === 0) return;
        for (const m of msgs) {
          if (drop(m)) continue;
          nodes.get(m.to)!.step(m);
          // The transport reports every snapshot it delivered.
          if (m.type === MessageType.Snap) nodes.get(m.from)!.reportSnapshot(m.to, false);
        }
      }
      throw new Error('network did not settle');
    };
    const leader = nodes.get(1)!;
    leader.campaign();
    settle();
    expect(leader.status().role).toBe(StateRole.Leader);
    return { nodes, leader, settle };
  }

  it('a follower that fell behind by many messages catches up', () => {
    const { nodes, leader, settle } = cluster({ messageBytesMax: 1 }); // one entry per append
    const isolate3 = (m: Message) => m.to === 3 || m.from === 3;
    const base = leader.status().lastIndex;
    for (let i = 0; i < 5; i++) {
      leader.propose(bytes(`e${i}`));
      settle(isolate3);
    }
    expect(leader.status().commit).toBe(base + 5);
    expect(nodes.get(3)!.status().lastIndex).toBe(base);

    for (let i = 0; i < 3; i++) {
      leader.tick(); // a heartbeat round reveals that 3 is behind
      settle();
    }
    expect(nodes.get(3)!.status()).toMatchObject({ commit: base + 5, applied: base + 5, lastIndex: base + 5 });
  });

  it('a follower whose whole inflight window of appends was lost catches up', () => {
    const { nodes, leader, settle } = cluster({ messageBytesMax: 1, inflightMessagesMax: 2 });
    expect(leader.status().progress!.get(3)!.state).toBe('replicate');
    const appendsTo3 = (m: Message) => m.to === 3 && m.type === MessageType.App;
    const base = leader.status().lastIndex;
    for (let i = 0; i < 4; i++) {
      leader.propose(bytes(`e${i}`));
      settle(appendsTo3);
    }
    expect(leader.status().commit).toBe(base + 4);
    expect(leader.status().progress!.get(3)).toMatchObject({ match: base, inflight: 2 });

    for (let i = 0; i < 3; i++) {
      leader.tick(); // heartbeats still reach 3, and its answers reach the leader
      settle();
    }
    expect(nodes.get(3)!.status()).toMatchObject({ commit: base + 4, applied: base + 4, lastIndex: base + 4 });
  });
});

describe('membership changes while a member is away', () => {
  it('a member removed and re-added while away rejoins through a snapshot that does not list it', () => {
    const nodes = new Map([1, 2, 3].map((id) => [id, boot(id, [1, 2, 3], { checkQuorum: false })]));
    const settle = (drop: (m: Message) => boolean) => {
      for (let round = 0; round < 1000; round++) {
        const msgs = [...nodes.values()].flatMap((rn) => messages(drain(rn)));
        if (msgs.length === 0) return;
        for (const m of msgs) {
          if (drop(m)) continue;
          nodes.get(m.to)!.step(m);
          if (m.type === MessageType.Snap) nodes.get(m.from)!.reportSnapshot(m.to, false);
        }
      }
      throw new Error('network did not settle');
    };
    const away3 = (m: Message) => m.to === 3 || m.from === 3;
    const leader = nodes.get(1)!;
    leader.campaign();
    settle(() => false);
    expect(leader.status().role).toBe(StateRole.Leader);

    const change = (type: ConfChangeType) =>
      leader.proposeConfChange({ transition: ConfChangeTransition.Auto, changes: [{ type, memberId: 3 }], context: null });
    change(ConfChangeType.RemoveNode);
    settle(away3);
    leader.propose(bytes('x'));
    settle(away3);
    leader.createSnapshot(bytes('image')); // its configuration is {1, 2}
    change(ConfChangeType.AddLearnerNode);
    settle(away3);
    expect(leader.status().confState).toMatchObject({ voters: [1, 2], learners: [3] });

    for (let i = 0; i < 5; i++) {
      leader.tick();
      settle(() => false);
    }
    expect(nodes.get(3)!.status()).toMatchObject({ lastIndex: leader.status().lastIndex, commit: leader.status().commit });
    expect(nodes.get(3)!.status().confState).toMatchObject({ voters: [1, 2], learners: [3] });
  });
});

describe('bootstrap membership', () => {
  /** A member's persisted state, kept the way a caller persists each Ready. */
  function persisting(rn: RawNode) {
    const stored = { hardState: { term: 0, vote: 0, commit: 0 }, snapshot: null as Snapshot | null, entries: [] as Entry[] };
    const take = () => {
      for (const rd of drain(rn)) {
        if (rd.snapshot) stored.snapshot = rd.snapshot;
        if (rd.hardState) stored.hardState = rd.hardState;
        if (rd.entries.length > 0) {
          const first = rd.entries[0].index;
          stored.entries = stored.entries.filter((e) => e.index < first).concat(rd.entries);
        }
        for (const e of rd.committedEntries) {
          if (e.type === EntryType.ConfChange) rn.applyConfChange(decodeConfChange(e.data));
        }
      }
    };
    return { stored, take };
  }

  it('the first Ready persists the membership as a snapshot at index 1, term 1', () => {
    const rn = new RawNode(cfg(1), null, [1, 2, 3]);
    const rd = rn.ready();
    expect(rd.snapshot?.metadata).toEqual({ index: 1, term: 1, confState: confState([1, 2, 3]) });
    expect(rd.snapshot?.data).toEqual(new Uint8Array(0));
    expect(rd.entries).toEqual([]);
    expect(rd.committedEntries).toEqual([]);
    expect(rd.hardState).toEqual({ term: 1, vote: 0, commit: 1 });
    expect(rd.mustSync).toBe(true);
    rn.advance(rd);
    expect(rn.status()).toMatchObject({ term: 1, commit: 1, applied: 1, lastIndex: 1, confState: confState([1, 2, 3]) });
    expect(rn.hasReady()).toBe(false);
  });

  it('a member without peers or state starts empty', () => {
    const rn = new RawNode(cfg(1), null, []);
    expect(rn.hasReady()).toBe(false);
    expect(rn.status()).toMatchObject({ term: 0, commit: 0, lastIndex: 0, confState: emptyConfState() });
  });

  it('a member restarted before any snapshot keeps the bootstrap membership', () => {
    const rn = new RawNode(cfg(1), null, [1, 2, 3]);
    const { stored, take } = persisting(rn);
    take();
    // Elected by 2, it appends its no-op and a proposal.
    rn.campaign();
    rn.step(newMessage(MessageType.PreVoteResp, 1, 2, rn.status().term + 1));
    rn.step(newMessage(MessageType.VoteResp, 1, 2, rn.status().term));
    expect(rn.status().role).toBe(StateRole.Leader);
    rn.propose(bytes('a'));
    take();
    expect(stored.entries.length).toBeGreaterThan(0);

    const restarted = new RawNode(cfg(1), { hardState: stored.hardState, snapshot: stored.snapshot, entries: stored.entries }, [1, 2, 3]);
    persisting(restarted).take();
    expect(restarted.status().confState.voters).toEqual([1, 2, 3]);
    // As a voter it campaigns after an election timeout.
    for (let i = 0; i < 10; i++) restarted.tick();
    expect(messages(drain(restarted)).filter((m) => m.type === MessageType.PreVote).map((m) => m.to)).toEqual([2, 3]);
  });

  it('a member added later rebuilds the membership by replaying the log, and cannot win alone', () => {
    const extra: Partial<RaftConfig> = { checkQuorum: false };
    const n1 = new RawNode(cfg(1, extra), null, [1]);
    const n2 = new RawNode(cfg(2, extra), null, []);
    const nodes = new Map([[1, n1], [2, n2]]);
    const settle = () => {
      for (let round = 0; round < 100; round++) {
        const msgs: Message[] = [];
        for (const rn of nodes.values()) {
          while (rn.hasReady()) {
            const rd = rn.ready();
            msgs.push(...rd.messages);
            for (const e of rd.committedEntries) if (e.type === EntryType.ConfChange) rn.applyConfChange(decodeConfChange(e.data));
            rn.advance(rd);
          }
        }
        if (msgs.length === 0) return;
        for (const m of msgs) nodes.get(m.to)?.step(m);
      }
    };
    settle();
    n1.campaign();
    settle();
    expect(n1.status().role).toBe(StateRole.Leader);
    n1.proposeConfChange({ transition: ConfChangeTransition.Auto, changes: [{ type: ConfChangeType.AddNode, memberId: 2 }], context: null });
    settle();
    n1.tick();
    settle();
    expect(n2.status().lastIndex).toBe(n1.status().lastIndex);
    expect(n2.status().confState.voters).toEqual([1, 2]);

    // 1 goes silent: 2 campaigns, but without 1's vote it must not become leader.
    nodes.delete(1);
    for (let i = 0; i < 40; i++) {
      n2.tick();
      settle();
    }
    expect(n2.status().role).not.toBe(StateRole.Leader);
  });
});

describe('membership through RawNode', () => {
  it('applyConfChange refuses an unknown transition', () => {
    const rn = leaderOfThree();
    const before = rn.status();
    const cs = rn.applyConfChange({
      transition: 7 as ConfChangeTransition,
      changes: [{ type: ConfChangeType.AddNode, memberId: 4 }],
      context: null,
    });
    expect(cs).toEqual(before.confState);
    expect(rn.status()).toEqual(before);
  });

  it('a member added and removed in one joint change is not replicated to', () => {
    const rn = leaderOfThree();
    rn.applyConfChange({
      transition: ConfChangeTransition.JointExplicit,
      changes: [
        { type: ConfChangeType.AddNode, memberId: 4 },
        { type: ConfChangeType.RemoveNode, memberId: 4 },
      ],
      context: null,
    });
    expect([...rn.status().progress!.keys()]).toEqual([1, 2, 3]);
    rn.tick(); // heartbeat
    expect(messages(drain(rn)).filter((m) => m.to === 4)).toEqual([]);
  });
});

describe('snapshots', () => {
  function leaderWithEntries(n: number): RawNode {
    const rn = leaderOfOne();
    for (let i = 0; i < n; i++) {
      rn.propose(bytes(`e${i}`));
      drain(rn);
    }
    return rn;
  }

  it('createSnapshot snapshots at applied and compacts the log', () => {
    const rn = leaderWithEntries(5); // ..., no-op, e0..e4 at b-4..b
    const { term: t, lastIndex: b } = rn.status();
    const s = rn.createSnapshot(bytes('image'));
    expect(s.metadata).toEqual({ index: b, term: t, confState: confState([1]) });
    expect(text(s.data)).toBe('image');
    expect(rn.raft.log.firstIndex()).toBe(b + 1);
    expect(rn.raft.log.term(b)).toBe(t);
    expect(rn.raft.log.term(b - 1)).toBeUndefined();
    expect(rn.raft.log.snapshot).toBe(s);
    expect(rn.status()).toMatchObject({ commit: b, applied: b, lastIndex: b });
    expect(rn.hasReady()).toBe(false);

    rn.propose(bytes('after'));
    expect(committed(drain(rn)).map((e) => [e.index, text(e.data)])).toEqual([[b + 1, 'after']]);
  });

  it('createSnapshot keeps the requested number of entries', () => {
    const rn = leaderWithEntries(5);
    const { term: t, lastIndex: b } = rn.status();
    rn.createSnapshot(bytes('image'), 2);
    expect(rn.raft.log.firstIndex()).toBe(b - 1);
    expect(rn.raft.log.term(b - 2)).toBe(t);
    expect(rn.raft.log.term(b - 3)).toBeUndefined();
  });

  it('createSnapshot refuses while a Ready is outstanding', () => {
    const rn = leaderWithEntries(1);
    rn.propose(bytes('x'));
    rn.ready();
    expect(() => rn.createSnapshot(bytes('image'))).toThrow(/outstanding/);
  });

  it('a fresh RawNode restored from a snapshot resumes after it', () => {
    const s = leaderWithEntries(5).createSnapshot(bytes('image'));
    const { index: b, term: t } = s.metadata;
    const rn = new RawNode(cfg(1), { hardState: { term: t, vote: 1, commit: b }, snapshot: s, entries: [] }, []);
    expect(rn.status()).toMatchObject({ term: t, vote: 1, commit: b, applied: b, lastIndex: b, confState: confState([1]) });
    expect(rn.hasReady()).toBe(false);

    rn.campaign();
    expect(rn.status()).toMatchObject({ role: StateRole.Leader, term: t + 1 });
    rn.propose(bytes('next'));
    expect(committed(drain(rn)).map((e) => [e.index, e.term, text(e.data)])).toEqual([
      [b + 1, t + 1, ''],
      [b + 2, t + 1, 'next'],
    ]);
  });

  it('a fresh RawNode installs a snapshot sent by a leader', () => {
    const s: Snapshot = { metadata: { index: 6, term: 1, confState: confState([1, 2]) }, data: bytes('image') };
    const rn = new RawNode(cfg(2), null, []);
    const m = newMessage(MessageType.Snap, 2, 1, 1);
    m.snapshot = s;
    rn.step(m);

    const rd = rn.ready();
    expect(rd.snapshot).toBe(s);
    expect(rd.hardState).toEqual({ term: 1, vote: 0, commit: 6 });
    expect(rd.mustSync).toBe(true);
    expect(rd.committedEntries).toEqual([]);
    expect(rd.messages).toEqual([expect.objectContaining({ type: MessageType.AppResp, to: 1, index: 6, reject: false })]);
    rn.advance(rd);
    expect(rn.status()).toMatchObject({ lead: 1, term: 1, commit: 6, applied: 6, lastIndex: 6, confState: confState([1, 2]) });
    expect(rn.hasReady()).toBe(false);

    rn.step({ ...app(1, 1, 6, 1, [entry(7, 1, 'x')], 7), to: 2 });
    const rds = drain(rn);
    expect(committed(rds).map((e) => [e.index, text(e.data)])).toEqual([[7, 'x']]);
    expect(messages(rds)).toEqual([expect.objectContaining({ type: MessageType.AppResp, to: 1, index: 7 })]);
  });

  it('a follower behind the compaction point is sent a snapshot after its first rejection', () => {
    // Member 1 restarts holding a snapshot at 100 (term 2) and entries 101..120 (term 3).
    const s: Snapshot = { metadata: { index: 100, term: 2, confState: confState([1, 2, 3]) }, data: bytes('image') };
    const entries = Array.from({ length: 20 }, (_, i) => entry(101 + i, 3));
    const rn = new RawNode(cfg(1), { hardState: { term: 3, vote: 1, commit: 120 }, snapshot: s, entries }, []);
    rn.campaign();
    rn.step(newMessage(MessageType.PreVoteResp, 1, 2, 4));
    rn.step(newMessage(MessageType.VoteResp, 1, 2, 4));
    expect(rn.status()).toMatchObject({ role: StateRole.Leader, term: 4, lastIndex: 121 });
    drain(rn);

    // Member 2 holds entries up to 50, all of term 1: it rejects the append after 120.
    const reject = { ...newMessage(MessageType.AppResp, 1, 2, 4), index: 120, reject: true, rejectHint: 50, logTerm: 1 };
    rn.step(reject);
    const sent = messages(drain(rn)).filter((m) => m.to === 2);
    expect(sent.map((m) => m.type)).toEqual([MessageType.Snap]);
    expect(sent[0].snapshot).toBe(s);
  });

  it('a member added after the latest snapshot joins through that snapshot and the entries after it', () => {
    const n1 = leaderWithEntries(3);
    n1.createSnapshot(bytes('image')); // its configuration is {1}
    n1.proposeConfChange({ transition: ConfChangeTransition.Auto, changes: [{ type: ConfChangeType.AddNode, memberId: 2 }], context: null });
    drain(n1);
    expect(n1.status().confState.voters).toEqual([1, 2]);
    const n2 = new RawNode(cfg(2), null, []);
    const nodes = new Map([[1, n1], [2, n2]]);
    for (let round = 0; round < 20; round++) {
      n1.tick();
      for (const [id, rn] of nodes) {
        for (const m of messages(drain(rn))) {
          nodes.get(m.to)!.step(m);
          // The transport reports every snapshot it delivered.
          if (m.type === MessageType.Snap) nodes.get(id)!.reportSnapshot(m.to, false);
        }
      }
    }
    expect(n2.status()).toMatchObject({ lastIndex: n1.status().lastIndex, commit: n1.status().commit, confState: confState([1, 2]) });
  });

  it('a member installs a committed snapshot whose configuration drops it, and stops campaigning', () => {
    const { rn, term, last } = follower();
    const m = newMessage(MessageType.Snap, 1, 2, term);
    const s: Snapshot = { metadata: { index: last + 5, term, confState: confState([2, 3]) }, data: bytes('image') };
    m.snapshot = s;
    rn.step(m);
    const rds = drain(rn);
    expect(rds.map((rd) => rd.snapshot).filter((x) => x !== null)).toEqual([s]);
    expect(rn.status()).toMatchObject({ commit: last + 5, applied: last + 5, lastIndex: last + 5, confState: confState([2, 3]) });
    for (let i = 0; i < 30; i++) rn.tick();
    expect(messages(drain(rn)).filter((x) => x.type === MessageType.PreVote || x.type === MessageType.Vote)).toEqual([]);
  });
});

describe('Ready.sendBeforePersist', () => {
  it("lets a leader of three send its appends while it persists them, revealing only a durable commit", () => {
    const rn = leaderOfThree();
    rn.propose(bytes('a'));
    const rd = rn.ready();
    expect(rd.entries.length).toBe(1);
    expect(rd.messages.filter((m) => m.type === MessageType.App).length).toBe(2);
    expect(rd.sendBeforePersist).toBe(true);
    for (const m of rd.messages) expect(m.commit).toBeLessThan(rd.entries[0].index);
    rn.advance(rd);
  });

  it('holds back the messages of a leader that is a quorum alone (its commit covers the unsynced entry)', () => {
    const rn = leaderOfOne();
    rn.propose(bytes('a'));
    const rd = rn.ready();
    expect(rd.committedEntries.map((e) => e.index)).toContain(rd.entries[0].index);
    expect(rd.sendBeforePersist).toBe(false);
    rn.advance(rd);
  });

  it('holds back a follower\'s and a candidate\'s messages until their state is durable', () => {
    const { rn, term, last } = follower();
    rn.step(app(2, term, last, term, [entry(last + 1, term, 'y')], last));
    const rd = rn.ready();
    expect(rd.messages.some((m) => m.type === MessageType.AppResp)).toBe(true);
    expect(rd.sendBeforePersist).toBe(false);
    rn.advance(rd);
    drain(rn);
    rn.campaign();
    const votes = rn.ready();
    expect(votes.messages.length).toBeGreaterThan(0);
    expect(votes.sendBeforePersist).toBe(false);
  });
});
