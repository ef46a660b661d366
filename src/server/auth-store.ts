// etcd's v3 auth store as part of the replicated state machine: users, roles, permissions,
// auth enable/disable and the auth revision. Every change is a log entry that every member
// applies alike (apply is deterministic: password hashes and simple tokens are chosen by the
// proposing member and carried in the entry, as etcd carries its bcrypt hashes). The state rides
// in the snapshot image beside the member table (member-table.ts), so it survives restarts and
// reaches a member that catches up from a snapshot.
//
// Simple tokens are the exception, as in etcd: they are not persisted, and each member forgets
// them `tokenTtlMs` after it applied their Authenticate entry, by its own clock.

import { Packr } from 'msgpackr';
import { AuthError, AuthErrors } from './auth-errors.ts';
import { equalBytes } from '../client/bytes.ts';

// The errors live apart (auth-errors.ts) so that the client's in-process connection can name
// them without loading the store (and msgpackr).
export { AuthError, AuthErrors } from './auth-errors.ts';

/** etcd's Permission.Type. */
export const PermType = { Read: 0, Write: 1, ReadWrite: 2 } as const;
export type PermType = (typeof PermType)[keyof typeof PermType];

/** A permission on [key, rangeEnd): rangeEnd empty means the one key, [0] means every key from `key` on. */
export interface Permission {
  permType: PermType;
  key: Uint8Array;
  rangeEnd: Uint8Array;
}

export interface AuthUser {
  name: string;
  /** The encoded KDF hash (password.ts); empty for a user added with --no-password. */
  password: string;
  /** Sorted, without duplicates (etcd keeps them sorted). */
  roles: string[];
  noPassword: boolean;
}

export interface AuthRole {
  name: string;
  permissions: Permission[];
}

export type AuthOp =
  | { kind: 'authEnable' }
  | { kind: 'authDisable' }
  | { kind: 'userAdd'; name: string; password: string; noPassword: boolean }
  | { kind: 'userDelete'; name: string }
  | { kind: 'userChangePassword'; name: string; password: string }
  | { kind: 'userGrantRole'; name: string; role: string }
  | { kind: 'userRevokeRole'; name: string; role: string }
  | { kind: 'roleAdd'; name: string }
  | { kind: 'roleDelete'; name: string }
  | { kind: 'roleGrantPermission'; name: string; perm: Permission }
  | { kind: 'roleRevokePermission'; name: string; key: Uint8Array; rangeEnd: Uint8Array }
  /** A password check passed on the proposer; every member learns the token it chose. */
  | { kind: 'authenticate'; name: string; token: string };

export type AuthResult = { ok: true; revision: number } | { ok: false; error: AuthError };

export const rootUser = 'root';
export const rootRole = 'root';

/** etcd's default --auth-token-ttl: 300 s. */
export const tokenTtlMsDefault = 300_000;
/** Live simple tokens one member keeps at most; the oldest go first (a bound against Authenticate floods). */
export const tokensMax = 65_536;

/** First byte of an auth log entry: client requests start with their format version (1), member updates with 0x6d. */
export const authEntryTag = 0x61;
/** First element of the auth image inside the snapshot. */
const authImageVersion = 1;

const packr = new Packr({ useRecords: false });

export class AuthStore {
  enabled = false;
  /** Counts applied auth changes (etcd's auth revision); never decreases. */
  revision = 0;
  private readonly users = new Map<string, AuthUser>();
  private readonly roles = new Map<string, AuthRole>();
  /** Simple tokens by value, in issue order (Map keeps insertion order, so eviction takes the oldest). */
  private readonly tokens = new Map<string, { user: string; issuedMs: number }>();

  constructor(private readonly tokenTtlMs = tokenTtlMsDefault) {}

  getUser(name: string): AuthUser | undefined {
    return this.users.get(name);
  }

  getRole(name: string): AuthRole | undefined {
    return this.roles.get(name);
  }

  userNames(): string[] {
    return [...this.users.keys()].sort();
  }

