// Password hashing for the auth store: PBKDF2-HMAC-SHA256, salted, slow on purpose, through an
// injected WebCrypto (Node 20 and browsers both have one), so a tab member and a Node member
// check the same hashes. The proposing member hashes; the log carries only the hash.

/** The parts of WebCrypto this needs; adapters pass globalThis.crypto. */
export interface AuthCrypto {
  subtle: Pick<SubtleCrypto, 'importKey' | 'deriveBits'>;
  getRandomValues<T extends Uint8Array<ArrayBuffer>>(array: T): T;
}

/** PBKDF2 iterations: about etcd's bcrypt cost 10 in time (tens of milliseconds). */
export const passwordIterations = 100_000;
export const passwordSaltBytes = 16;
const hashBits = 256;
/** Simple token length in random bytes (etcd uses 16 random letters; this is 128 bits). */
export const tokenBytes = 16;

const scheme = 'pbkdf2-sha256';

function base64(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

function unbase64(text: string): Uint8Array<ArrayBuffer> {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

async function derive(webCrypto: AuthCrypto, password: string, salt: Uint8Array<ArrayBuffer>, iterations: number): Promise<Uint8Array> {
  const key = await webCrypto.subtle.importKey('raw', new TextEncoder().encode(password), 'PBKDF2', false, ['deriveBits']);
  return new Uint8Array(await webCrypto.subtle.deriveBits({ name: 'PBKDF2', hash: 'SHA-256', salt, iterations }, key, hashBits));
}

/** `pbkdf2-sha256$<iterations>$<salt>$<hash>`, salt and hash in base64. */
export async function hashPassword(webCrypto: AuthCrypto, password: string, iterations = passwordIterations): Promise<string> {
  const salt = webCrypto.getRandomValues(new Uint8Array(passwordSaltBytes));
  return `${scheme}$${iterations}$${base64(salt)}$${base64(await derive(webCrypto, password, salt, iterations))}`;
}

/** Whether `password` matches an encoded hash; false for an empty or malformed hash. */
export async function checkPassword(webCrypto: AuthCrypto, password: string, encoded: string): Promise<boolean> {
  const parts = encoded.split('$');
  if (parts.length !== 4 || parts[0] !== scheme) return false;
  const iterations = Number(parts[1]);
  if (!Number.isSafeInteger(iterations) || iterations < 1) return false;
  const want = unbase64(parts[3]);
  const got = await derive(webCrypto, password, unbase64(parts[2]), iterations);
  // Compared in full, not stopping at the first difference.
  let diff = want.length ^ got.length;
  for (let i = 0; i < Math.min(want.length, got.length); i++) diff |= want[i] ^ got[i];
  return diff === 0;
}

/** A fresh simple token: random letters and digits, as etcd's simple tokens are. */
export function newToken(webCrypto: AuthCrypto): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
  const bytes = webCrypto.getRandomValues(new Uint8Array(tokenBytes * 2));
  // 62 letters: rejection keeps every letter equally likely (bytes >= 248 are skipped).
  let token = '';
  for (const b of bytes) if (b < 248 && token.length < 22) token += alphabet[b % 62];
  if (token.length < 22) return token + newToken(webCrypto).slice(token.length);
  return token;
}
