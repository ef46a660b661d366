// etcd's JWT auth tokens (`--auth-token jwt,...`): a token is `header.claims.signature`, the
// claims being etcd's {"exp","revision","username"}, signed by the member that checked the
// password with its private key and verified by any member holding the public key, so a token
// needs no log entry and no member-side state. Signing and verifying go through the WebCrypto
// the adapter injects (Node's and the browser's are the same API); the core reads no global
// crypto and no global clock.
//
// As in etcd 3.4, a token carries the auth revision it was issued at: once any auth change is
// applied after it, it is refused with "revision of auth store is old" and the client
// authenticates again, which is how a deleted user or a changed password ends a stateless token.

import { GrpcStatus } from '../grpc-status.ts';
import { AuthError, AuthErrors } from './auth-errors.ts';

/** The sign methods etcd 3.4 takes (jwt-go's names). */
export const jwtSignMethods = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'HS256', 'HS384', 'HS512'] as const;
export type JwtSignMethod = (typeof jwtSignMethods)[number];

/** etcd's default JWT lifetime when `ttl=` is not given: 5 minutes. */
export const jwtTtlMsDefault = 5 * 60_000;

/** The parts of WebCrypto JWT tokens need. */
export type JwtSubtle = Pick<SubtleCrypto, 'importKey' | 'sign' | 'verify'>;

export interface JwtTokens {
  method: JwtSignMethod;
  /** Null on a verify-only member (given the public key alone): it cannot answer Authenticate. */
  signKey: CryptoKey | null;
  verifyKey: CryptoKey;
  ttlMs: number;
  subtle: JwtSubtle;
  /** Wall-clock milliseconds since the epoch (a token's `exp` is wall time, unlike Raft's clock). */
  wallClockMs: () => number;
}

/** What a verified token says. */
export interface JwtClaims {
  username: string;
  revision: number;
}

/**
 * What a member does with JWT tokens. KvMember takes one and imports only this type, so a tab
 * (which has no JWT keys) ships none of this file; the Node adapter makes one with jwtAuth.
 */
export interface JwtAuth {
  /** A token for `username` at auth revision `revision`; etcd's ErrVerifyOnly on a verify-only member. */
  sign(username: string, revision: number): Promise<string>;
  verify(token: string): Promise<JwtClaims>;
}

export function jwtAuth(t: JwtTokens): JwtAuth {
  return { sign: (username, revision) => signJwt(t, username, revision), verify: (token) => verifyJwt(t, token) };
}

/** etcd's ErrVerifyOnly: Authenticate on a member given only the public key. */
export const verifyOnlyMessage = 'auth: token signing attempted with verify-only key';

const hashOf = (method: JwtSignMethod) => `SHA-${method.slice(2)}`;
const hashBytes = (method: JwtSignMethod) => Number(method.slice(2)) / 8;
const curveOf = { ES256: 'P-256', ES384: 'P-384', ES512: 'P-521' } as const;

/** WebCrypto's import parameters for `method`'s keys. */
function jwtImportParams(method: JwtSignMethod): RsaHashedImportParams | EcKeyImportParams | HmacImportParams {
  const hash = hashOf(method);
  switch (method.slice(0, 2)) {
    case 'RS':
      return { name: 'RSASSA-PKCS1-v1_5', hash };
    case 'PS':
      return { name: 'RSA-PSS', hash };
    case 'ES':
      return { name: 'ECDSA', namedCurve: curveOf[method as keyof typeof curveOf] };
    default:
      return { name: 'HMAC', hash };
  }
}

/** WebCrypto's sign/verify parameters: JWT's ECDSA signatures are r‖s as WebCrypto's are; PSS salts are the hash's length, as jwt-go signs. */
function signParams(method: JwtSignMethod): AlgorithmIdentifier | RsaPssParams | EcdsaParams {
  switch (method.slice(0, 2)) {
    case 'RS':
      return { name: 'RSASSA-PKCS1-v1_5' };
    case 'PS':
      return { name: 'RSA-PSS', saltLength: hashBytes(method) };
    case 'ES':
      return { name: 'ECDSA', hash: hashOf(method) };
    default:
      return { name: 'HMAC' };
  }
}

