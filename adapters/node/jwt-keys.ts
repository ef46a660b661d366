// The key files of `--auth-token jwt,...`, read as etcd reads them (PEM: PKCS#1 or PKCS#8 private
// keys, SPKI public keys; the raw file for HS*), and handed to the core's JWT tokens as
// WebCrypto keys. Every member of a cluster needs the public key (and, to answer Authenticate,
// the private key): a token one member signs is verified by all.

import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { importJwtKeys, jwtAuth, type JwtAuth, type JwtSignMethod } from '../../src/server/jwt.ts';
import type { AuthTokenConfig } from './security-config.ts';

export class JwtKeyError extends Error {}

const curves: Partial<Record<JwtSignMethod, string>> = { ES256: 'prime256v1', ES384: 'secp384r1', ES512: 'secp521r1' };

function fail(why: string): never {
  throw new JwtKeyError(`--auth-token: auth: invalid auth options (problem loading JWT options: ${why})`);
}

function readKeyFile(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    return fail(`open ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** Refuses a key of another kind than `method` signs with, in etcd's words ("key is not a valid RSA public key"). */
function checkKind(method: JwtSignMethod, key: KeyObject, which: 'public' | 'private'): void {
  const rsa = method.startsWith('RS') || method.startsWith('PS');
  const kind = key.asymmetricKeyType;
  if (rsa && kind !== 'rsa') fail(`key is not a valid RSA ${which} key`);
  if (!rsa && (kind !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== curves[method])) fail(`key is not a valid ECDSA ${which} key for ${method}`);
}

function der(key: KeyObject, type: 'pkcs8' | 'spki'): Uint8Array<ArrayBuffer> {
  const bytes = key.export({ format: 'der', type }) as Buffer;
  return new Uint8Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)) as Uint8Array<ArrayBuffer>;
}

/** Reads and imports the keys into the member's JWT signer and verifier; `wallClockMs` dates tokens (`exp`). */
export async function loadJwtTokens(config: Extract<AuthTokenConfig, { kind: 'jwt' }>, wallClockMs: () => number): Promise<JwtAuth> {
  const subtle = globalThis.crypto.subtle;
  const method = config.signMethod;
  let keys: { signKey: CryptoKey | null; verifyKey: CryptoKey };
  if (method.startsWith('HS')) {
    const secret = readKeyFile(config.privateKeyFile!);
    keys = await importJwtKeys(subtle, method, { privateKey: new Uint8Array(secret) as Uint8Array<ArrayBuffer>, publicKey: null });
  } else {
    const parse = <T>(what: string, f: () => T): T => {
      try {
        return f();
      } catch (err) {
        return fail(`${what}: ${(err as Error).message}`);
      }
    };
    const priv = config.privateKeyFile === null ? null : parse(`priv-key ${config.privateKeyFile}`, () => createPrivateKey(readKeyFile(config.privateKeyFile!)));
    const pub = config.publicKeyFile === null ? null : parse(`pub-key ${config.publicKeyFile}`, () => createPublicKey(readKeyFile(config.publicKeyFile!)));
    if (priv) checkKind(method, priv, 'private');
    if (pub) checkKind(method, pub, 'public');
    // As etcd: with only the private key, its public half verifies.
    const verifying = pub ?? createPublicKey(priv!);
    if (pub && priv && !Buffer.from(der(createPublicKey(priv), 'spki')).equals(Buffer.from(der(pub, 'spki')))) fail("auth: public and private keys don't match");
    keys = await importJwtKeys(subtle, method, { privateKey: priv && der(priv, 'pkcs8'), publicKey: der(verifying, 'spki') });
  }
  return jwtAuth({ method, ...keys, ttlMs: config.ttlMs, subtle, wallClockMs });
}
