// user, role and auth: etcd's Auth service as etcdctl 3.4 drives it, with etcdctl's output, so
// scripts written for `etcdctl user/role/auth` read the same against `meshkv`.

import { readFileSync } from 'node:fs';
import type { Wire } from '../../etcd-api/client-wire.ts';
import { callAny } from './cluster.ts';
import { command, print, UsageError, type Run } from './common.ts';

const enc = new TextEncoder();
const dec = new TextDecoder();

function sub(run: Run, what: string, names: string[]): [string, string[]] {
  const [name, ...rest] = run.args;
  if (name === undefined) throw new UsageError(`${what} needs a subcommand (${names.join(', ')})`);
  if (!names.includes(name)) throw new UsageError(`unknown ${what} subcommand ${JSON.stringify(name)} (${names.join(', ')})`);
  return [name, rest];
}

function exactly(args: string[], n: number, what: string): string[] {
  if (args.length !== n) throw new UsageError(`${what} needs exactly ${n} argument(s), got ${args.length}`);
  return args;
}

/** The first line of standard input: where a password comes from when it is not an argument. */
function passwordFromStdin(): string {
  return readFileSync(0, 'utf8').split('\n')[0].replace(/\r$/, '');
}

/** The key right after every key with this prefix (etcd's GetPrefixRangeEnd); [0] when there is none. */
export function prefixEnd(key: Uint8Array): Uint8Array {
  for (let i = key.length - 1; i >= 0; i--) {
    if (key[i] < 0xff) {
      const end = key.slice(0, i + 1);
      end[i]++;
      return end;
    }
  }
  return new Uint8Array([0]);
}

/** A permission's key range as the flags ask: one key, [key, end), a prefix, or from a key on. */
function permRange(run: Run, key: string, end: string | undefined): { key: Uint8Array; range_end: Uint8Array } {
  const k = enc.encode(key);
  const prefix = run.has('prefix');
  const fromKey = run.has('from-key');
  if ([prefix, fromKey, end !== undefined].filter(Boolean).length > 1) throw new UsageError('give at most one of [range_end], --prefix, --from-key');
  if (prefix) return { key: k, range_end: prefixEnd(k) };
  if (fromKey) return { key: k, range_end: new Uint8Array([0]) };
  return { key: k, range_end: end === undefined ? new Uint8Array(0) : enc.encode(end) };
}

/** etcdctl's line for one permission in `role get`. */
function permLine(p: Wire): string {
  const key = new Uint8Array(p.key ?? []);
  const end = new Uint8Array(p.range_end ?? []);
  if (end.length === 0) return `\t${dec.decode(key)}`;
  if (end.length === 1 && end[0] === 0) return `\t[${dec.decode(key)}, <open ended>`;
  const range = `\t[${dec.decode(key)}, ${dec.decode(end)})`;
  const isPrefix = Buffer.compare(Buffer.from(prefixEnd(key)), Buffer.from(end)) === 0;
  return isPrefix ? `${range} (prefix ${dec.decode(key)})` : range;
}

const permTypes: Record<string, number> = { read: 0, write: 1, readwrite: 2 };

export const user = command(
  'user <add|delete|get|list|passwd|grant-role|revoke-role> [arguments] [--no-password] [--new-user-password=<password>]',
  { 'no-password': { type: 'boolean' }, 'new-user-password': { type: 'string' } },
  async (run) => {
    const [name, args] = sub(run, 'user', ['add', 'delete', 'get', 'list', 'passwd', 'grant-role', 'revoke-role']);
    switch (name) {
      case 'add': {
        const [spec] = exactly(args, 1, 'user add');
        const colon = spec.indexOf(':');
        const userName = colon < 0 ? spec : spec.slice(0, colon);
        const noPassword = run.has('no-password');
        let password = '';
        if (!noPassword) password = colon >= 0 ? spec.slice(colon + 1) : (run.flag('new-user-password') ?? passwordFromStdin());
        await callAny(run, 'Auth', 'UserAdd', { name: userName, password, options: { no_password: noPassword } });
        print(`User ${userName} created`);
        return 0;
      }
      case 'delete': {
        const [userName] = exactly(args, 1, 'user delete');
        await callAny(run, 'Auth', 'UserDelete', { name: userName });
        print(`User ${userName} deleted`);
        return 0;
      }
      case 'get': {
        const [userName] = exactly(args, 1, 'user get');
        const res = await callAny(run, 'Auth', 'UserGet', { name: userName });
        print(`User: ${userName}`);
        print(['Roles:', ...(res.roles as string[])].join(' '));
        return 0;
      }
      case 'list': {
        exactly(args, 0, 'user list');
        const res = await callAny(run, 'Auth', 'UserList', {});
        for (const u of res.users as string[]) print(u);
        return 0;
      }
      case 'passwd': {
        if (args.length < 1 || args.length > 2) throw new UsageError('user passwd needs <name> and optionally <password> (else the first line of stdin)');
        const password = args[1] ?? run.flag('new-user-password') ?? passwordFromStdin();
        await callAny(run, 'Auth', 'UserChangePassword', { name: args[0], password });
        print('Password updated');
        return 0;
      }
      case 'grant-role': {
        const [userName, role] = exactly(args, 2, 'user grant-role');
        await callAny(run, 'Auth', 'UserGrantRole', { user: userName, role });
        print(`Role ${role} is granted to user ${userName}`);
        return 0;
      }
      default: {
        const [userName, role] = exactly(args, 2, 'user revoke-role');
        await callAny(run, 'Auth', 'UserRevokeRole', { name: userName, role });
        print(`Role ${role} is revoked from user ${userName}`);
        return 0;
      }
    }
  },
);

