// etcd's Auth service over a KvMember: users, roles, permissions, enable/disable, Authenticate.
// Changes go through the log (kv-member.ts, auth-store.ts); reads answer from the applied store
// after a read barrier, so they see every change acknowledged before them. Who may call what is
// decided in auth-gate.ts, before these run.

import { AuthErrors, PermType, type Permission } from '../../src/server/auth-store.ts';
import type { KvMember } from '../../src/server/kv-member.ts';
import { EtcdApiError, Status } from './errors.ts';
import { bytes, type Wire } from './server-wire.ts';

export class AuthService {
  constructor(
    private readonly kv: KvMember,
    private readonly header: () => Wire,
  ) {}

  async authEnable(_w: Wire): Promise<Wire> {
    await this.kv.authChange({ kind: 'authEnable' });
    return { header: this.header() };
  }

  async authDisable(_w: Wire): Promise<Wire> {
    await this.kv.authChange({ kind: 'authDisable' });
    return { header: this.header() };
  }

  async authenticate(w: Wire): Promise<Wire> {
    const token = await this.kv.authenticate(String(w.name ?? ''), String(w.password ?? ''));
    return { header: this.header(), token };
  }

  async userAdd(w: Wire): Promise<Wire> {
    const noPassword = w.options?.no_password === true;
    await this.kv.userAdd(String(w.name ?? ''), String(w.password ?? ''), noPassword);
    return { header: this.header() };
  }

  async userGet(w: Wire): Promise<Wire> {
    await this.kv.readBarrier();
    const user = this.kv.auth.getUser(String(w.name ?? ''));
    if (!user) throw AuthErrors.userNotFound();
    return { header: this.header(), roles: user.roles };
  }

  async userList(_w: Wire): Promise<Wire> {
    await this.kv.readBarrier();
    return { header: this.header(), users: this.kv.auth.userNames() };
  }

  async userDelete(w: Wire): Promise<Wire> {
    await this.kv.authChange({ kind: 'userDelete', name: String(w.name ?? '') });
    return { header: this.header() };
  }

  async userChangePassword(w: Wire): Promise<Wire> {
    await this.kv.userChangePassword(String(w.name ?? ''), String(w.password ?? ''));
    return { header: this.header() };
  }

  async userGrantRole(w: Wire): Promise<Wire> {
    await this.kv.authChange({ kind: 'userGrantRole', name: String(w.user ?? ''), role: String(w.role ?? '') });
    return { header: this.header() };
  }

  async userRevokeRole(w: Wire): Promise<Wire> {
    await this.kv.authChange({ kind: 'userRevokeRole', name: String(w.name ?? ''), role: String(w.role ?? '') });
    return { header: this.header() };
  }

  async roleAdd(w: Wire): Promise<Wire> {
    await this.kv.authChange({ kind: 'roleAdd', name: String(w.name ?? '') });
    return { header: this.header() };
  }

  async roleGet(w: Wire): Promise<Wire> {
    await this.kv.readBarrier();
    const role = this.kv.auth.getRole(String(w.role ?? ''));
    if (!role) throw AuthErrors.roleNotFound();
    return { header: this.header(), perm: role.permissions.map((p) => ({ permType: p.permType, key: p.key, range_end: p.rangeEnd })) };
  }

  async roleList(_w: Wire): Promise<Wire> {
    await this.kv.readBarrier();
    return { header: this.header(), roles: this.kv.auth.roleNames() };
  }

  async roleDelete(w: Wire): Promise<Wire> {
    await this.kv.authChange({ kind: 'roleDelete', name: String(w.role ?? '') });
    return { header: this.header() };
  }

  async roleGrantPermission(w: Wire): Promise<Wire> {
    const p = w.perm;
    if (!p) throw new EtcdApiError(Status.InvalidArgument, 'etcdserver: permission is not provided');
    const permType = typeof p.permType === 'string' ? PermType[permTypeName(p.permType)] : Number(p.permType ?? 0);
    if (permType !== 0 && permType !== 1 && permType !== 2) throw new EtcdApiError(Status.InvalidArgument, `etcdserver: invalid permission type ${p.permType}`);
    const perm: Permission = { permType, key: bytes(p.key), rangeEnd: bytes(p.range_end) };
    await this.kv.authChange({ kind: 'roleGrantPermission', name: String(w.name ?? ''), perm });
    return { header: this.header() };
  }

  async roleRevokePermission(w: Wire): Promise<Wire> {
    await this.kv.authChange({ kind: 'roleRevokePermission', name: String(w.role ?? ''), key: bytes(w.key), rangeEnd: bytes(w.range_end) });
    return { header: this.header() };
  }
}

/** The JSON gateway may spell the type by its enum name. */
function permTypeName(name: string): keyof typeof PermType {
  const byName: Record<string, keyof typeof PermType> = { READ: 'Read', WRITE: 'Write', READWRITE: 'ReadWrite' };
  const n = byName[name];
  if (n === undefined) throw new EtcdApiError(Status.InvalidArgument, `etcdserver: invalid permission type ${name}`);
  return n;
}