  roleNames(): string[] {
    return [...this.roles.keys()].sort();
  }

  /** Applies one entry; `nowMs` is this member's clock, used only to date the tokens it learns. */
  apply(op: AuthOp, nowMs: number): AuthResult {
    const error = this.applyOp(op, nowMs);
    if (error) return { ok: false, error };
    if (op.kind !== 'authenticate') this.revision++;
    return { ok: true, revision: this.revision };
  }

  private applyOp(op: AuthOp, nowMs: number): AuthError | null {
    switch (op.kind) {
      case 'authEnable': {
        if (this.enabled) return null;
        const root = this.users.get(rootUser);
        if (!root) return AuthErrors.rootUserNotExist();
        if (!root.roles.includes(rootRole)) return AuthErrors.rootRoleNotExist();
        this.enabled = true;
        return null;
      }
      case 'authDisable':
        this.enabled = false;
        this.tokens.clear();
        return null;
      case 'userAdd':
        if (op.name === '') return AuthErrors.userEmpty();
        if (this.users.has(op.name)) return AuthErrors.userAlreadyExist();
        this.users.set(op.name, { name: op.name, password: op.password, roles: [], noPassword: op.noPassword });
        return null;
      case 'userDelete':
        if (this.enabled && op.name === rootUser) return AuthErrors.invalidAuthMgmt();
        if (!this.users.delete(op.name)) return AuthErrors.userNotFound();
        this.dropTokensOf(op.name);
        return null;
      case 'userChangePassword': {
        const user = this.users.get(op.name);
        if (!user) return AuthErrors.userNotFound();
        user.password = op.password;
        this.dropTokensOf(op.name);
        return null;
      }
      case 'userGrantRole': {
        const user = this.users.get(op.name);
        if (!user) return AuthErrors.userNotFound();
        if (op.role !== rootRole && !this.roles.has(op.role)) return AuthErrors.roleNotFound();
        if (!user.roles.includes(op.role)) user.roles = [...user.roles, op.role].sort();
        return null;
      }
      case 'userRevokeRole': {
        if (this.enabled && op.name === rootUser && op.role === rootRole) return AuthErrors.invalidAuthMgmt();
        const user = this.users.get(op.name);
        if (!user) return AuthErrors.userNotFound();
        if (!user.roles.includes(op.role)) return AuthErrors.roleNotGranted();
        user.roles = user.roles.filter((r) => r !== op.role);
        return null;
      }
      case 'roleAdd':
        if (op.name === '') return AuthErrors.roleEmpty();
        if (this.roles.has(op.name)) return AuthErrors.roleAlreadyExist();
        this.roles.set(op.name, { name: op.name, permissions: [] });
        return null;
      case 'roleDelete':
        if (this.enabled && op.name === rootRole) return AuthErrors.invalidAuthMgmt();
        if (!this.roles.delete(op.name)) return AuthErrors.roleNotFound();
        for (const user of this.users.values()) user.roles = user.roles.filter((r) => r !== op.name);
        return null;
      case 'roleGrantPermission': {
        const role = this.roles.get(op.name);
        if (!role) return AuthErrors.roleNotFound();
        // The same key range granted again replaces its type (etcd's behaviour).
        const same = role.permissions.findIndex((p) => equalBytes(p.key, op.perm.key) && equalBytes(p.rangeEnd, op.perm.rangeEnd));
        const perm = { permType: op.perm.permType, key: op.perm.key.slice(), rangeEnd: op.perm.rangeEnd.slice() };
        if (same >= 0) role.permissions[same] = perm;
        else role.permissions.push(perm);
        role.permissions.sort((a, b) => compareBytes(a.key, b.key) || compareBytes(a.rangeEnd, b.rangeEnd));
        return null;
      }
      case 'roleRevokePermission': {
        const role = this.roles.get(op.name);
        if (!role) return AuthErrors.roleNotFound();
        const at = role.permissions.findIndex((p) => equalBytes(p.key, op.key) && equalBytes(p.rangeEnd, op.rangeEnd));
        if (at < 0) return AuthErrors.permissionNotGranted();
        role.permissions.splice(at, 1);
        return null;
      }
      case 'authenticate':
        // The password was checked on the proposer; the user may have gone since.
        if (!this.enabled) return AuthErrors.authNotEnabled();
        if (!this.users.has(op.name)) return AuthErrors.authFailed();
        while (this.tokens.size >= tokensMax) this.tokens.delete(this.tokens.keys().next().value as string);
        this.tokens.set(op.token, { user: op.name, issuedMs: nowMs });
        return null;
    }
  }

