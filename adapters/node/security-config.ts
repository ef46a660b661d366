// The start command's security flags: the admission secret that lets members in (through the
// peer port and through signaling), the fault endpoint's own secret, and etcd 3.4's --cors,
// --host-whitelist, --peer-cert-allowed-cn and --max-request-bytes. Parsed here, beside
// config.ts, which spreads `securityFlags` into its table and calls `parseSecurityConfig`.
// No secret's value ever appears in a ConfigError: the errors name the flag, not what it held.

import { DEFAULT_LIMITS } from '../../src/mvcc/validate.ts';
import { jwtSignMethods, jwtTtlMsDefault, type JwtSignMethod } from '../../src/server/jwt.ts';

/** Where an admission secret comes from. `data-dir`: the one kept there, made on first start. */
export type SecretSource = { kind: 'value'; value: string } | { kind: 'file'; path: string } | { kind: 'data-dir' };

export interface SecurityConfig {
  /** Admits members through the peer port (TCP Hello) and, unless browserAdmissionSecret is set, through signaling. */
  admissionSecret: SecretSource;
  /** Admits tabs through signaling instead of admissionSecret (required with peer TLS and browser peers on). */
  browserAdmissionSecret: SecretSource | null;
  /** The fault endpoint's bearer secret (with --experimental-fault-injection). */
  faultInjectionSecret: SecretSource;
  /** Serve the fault endpoint to non-loopback peers too (default: loopback clients only). */
  faultInjectionRemote: boolean;
  /** etcd's --cors: origins that get CORS headers on the JSON gateway; '*' for any. */
  cors: string[] | '*';
  /** etcd's --host-whitelist: Host names a plain-HTTP request may name; '*' for any. */
  hostWhitelist: string[] | '*';
  /** etcd's --peer-cert-allowed-cn: a peer's certificate must carry this CommonName; null for any the CA signed. */
  peerCertAllowedCn: string | null;
  /** etcd's --max-request-bytes: the largest client request; peer frames are bounded from it. */
  maxRequestBytes: number;
  /** etcd's --auth-token-ttl in milliseconds: how long a simple token stays valid on this member. */
  authTokenTtlMs: number;
  /** etcd's --auth-token: simple tokens, or JWTs signed with the key files named here. */
  authToken: AuthTokenConfig;
}

export type AuthTokenConfig =
  | { kind: 'simple' }
  | { kind: 'jwt'; signMethod: JwtSignMethod; publicKeyFile: string | null; privateKeyFile: string | null; ttlMs: number };

/** Characters a secret must have at least: a guessable one admits strangers. */
export const secretCharsMin = 16;
/** Bytes of a secret at most (it travels in handshakes with bounded frames). */
export const secretBytesMax = 256;
/**
 * The largest --max-request-bytes: etcd's default. Every member applies requests against the
 * same limit (src/mvcc/validate.ts), so a member may only tighten what it accepts.
 */
export const maxRequestBytesMax = DEFAULT_LIMITS.requestBytesMax;

interface FlagSpec {
  env: string;
  help: string;
  defaultValue: string;
  boolean?: true;
}

