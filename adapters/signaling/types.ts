// The signaling seam of the WebRTC transport: members of one cluster find each other and
// exchange the offers, answers and ICE candidates that set up a data channel. Signaling is
// where members are admitted: a member that does not present the cluster's admission secret
// never learns of the others and never receives a signal from them (docs/security.md).

import type { MemberId } from '../../src/raft/types.ts';

export interface SignalingIdentity {
  /** Only members of the same cluster see each other. */
  cluster: string;
  /** The admission secret (a Node member's --admission-secret): a member presenting another one is refused. */
  secret: string;
  id: MemberId;
}

export interface SignalingHandlers {
  /** A signal another member addressed to this one; `data` is that member's, unvalidated. */
  onSignal(from: MemberId, data: unknown): void;
  /** A member joined (`present` true) or left. Joining members are announced once each. */
  onPresence(id: MemberId, present: boolean): void;
  /** Signaling stopped for good (refused, or the server went away and could not be reached). */
  onClosed?(reason: string): void;
}

export interface Signaling {
  readonly id: MemberId;
  /** Joins the cluster; rejects with a SignalingError when refused. Called once. */
  join(handlers: SignalingHandlers): Promise<void>;
  /** Best effort: a signal to a member that is not there is dropped. */
  send(to: MemberId, data: unknown): void;
  /** Leaves the cluster (others see the member go) and releases everything. Repeatable. */
  close(): void;
  /**
   * Optional: signaling that decides who founds its cluster (WebSocket: the server, once per
   * cluster). Resolves with the id of the one member that may found it, the same for every
   * caller: this member's own id means "found it". Every member of a cluster claims once (the
   * answer matters only to a member with no state that heard nobody), and the claim is
   * repeated after every rejoin, so a restarted server names a member of the cluster already
   * there. Signaling without it (BroadcastChannel) leaves founding to the caller (tabs of one
   * profile take a Web Lock: founding.ts).
   */
  claimFounding?(): Promise<MemberId>;
}

export type SignalingErrorCode = 'refused' | 'unreachable' | 'closed';

export class SignalingError extends Error {
  constructor(
    readonly code: SignalingErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** A signal's JSON must stay small: SDP blobs are a few KiB. */
export const signalBytesMax = 64 * 1024;
export const secretBytesMax = 256;
export const clusterNameBytesMax = 256;

export function isMemberId(v: unknown): v is MemberId {
  return typeof v === 'number' && Number.isSafeInteger(v) && v > 0;
}

/** Why an identity cannot join, or null. */
export function identityProblem(who: SignalingIdentity): string | null {
  if (!isMemberId(who.id)) return `member id ${String(who.id)} is not a positive safe integer`;
  if (typeof who.cluster !== 'string' || who.cluster.length === 0) return 'cluster name is empty';
  if (typeof who.secret !== 'string') return 'admission secret is not a string';
  if (new TextEncoder().encode(who.cluster).length > clusterNameBytesMax) return `cluster name is longer than ${clusterNameBytesMax} bytes`;
  if (new TextEncoder().encode(who.secret).length > secretBytesMax) return `admission secret is longer than ${secretBytesMax} bytes`;
  return null;
}