export const role = command(
  'role <add|delete|get|list|grant-permission|revoke-permission> [arguments] [--prefix] [--from-key]',
  { prefix: { type: 'boolean' }, 'from-key': { type: 'boolean' } },
  async (run) => {
    const [name, args] = sub(run, 'role', ['add', 'delete', 'get', 'list', 'grant-permission', 'revoke-permission']);
    switch (name) {
      case 'add': {
        const [roleName] = exactly(args, 1, 'role add');
        await callAny(run, 'Auth', 'RoleAdd', { name: roleName });
        print(`Role ${roleName} created`);
        return 0;
      }
      case 'delete': {
        const [roleName] = exactly(args, 1, 'role delete');
        await callAny(run, 'Auth', 'RoleDelete', { role: roleName });
        print(`Role ${roleName} deleted`);
        return 0;
      }
      case 'get': {
        const [roleName] = exactly(args, 1, 'role get');
        const res = await callAny(run, 'Auth', 'RoleGet', { role: roleName });
        const perms = res.perm as Wire[];
        print(`Role ${roleName}`);
        print('KV Read:');
        for (const p of perms) if (p.permType === 0 || p.permType === 2) print(permLine(p));
        print('KV Write:');
        for (const p of perms) if (p.permType === 1 || p.permType === 2) print(permLine(p));
        return 0;
      }
      case 'list': {
        exactly(args, 0, 'role list');
        const res = await callAny(run, 'Auth', 'RoleList', {});
        for (const r of res.roles as string[]) print(r);
        return 0;
      }
      case 'grant-permission': {
        if (args.length < 3 || args.length > 4) throw new UsageError('role grant-permission needs <role> <read|write|readwrite> <key> [range_end]');
        const [roleName, type, key, end] = args;
        const permType = permTypes[type.toLowerCase()];
        if (permType === undefined) throw new UsageError(`invalid permission type ${JSON.stringify(type)} (read, write or readwrite)`);
        await callAny(run, 'Auth', 'RoleGrantPermission', { name: roleName, perm: { permType, ...permRange(run, key, end) } });
        print(`Role ${roleName} updated`);
        return 0;
      }
      default: {
        if (args.length < 2 || args.length > 3) throw new UsageError('role revoke-permission needs <role> <key> [range_end]');
        const [roleName, key, end] = args;
        const range = permRange(run, key, end);
        await callAny(run, 'Auth', 'RoleRevokePermission', { role: roleName, key: range.key, range_end: range.range_end });
        print(range.range_end.length === 0
          ? `Permission of key ${key} is revoked from role ${roleName}`
          : `Permission of range [${key}, ${dec.decode(range.range_end)}) is revoked from role ${roleName}`);
        return 0;
      }
    }
  },
);

export const auth = command('auth <enable|disable>', {}, async (run) => {
  const [name, args] = sub(run, 'auth', ['enable', 'disable']);
  exactly(args, 0, `auth ${name}`);
  if (name === 'disable') {
    await callAny(run, 'Auth', 'AuthDisable', {});
    print('Authentication Disabled');
    return 0;
  }
  try {
    await callAny(run, 'Auth', 'AuthEnable', {});
  } catch (err) {
    // As etcdctl does: a root user without the root role gets it, then enable is tried again.
    if ((err as Error).message !== 'etcdserver: root user does not have root role') throw err;
    await callAny(run, 'Auth', 'RoleAdd', { name: 'root' }).catch((e: Error) => {
      if (e.message !== 'etcdserver: role name already exists') throw e;
    });
    await callAny(run, 'Auth', 'UserGrantRole', { user: 'root', role: 'root' });
    await callAny(run, 'Auth', 'AuthEnable', {});
  }
  print('Authentication Enabled');
  return 0;
});