export const securityFlags: Record<string, FlagSpec> = {
  'admission-secret': {
    env: 'MESHKV_ADMISSION_SECRET',
    help: `Secret that admits members through the peer port and signaling (at least ${secretCharsMin} characters; default: generated on first start and kept in <data-dir>/admission-secret, mode 0600). Every member of a cluster needs the same one.`,
    defaultValue: '',
  },
  'admission-secret-file': {
    env: 'MESHKV_ADMISSION_SECRET_FILE',
    help: 'File holding the admission secret (its first line), instead of --admission-secret.',
    defaultValue: '',
  },
  'browser-admission-secret': {
    env: 'MESHKV_BROWSER_ADMISSION_SECRET',
    help: 'A separate secret that admits tabs through signaling (required with peer TLS and --browser-peers on; default: the admission secret).',
    defaultValue: '',
  },
  'browser-admission-secret-file': {
    env: 'MESHKV_BROWSER_ADMISSION_SECRET_FILE',
    help: 'File holding the browser admission secret, instead of --browser-admission-secret.',
    defaultValue: '',
  },
  'experimental-fault-injection-secret-file': {
    env: 'MESHKV_EXPERIMENTAL_FAULT_INJECTION_SECRET_FILE',
    help: 'File holding the bearer secret /meshkv/faults requires (default: generated on first start in <data-dir>/fault-injection-secret, mode 0600).',
    defaultValue: '',
  },
  'experimental-fault-injection-remote': {
    env: 'MESHKV_EXPERIMENTAL_FAULT_INJECTION_REMOTE',
    help: 'Serve /meshkv/faults to clients on other hosts too (default: loopback clients only).',
    defaultValue: 'false',
    boolean: true,
  },
  cors: {
    env: 'MESHKV_CORS',
    help: "Comma-separated origins the JSON gateway answers with CORS headers (etcd's --cors; empty or '*' for any).",
    defaultValue: '*',
  },
  'host-whitelist': {
    env: 'MESHKV_HOST_WHITELIST',
    help: "Comma-separated host names plain-HTTP requests may name in Host (etcd's --host-whitelist, against DNS rebinding; empty or '*' for any).",
    defaultValue: '*',
  },
  'peer-cert-allowed-cn': {
    env: 'MESHKV_PEER_CERT_ALLOWED_CN',
    help: "With peer TLS, accept only peers whose certificate's CommonName is this (etcd's --peer-cert-allowed-cn).",
    defaultValue: '',
  },
  'max-request-bytes': {
    env: 'MESHKV_MAX_REQUEST_BYTES',
    help: `Largest client request in bytes (etcd's --max-request-bytes, at most its default ${DEFAULT_LIMITS.requestBytesMax}); peer frames are bounded from it.`,
    defaultValue: String(DEFAULT_LIMITS.requestBytesMax),
  },
  'auth-token': {
    env: 'MESHKV_AUTH_TOKEN',
    help: "Token type of etcd's auth (--auth-token): 'simple', or 'jwt,pub-key=<file>,priv-key=<file>,sign-method=<RS256|PS256|ES256|HS256|…>,ttl=<5m>' (the same keys on every member).",
    defaultValue: 'simple',
  },
  'auth-token-ttl': {
    env: 'MESHKV_AUTH_TOKEN_TTL',
    help: "Seconds a simple auth token stays valid after Authenticate (etcd's --auth-token-ttl).",
    defaultValue: '300',
  },
};

export class SecurityConfigError extends Error {}

/** Why `secret` cannot admit members, or null. Never quotes the secret. */
export function secretProblem(secret: string): string | null {
  if (secret.length < secretCharsMin) return `is shorter than ${secretCharsMin} characters`;
  if (new TextEncoder().encode(secret).length > secretBytesMax) return `is longer than ${secretBytesMax} bytes`;
  if (/[\r\n]/.test(secret)) return 'holds a line break';
  return null;
}

function secretSource(value: (flag: string) => string, flag: string): SecretSource | null {
  const inline = value(flag);
  const file = value(`${flag}-file`);
  if (inline !== '' && file !== '') throw new SecurityConfigError(`give --${flag} or --${flag}-file, not both`);
  if (file !== '') return { kind: 'file', path: file };
  if (inline === '') return null;
  const problem = secretProblem(inline);
  if (problem) throw new SecurityConfigError(`--${flag} ${problem}`);
  return { kind: 'value', value: inline };
}

function list(text: string): string[] | '*' {
  const items = text.split(',').map((s) => s.trim()).filter((s) => s !== '');
  return items.length === 0 || items.includes('*') ? '*' : items;
}

export interface SecurityContext {
  /** Peer TLS is configured. */
  peerTls: boolean;
  /** Browser peers are on. */
  browserPeers: boolean;
}

