// Admission on the peer port: a member proves in its Hello that it knows the cluster's admission
// secret without sending it. The proof is an HMAC-SHA256, keyed by the secret, of everything
// the Hello claims (protocol version, cluster token, from, to), so a proof made for one link
// does not open another. On plain TCP a recorded Hello can be replayed to open the same link
// again, as every other byte on plain TCP can be replayed or forged: peer TLS is what protects
// the stream itself (docs/security.md).

import { createHmac, timingSafeEqual } from 'node:crypto';
import type { MemberId } from '../../../src/raft/types.ts';

export const helloProofBytes = 32;

export interface HelloClaims {
  version: number;
  clusterToken: string;
  from: MemberId;
  to: MemberId;
}

export function helloProof(secret: string, h: HelloClaims): Uint8Array {
  const mac = createHmac('sha256', secret);
  mac.update(`meshkv peer hello\0${h.version}\0${h.clusterToken}\0${h.from}\0${h.to}`);
  return new Uint8Array(mac.digest());
}

/** Whether `proof` shows knowledge of `secret` for exactly these claims (constant time in the proof). */
export function helloProofValid(secret: string, h: HelloClaims, proof: Uint8Array): boolean {
  if (proof.length !== helloProofBytes) return false;
  return timingSafeEqual(helloProof(secret, h), proof);
}