/**
 * Imports the keys for `method`: `privateKey` as PKCS#8 DER (or the raw secret for HS*), or
 * null for a verify-only member; `publicKey` as SPKI DER (ignored for HS*, whose one secret both
 * signs and verifies).
 */
export async function importJwtKeys(
  subtle: JwtSubtle,
  method: JwtSignMethod,
  keys: { privateKey: Uint8Array<ArrayBuffer> | null; publicKey: Uint8Array<ArrayBuffer> | null },
): Promise<{ signKey: CryptoKey | null; verifyKey: CryptoKey }> {
  const params = jwtImportParams(method);
  if (params.name === 'HMAC') {
    if (keys.privateKey === null) throw new Error('auth: missing key data');
    const secret = await subtle.importKey('raw', keys.privateKey, params, false, ['sign', 'verify']);
    return { signKey: secret, verifyKey: secret };
  }
  if (keys.publicKey === null) throw new Error('auth: missing key data');
  const verifyKey = await subtle.importKey('spki', keys.publicKey, params, false, ['verify']);
  const signKey = keys.privateKey === null ? null : await subtle.importKey('pkcs8', keys.privateKey, params, false, ['sign']);
  return { signKey, verifyKey };
}

function base64url(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function unbase64url(text: string): Uint8Array<ArrayBuffer> | null {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) return null;
  try {
    return Uint8Array.from(atob(text.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0));
  } catch {
    return null;
  }
}

const utf8 = new TextEncoder();

/** A token for `username` at auth revision `revision`, valid for the configured ttl (etcd's jwt assign). */
export async function signJwt(t: JwtTokens, username: string, revision: number): Promise<string> {
  if (t.signKey === null) throw new AuthError(GrpcStatus.Unknown, verifyOnlyMessage);
  const header = base64url(utf8.encode(JSON.stringify({ alg: t.method, typ: 'JWT' })));
  const exp = Math.floor((t.wallClockMs() + t.ttlMs) / 1000);
  const claims = base64url(utf8.encode(JSON.stringify({ exp, revision, username })));
  const signature = await t.subtle.sign(signParams(t.method), t.signKey, utf8.encode(`${header}.${claims}`));
  return `${header}.${claims}.${base64url(new Uint8Array(signature))}`;
}

/**
 * The claims of a token this cluster's key signed with the configured method and that has not
 * expired; etcd's "invalid auth token" otherwise. The auth revision is the caller's to check.
 */
export async function verifyJwt(t: JwtTokens, token: string): Promise<JwtClaims> {
  const parts = token.split('.');
  if (parts.length !== 3) throw AuthErrors.invalidAuthToken();
  const [headerBytes, claimsBytes, signature] = parts.map(unbase64url);
  if (!headerBytes || !claimsBytes || !signature) throw AuthErrors.invalidAuthToken();
  let header: unknown;
  let claims: unknown;
  try {
    header = JSON.parse(new TextDecoder().decode(headerBytes));
    claims = JSON.parse(new TextDecoder().decode(claimsBytes));
  } catch {
    throw AuthErrors.invalidAuthToken();
  }
  // The method is the member's, never the token's: a token naming another (or "none") is refused.
  if ((header as { alg?: unknown } | null)?.alg !== t.method) throw AuthErrors.invalidAuthToken();
  const valid = await t.subtle.verify(signParams(t.method), t.verifyKey, signature, utf8.encode(`${parts[0]}.${parts[1]}`)).catch(() => false);
  if (!valid) throw AuthErrors.invalidAuthToken();
  const { username, revision, exp } = (claims ?? {}) as { username?: unknown; revision?: unknown; exp?: unknown };
  if (typeof username !== 'string' || typeof revision !== 'number' || typeof exp !== 'number') throw AuthErrors.invalidAuthToken();
  if (Math.floor(t.wallClockMs() / 1000) > exp) throw AuthErrors.invalidAuthToken();
  return { username, revision };
}