/** Reads the security flags; `value` gives a flag's value (flag, then environment, then default). */
export function parseSecurityConfig(value: (flag: string) => string, ctx: SecurityContext): SecurityConfig {
  const admissionSecret = secretSource(value, 'admission-secret') ?? { kind: 'data-dir' };
  const browserAdmissionSecret = secretSource(value, 'browser-admission-secret');
  if (browserAdmissionSecret && !ctx.browserPeers) throw new SecurityConfigError('--browser-admission-secret needs --browser-peers on');
  if (ctx.peerTls && ctx.browserPeers && !browserAdmissionSecret) {
    throw new SecurityConfigError('with peer TLS, --browser-peers on needs --browser-admission-secret or --browser-admission-secret-file: tabs hold no peer certificate, so they are admitted by a secret of their own');
  }
  const faultFile = value('experimental-fault-injection-secret-file');
  const remote = value('experimental-fault-injection-remote');
  if (remote !== 'true' && remote !== 'false') throw new SecurityConfigError(`--experimental-fault-injection-remote must be true or false, not ${JSON.stringify(remote)}`);
  const cors = list(value('cors'));
  // etcd takes origins as scheme://host:port and compares them with the Origin header as given.
  if (cors !== '*') {
    for (const o of cors) {
      if (!/^https?:\/\/(\[[0-9a-fA-F:.]+\]|[^/:[\]]+):\d{1,5}\/?$/.test(o)) throw new SecurityConfigError(`--cors: ${JSON.stringify(o)} is not an origin of the form scheme://host:port (e.g. http://127.0.0.1:5173)`);
    }
  }
  const hostWhitelist = list(value('host-whitelist'));
  const cn = value('peer-cert-allowed-cn');
  if (cn !== '' && !ctx.peerTls) throw new SecurityConfigError('--peer-cert-allowed-cn needs peer TLS (--peer-cert-file, --peer-key-file, --peer-trusted-ca-file)');
  const bytesText = value('max-request-bytes');
  const maxRequestBytes = Number(bytesText);
  if (!/^\d+$/.test(bytesText) || maxRequestBytes < 1 || maxRequestBytes > maxRequestBytesMax) {
    throw new SecurityConfigError(`--max-request-bytes must be an integer from 1 to ${maxRequestBytesMax}, not ${JSON.stringify(bytesText)}`);
  }
  const authToken = parseAuthToken(value('auth-token'));
  const ttlText = value('auth-token-ttl');
  if (!/^\d+$/.test(ttlText) || Number(ttlText) < 1) throw new SecurityConfigError(`--auth-token-ttl must be a whole number of seconds from 1, not ${JSON.stringify(ttlText)}`);
  return {
    admissionSecret,
    browserAdmissionSecret,
    faultInjectionSecret: faultFile === '' ? { kind: 'data-dir' } : { kind: 'file', path: faultFile },
    faultInjectionRemote: remote === 'true',
    cors: cors === '*' ? '*' : cors.map((o) => o.replace(/\/$/, '')),
    hostWhitelist,
    peerCertAllowedCn: cn === '' ? null : cn,
    maxRequestBytes,
    authTokenTtlMs: Number(ttlText) * 1000,
    authToken,
  };
}

/** etcd's JWT options, in the order etcd 3.4 names them. */
const jwtOptionNames = ['pub-key', 'priv-key', 'sign-method', 'ttl'];

/**
 * `simple`, or etcd 3.4's `jwt,pub-key=<file>,priv-key=<file>,sign-method=<method>,ttl=<duration>`.
 * The errors say what etcd logs before its "auth: invalid auth options".
 */
function parseAuthToken(text: string): AuthTokenConfig {
  const [kind, ...rest] = text.split(',');
  if (kind === 'simple' && rest.length === 0) return { kind: 'simple' };
  const invalid = (why: string) => new SecurityConfigError(`--auth-token: auth: invalid auth options (${why})`);
  if (kind !== 'jwt') throw invalid(`unknown token type: ${kind}`);
  const options = new Map<string, string>();
  for (const option of rest) {
    const eq = option.indexOf('=');
    if (eq < 0 || !jwtOptionNames.includes(option.slice(0, eq))) throw invalid(`invalid token specific option: ${option}`);
    options.set(option.slice(0, eq), option.slice(eq + 1));
  }
  const signMethod = options.get('sign-method') ?? '';
  if (!(jwtSignMethods as readonly string[]).includes(signMethod)) throw invalid(`problem loading JWT options: auth: invalid auth signature method${signMethod === '' ? '' : ` ${JSON.stringify(signMethod)}; one of ${jwtSignMethods.join(', ')}`}`);
  const ttlText = options.get('ttl');
  const ttlMs = ttlText === undefined || ttlText === '' ? jwtTtlMsDefault : durationMs(ttlText);
  if (ttlMs === null || ttlMs <= 0) throw invalid(`problem loading JWT options: invalid ttl ${JSON.stringify(ttlText)}: a duration such as 5m, 300s or 1h30m`);
  const file = (name: string) => (options.get(name) ?? '') || null;
  const publicKeyFile = file('pub-key');
  const privateKeyFile = file('priv-key');
  const hmac = signMethod.startsWith('HS');
  if (hmac ? privateKeyFile === null : publicKeyFile === null && privateKeyFile === null) throw invalid('problem loading JWT options: auth: missing key data');
  return { kind: 'jwt', signMethod: signMethod as JwtSignMethod, publicKeyFile, privateKeyFile, ttlMs };
}

const durationUnitsMs: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A Go duration (`5m`, `1h30m`, `90s`) in milliseconds, or null when it is not one. */
function durationMs(text: string): number | null {
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== text) return null;
  return parts.reduce((sum, p) => sum + Number(p[1]) * durationUnitsMs[p[2]], 0);
}
