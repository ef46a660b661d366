// The WebSocket signaling protocol, shared by the client and the Node server: JSON text
// messages. The client's first message is a join; the server answers joined (with the members
// already there) or closes the socket with `closeRefused` and a reason. Afterwards the client
// sends signals addressed to a member and the server relays them with the sender's id, which
// it took from the join: a member cannot sign a signal as another.

import type { MemberId } from '../../src/raft/types.ts';

export type ClientMessage = { type: 'join'; cluster: string; token: string; id: MemberId } | { type: 'signal'; to: MemberId; data: unknown };

export type ServerMessage =
  | { type: 'joined'; members: MemberId[] }
  | { type: 'presence'; id: MemberId; present: boolean }
  | { type: 'signal'; from: MemberId; data: unknown };

/** The server refused the join (wrong token or cluster, bad id): do not retry. */
export const closeRefused = 4001;
/** Another connection joined with the same member id (the member restarted). */
export const closeReplaced = 4002;
/** No join within the server's timeout, or a message that breaks the protocol. */
export const closeProtocol = 4003;

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