  private dropTokensOf(name: string): void {
    for (const [token, t] of this.tokens) if (t.user === name) this.tokens.delete(token);
  }

  /** The user a simple token names, or an invalid-token error once it expired or was never issued. */
  userOfToken(token: string, nowMs: number): string {
    const t = this.tokens.get(token);
    if (!t || nowMs - t.issuedMs >= this.tokenTtlMs) {
      if (t) this.tokens.delete(token);
      throw AuthErrors.invalidAuthToken();
    }
    return t.user;
  }

  isAdmin(user: string): boolean {
    return this.users.get(user)?.roles.includes(rootRole) ?? false;
  }

  /** Throws permission denied unless the user holds root. */
  checkAdmin(user: string): void {
    if (!this.isAdmin(user)) throw AuthErrors.permissionDenied();
  }

  /**
   * Throws permission denied unless the union of the user's permissions of a kind covers the
   * whole requested range, as etcd's range permission cache decides: [key] alone when rangeEnd
   * is empty, every key from `key` on when rangeEnd is [0].
   */
  checkRange(user: string, key: Uint8Array, rangeEnd: Uint8Array, need: 'read' | 'write'): void {
    if (this.isAdmin(user)) return;
    const u = this.users.get(user);
    if (!u) throw AuthErrors.permissionDenied();
    const allowed = (p: Permission) => p.permType === PermType.ReadWrite || p.permType === (need === 'read' ? PermType.Read : PermType.Write);
    const intervals: [Uint8Array, Uint8Array | null][] = [];
    for (const name of u.roles) {
      for (const p of this.roles.get(name)?.permissions ?? []) if (allowed(p)) intervals.push([p.key, intervalEnd(p.key, p.rangeEnd)]);
    }
    if (!covered(intervals, key, intervalEnd(key, rangeEnd))) throw AuthErrors.permissionDenied();
  }

  /** The state a snapshot carries (tokens stay out, as etcd's simple tokens do). */
  encodeImage(): Uint8Array {
    const users = this.userNames().map((n) => {
      const u = this.users.get(n) as AuthUser;
      return [u.name, u.password, u.roles, u.noPassword];
    });
    const roles = this.roleNames().map((n) => {
      const r = this.roles.get(n) as AuthRole;
      return [r.name, r.permissions.map((p) => [p.permType, p.key, p.rangeEnd])];
    });
    return new Uint8Array(packr.pack([authImageVersion, this.enabled, this.revision, users, roles]));
  }

