// How a tab starts: restart from its own state, found a new cluster, or join a running one.
// A cluster with nobody in it must get exactly one founder even when several tabs open at
// once, so the decision "is anyone there? otherwise found it" runs under an exclusive Web Lock
// per cluster name, held until the founder's member is up and answers probes. Tabs of one
// browser profile share the lock; members reached through WebSocket signaling (Node members,
// other browsers) are in a cluster by configuration and answer the probe, so a tab there joins.

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
}

export async function planStart(o: PlanOptions): Promise<StartPlan> {
  if (o.hasState) return { peers: [], bootstrapMembers: loadBootstrap(o.bootstrapKey), founded: false, release: () => {} };
  const release = await takeLock(`meshkv-founding/${o.cluster}`);
  try {
    const running = await probe(o.channel, o.probeWindowMs);
    const founded = running === null;
    const bootstrapMembers = running ?? [{ id: o.id, name: o.name, peerURLs: [peerUrlOf(o.id)] }];
    // Saved before the member writes any state: a restart must seed the same table.
    localStorage.setItem(o.bootstrapKey, JSON.stringify(bootstrapMembers));
    return { peers: founded ? [o.id] : [], bootstrapMembers, founded, release };
  } catch (err) {
    release();
    throw err;
  }
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
 * Asks every member present (and each that turns up within `windowMs`) whether it is in a
 * cluster. Resolves with the bootstrap members of the first that is, or null if none answers so.
 */
function probe(channel: ControlChannel, windowMs: number): Promise<BootstrapMember[] | null> {
  return new Promise((resolve) => {
    const finish = (result: BootstrapMember[] | null) => {
      clearTimeout(timer);
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
    const timer = setTimeout(() => finish(null), windowMs);
    channel.broadcast({ kind: 'probe' });
  });
}
