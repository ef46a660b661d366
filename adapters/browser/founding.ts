// How a tab starts: restart from its own state, found a new cluster, or join a running one.
// A cluster with nobody in it must get exactly one founder even when several tabs open at
// once, and none beside a running cluster a member is slow to announce, so a tab founds only
// when nobody answered its probe AND it holds the right to found: with WebSocket signaling the
// server grants that right to one member per cluster, ever (a server a Node member hosts never
// grants it: that member's cluster exists by configuration); with BroadcastChannel signaling,
// which has no server, the decision runs under an exclusive Web Lock per cluster name, held
// until the founder's member is up and answers probes, which every tab of the profile shares.
// A tab refused the right waits, probing again and again, until a member of the cluster
// answers, and joins it. Tabs that join or restart claim too, without waiting for the answer,
// so that a restarted server (which forgets its founder) names a member of the running cluster.

import type { BootstrapMember, ControlChannel, ControlMessage } from '../signaling/control.ts';
import type { MemberId } from '../../src/raft/types.ts';

export interface StartPlan {
  /** Raft's first configuration: [id] for a founder, [] otherwise (storage decides, or the leader adds it). */
  peers: MemberId[];
  /** The cluster's founding member table, seeded into the member's table (see control.ts). */
  bootstrapMembers: BootstrapMember[];
  founded: boolean;
  /** Releases the founding lock; call once the member is up (no-op when none was taken). */
  release(): void;
}

export interface PlanOptions {
  cluster: string;
  id: MemberId;
  name: string;
  /** The member's storage already holds Raft state. */
  hasState: boolean;
  channel: ControlChannel;
  /** How long to wait for an answer to the probe before founding. */
  probeWindowMs: number;
  /** The key the bootstrap members are kept under (per member database). */
  bootstrapKey: string;
  log: (level: 'info', msg: string) => void;
}

export async function planStart(o: PlanOptions): Promise<StartPlan> {
  if (o.hasState) {
    // This member's cluster is here: a server that forgot its founder (restarted) learns it.
    claimInBackground(o.channel);
    return { peers: [], bootstrapMembers: loadBootstrap(o.bootstrapKey), founded: false, release: () => {} };
  }
  const release = await takeLock(`meshkv-founding/${o.cluster}`);
  try {
    const { bootstrapMembers, founded } = await foundOrJoin(o);
    // Saved before the member writes any state: a restart must seed the same table.
    localStorage.setItem(o.bootstrapKey, JSON.stringify(bootstrapMembers));
    return { peers: founded ? [o.id] : [], bootstrapMembers, founded, release };
  } catch (err) {
    release();
    throw err;
  }
}

/**
 * The decision of a member with no state of its own: join the cluster whose member answers
 * its probe, or found one if nobody does and the signaling grants it the founding (signaling
 * without a founding claim leaves it to the founding lock the caller holds). Refused, it
 * waits for an answer from a member of the cluster the granted member founded.
 */
export async function foundOrJoin(o: Pick<PlanOptions, 'id' | 'name' | 'channel' | 'probeWindowMs' | 'log'>): Promise<{ bootstrapMembers: BootstrapMember[]; founded: boolean }> {
  const running = await probe(o.channel, o.probeWindowMs, false);
  if (running !== null) {
    claimInBackground(o.channel);
    return { bootstrapMembers: running, founded: false };
  }
  const founder = o.channel.claimFounding ? await o.channel.claimFounding() : o.id;
  if (founder === o.id) return { bootstrapMembers: [{ id: o.id, name: o.name, peerURLs: [peerUrlOf(o.id)] }], founded: true };
  o.log('info', `signaling names member ${founder} the founder of this cluster, and no member of it answered within ${o.probeWindowMs} ms; waiting for one to answer`);
  return { bootstrapMembers: (await probe(o.channel, o.probeWindowMs, true))!, founded: false };
}

/**
 * Claims the founding for a member whose cluster is already here; the answer does not matter
 * (the claim only makes a server that forgot its founder name a member of this cluster), nor
 * does a claim cut short by closing.
 */
function claimInBackground(channel: ControlChannel): void {
  channel.claimFounding?.().catch(() => {});
}

/** How every tab is reached: through signaling by its id. */
export function peerUrlOf(id: MemberId): string {
  return `webrtc://${id}`;
}

function loadBootstrap(key: string): BootstrapMember[] {
  const raw = localStorage.getItem(key);
  return raw === null ? [] : (JSON.parse(raw) as BootstrapMember[]);
}

/** Waits for the exclusive Web Lock `name`; resolves with its release once held. */
function takeLock(name: string): Promise<() => void> {
  return new Promise((resolveTaken, rejectTaken) => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    navigator.locks.request(name, { mode: 'exclusive' }, async () => {
      resolveTaken(release);
      await held;
    }).catch(rejectTaken);
  });
}

/**
 * Asks every member present (and each that turns up meanwhile) whether it is in a cluster.
 * Resolves with the bootstrap members of the first that is; after `windowMs` with no such
 * answer, with null, or (`untilAnswered`) asks everyone again, every `windowMs`, for as long as
 * it takes: probes and replies are best effort.
 */
function probe(channel: ControlChannel, windowMs: number, untilAnswered: boolean): Promise<BootstrapMember[] | null> {
  return new Promise((resolve) => {
    const finish = (result: BootstrapMember[] | null) => {
      clearInterval(timer);
      stopControl();
      stopPresence();
      resolve(result);
    };
    const stopControl = channel.onControl((_from, msg: ControlMessage) => {
      if (msg.kind === 'probe-reply' && msg.inCluster) finish(msg.bootstrapMembers);
    });
    const stopPresence = channel.onPresence((id, present) => {
      if (present) channel.send(id, { kind: 'probe' });
    });
    const timer = setInterval(() => (untilAnswered ? channel.broadcast({ kind: 'probe' }) : finish(null)), windowMs);
    channel.broadcast({ kind: 'probe' });
  });
}