  /** Replaces the state with an image made by encodeImage; an empty image is the empty store. */
  restoreImage(image: Uint8Array): void {
    this.users.clear();
    this.roles.clear();
    this.tokens.clear();
    this.enabled = false;
    this.revision = 0;
    if (image.length === 0) return;
    const bad = (why: string) => new Error(`auth image: ${why}`);
    const v = packr.unpack(image) as unknown[];
    if (!Array.isArray(v) || v[0] !== authImageVersion) throw bad(`format ${JSON.stringify(Array.isArray(v) ? v[0] : v)}, expected ${authImageVersion}`);
    const [, enabled, revision, users, roles] = v as [number, boolean, number, unknown[], unknown[]];
    if (typeof enabled !== 'boolean' || !Number.isSafeInteger(revision) || !Array.isArray(users) || !Array.isArray(roles)) throw bad('malformed header');
    for (const u of users as [string, string, string[], boolean][]) {
      if (typeof u[0] !== 'string' || typeof u[1] !== 'string' || !Array.isArray(u[2]) || typeof u[3] !== 'boolean') throw bad(`malformed user ${JSON.stringify(u[0])}`);
      this.users.set(u[0], { name: u[0], password: u[1], roles: u[2].map(String), noPassword: u[3] });
    }
    for (const r of roles as [string, [number, Uint8Array, Uint8Array][]][]) {
      if (typeof r[0] !== 'string' || !Array.isArray(r[1])) throw bad(`malformed role ${JSON.stringify(r[0])}`);
      const permissions = r[1].map(([permType, key, rangeEnd]) => {
        if (permType !== 0 && permType !== 1 && permType !== 2) throw bad(`role ${r[0]}: permission type ${permType}`);
        return { permType: permType as PermType, key: new Uint8Array(key), rangeEnd: new Uint8Array(rangeEnd) };
      });
      this.roles.set(r[0], { name: r[0], permissions });
    }
    this.enabled = enabled;
    this.revision = revision;
  }
}

/** Exclusive end of a key range as an interval; null is "no end" (rangeEnd [0]). */
function intervalEnd(key: Uint8Array, rangeEnd: Uint8Array): Uint8Array | null {
  if (rangeEnd.length === 0) {
    const next = new Uint8Array(key.length + 1);
    next.set(key);
    return next;
  }
  return rangeEnd.length === 1 && rangeEnd[0] === 0 ? null : rangeEnd;
}

/** Whether the union of `intervals` covers [start, end). O(n log n) in the intervals. */
function covered(intervals: [Uint8Array, Uint8Array | null][], start: Uint8Array, end: Uint8Array | null): boolean {
  if (end !== null && compareBytes(start, end) >= 0) return true;
  const sorted = intervals.slice().sort((a, b) => compareBytes(a[0], b[0]));
  let reached = start;
  for (const [from, to] of sorted) {
    if (compareBytes(from, reached) > 0) break;
    if (to === null) return true;
    if (compareBytes(to, reached) > 0) reached = to;
    if (end !== null && compareBytes(reached, end) >= 0) return true;
  }
  return false;
}

export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

export function encodeAuthOp(op: AuthOp): Uint8Array {
  const body = packr.pack(op);
  const out = new Uint8Array(body.length + 1);
  out[0] = authEntryTag;
  out.set(body, 1);
  return out;
}

const opKinds = new Set<AuthOp['kind']>([
  'authEnable', 'authDisable', 'userAdd', 'userDelete', 'userChangePassword', 'userGrantRole', 'userRevokeRole',
  'roleAdd', 'roleDelete', 'roleGrantPermission', 'roleRevokePermission', 'authenticate',
]);

/** Null for an entry that does not decode: every member skips it alike. */
export function decodeAuthOp(bytes: Uint8Array): AuthOp | null {
  if (bytes[0] !== authEntryTag) return null;
  try {
    const v = packr.unpack(bytes.subarray(1)) as AuthOp;
    if (!v || typeof v !== 'object' || !opKinds.has(v.kind)) return null;
    const strings = Object.entries(v).every(([k, x]) => k === 'perm' || k === 'key' || k === 'rangeEnd' || k === 'noPassword' || typeof x === 'string');
    if (!strings) return null;
    if (v.kind === 'roleGrantPermission') {
      const p = v.perm;
      if (!p || ![0, 1, 2].includes(p.permType) || !(p.key instanceof Uint8Array) || !(p.rangeEnd instanceof Uint8Array)) return null;
    }
    if (v.kind === 'roleRevokePermission' && (!(v.key instanceof Uint8Array) || !(v.rangeEnd instanceof Uint8Array))) return null;
    if (v.kind === 'userAdd' && typeof v.noPassword !== 'boolean') return null;
    return v;
  } catch {
    return null;
  }
}
