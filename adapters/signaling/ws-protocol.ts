// The WebSocket signaling protocol, shared by the client and the Node server: JSON text
// messages. The client's first message is a join: cluster name, admission secret, member id
// and the member's key, a random string the client makes once and repeats on every
// reconnection. The server answers joined (with the members already there) or closes the
// socket with a code and a reason. The first connection to join with an id holds it: a join
// with the same id and key replaces it (the member reconnected before the server saw its old
// socket go), a join with the same id and another key is turned away (`closeInUse`) while it
// is held, so nobody who knows the secret can take over a member's id. Afterwards the client
// sends signals addressed to a member and the server relays them with the sender's id, which
// it took from the join: a member cannot sign a signal as another.
//
// Founding. The server decides who founds the cluster it serves, once: a joined member with
// no cluster state that heard no member answer its probe sends `found`, and the server
// answers `founder` with the id of the one member that may found it: the first to ask, or,
// on a server a Node member hosts, that member (its cluster exists by configuration). Every
// member asking gets the same id for the server's lifetime, so two members that each see
// nobody (a roster not yet complete, a member too slow to answer within the probe window)
// cannot both found one.

import type { MemberId } from '../../src/raft/types.ts';

export type ClientMessage = { type: 'join'; cluster: string; secret: string; id: MemberId; key: string } | { type: 'signal'; to: MemberId; data: unknown } | { type: 'found' };

export type ServerMessage =
  | { type: 'joined'; members: MemberId[] }
  | { type: 'presence'; id: MemberId; present: boolean }
  | { type: 'signal'; from: MemberId; data: unknown }
  | { type: 'founder'; id: MemberId };

/** The server refused the join (wrong secret or cluster, bad id): do not retry. */
export const closeRefused = 4001;
/** A newer connection of the same member (same id and key) joined. */
export const closeReplaced = 4002;
/** No join within the server's timeout, or a message that breaks the protocol. */
export const closeProtocol = 4003;
/** Another connection, with another key, holds this member id: retry later (it may be this member's own stale connection). */
export const closeInUse = 4004;

/** A member key: 16 to 64 characters of base64url; the client makes one from 16 random bytes. */
export const memberKeyPattern = /^[A-Za-z0-9_-]{16,64}$/;

/** A fresh member key (WebCrypto: browsers and Node alike). */
export function newMemberKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** Parses a JSON text message into an object with a string `type`, or null. */
export function parseMessage(raw: unknown): { type: string; [k: string]: unknown } | null {
  if (typeof raw !== 'string') return null;
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null || typeof (v as { type?: unknown }).type !== 'string') return null;
  return v as { type: string };
}
