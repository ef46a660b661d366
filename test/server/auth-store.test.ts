// The auth store alone: permission coverage as etcd's range permission cache decides it, the
// root rules, entries that do not decode, and the snapshot image.

import { describe, expect, it } from 'vitest';
import { AuthStore, PermType, decodeAuthOp, encodeAuthOp, type AuthOp } from '../../src/server/auth-store.ts';

const b = (s: string) => new TextEncoder().encode(s);
const none = new Uint8Array(0);
const fromKey = new Uint8Array([0]);

function store(...perms: [number, string, Uint8Array][]): AuthStore {
  const s = new AuthStore();
  const ops: AuthOp[] = [
    { kind: 'userAdd', name: 'u', password: 'h', noPassword: false },
    { kind: 'roleAdd', name: 'r' },
    ...perms.map(([permType, key, rangeEnd]): AuthOp => ({ kind: 'roleGrantPermission', name: 'r', perm: { permType: permType as PermType, key: b(key), rangeEnd } })),
    { kind: 'userGrantRole', name: 'u', role: 'r' },
  ];
  for (const op of ops) expect(s.apply(op, 0)).toMatchObject({ ok: true });
  return s;
}

function may(s: AuthStore, key: string, end: Uint8Array, need: 'read' | 'write'): boolean {
  try {
    s.checkRange('u', b(key), end, need);
    return true;
  } catch (err) {
    expect((err as Error).message).toBe('etcdserver: permission denied');
    return false;
  }
}

describe('AuthStore', () => {
  it('allows a range only when the union of grants covers all of it', () => {
    const s = store([PermType.Read, 'a', b('c')], [PermType.ReadWrite, 'c', b('e')], [PermType.Write, 'x', none]);
    expect(may(s, 'a', b('e'), 'read')).toBe(true); // two adjacent grants together
    expect(may(s, 'a', b('e0'), 'read')).toBe(false); // one byte past
    expect(may(s, 'a', b('e'), 'write')).toBe(false); // [a, c) is read only
    expect(may(s, 'c', b('e'), 'write')).toBe(true);
    expect(may(s, 'x', none, 'write')).toBe(true); // the one key
    expect(may(s, 'x', b('y'), 'write')).toBe(false); // not the keys after it
    expect(may(s, 'x', none, 'read')).toBe(false);
    expect(may(s, '', fromKey, 'read')).toBe(false);
  });

  it('a from-key grant covers every key from it on', () => {
    const s = store([PermType.Read, 'm', fromKey]);
    expect(may(s, 'm', fromKey, 'read')).toBe(true);
    expect(may(s, 'zzz', none, 'read')).toBe(true);
    expect(may(s, 'l', fromKey, 'read')).toBe(false);
  });

  it('keeps the root rules and drops a deleted role from its users', () => {
    const s = store([PermType.Read, 'a', none]);
    expect(s.apply({ kind: 'authEnable' }, 0)).toMatchObject({ ok: false, error: { message: 'etcdserver: root user does not exist' } });
    s.apply({ kind: 'userAdd', name: 'root', password: 'h', noPassword: false }, 0);
    expect(s.apply({ kind: 'authEnable' }, 0)).toMatchObject({ ok: false, error: { message: 'etcdserver: root user does not have root role' } });
    expect(s.apply({ kind: 'userGrantRole', name: 'root', role: 'root' }, 0)).toMatchObject({ ok: true });
    expect(s.apply({ kind: 'authEnable' }, 0)).toMatchObject({ ok: true });
    expect(s.apply({ kind: 'userDelete', name: 'root' }, 0)).toMatchObject({ ok: false, error: { message: 'etcdserver: invalid auth management' } });
    expect(s.apply({ kind: 'roleDelete', name: 'r' }, 0)).toMatchObject({ ok: true });
    expect(s.getUser('u')?.roles).toEqual([]);
  });

  it("tokens expire after the TTL by the applying member's clock", () => {
    const s = new AuthStore(1000);
    s.apply({ kind: 'userAdd', name: 'root', password: 'h', noPassword: false }, 0);
    s.apply({ kind: 'userGrantRole', name: 'root', role: 'root' }, 0);
    s.apply({ kind: 'authEnable' }, 0);
    s.apply({ kind: 'authenticate', name: 'root', token: 't' }, 5000);
    expect(s.userOfToken('t', 5999)).toBe('root');
    expect(() => s.userOfToken('t', 6000)).toThrow('etcdserver: invalid auth token');
  });

  it('skips entries that do not decode, and round-trips its image', () => {
    expect(decodeAuthOp(new Uint8Array([0x61, 0xc1]))).toBeNull();
    expect(decodeAuthOp(encodeAuthOp({ kind: 'roleAdd', name: 'x' }).map((v, i) => (i === 0 ? 0x62 : v)))).toBeNull();
    const op: AuthOp = { kind: 'roleGrantPermission', name: 'r', perm: { permType: PermType.Write, key: b('k'), rangeEnd: b('l') } };
    expect(decodeAuthOp(encodeAuthOp(op))).toEqual(op);
    const s = store([PermType.ReadWrite, 'k', b('l')]);
    const copy = new AuthStore();
    copy.restoreImage(s.encodeImage());
    expect(copy.encodeImage()).toEqual(s.encodeImage());
    expect(copy.revision).toBe(s.revision);
    expect(() => copy.restoreImage(new Uint8Array([0x92, 0x07, 0xc3]))).toThrow('auth image: format 7, expected 1');
  });
});
