// The admission secret's configuration: where it comes from, who may generate one, and that
// no error ever quotes a secret.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../adapters/node/config.ts';
import { StartError, startNodeMember } from '../../adapters/node/node-member.ts';
import { freePort } from '../helpers/processes.ts';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function config(argv: string[], env: Record<string, string> = {}) {
  const r = parseConfig(argv, env);
  if (r.kind !== 'start') throw new Error('expected a start config');
  return r.config;
}

function refusal(argv: string[], env: Record<string, string> = {}): string {
  try {
    parseConfig(argv, env);
  } catch (err) {
    if (err instanceof ConfigError) return err.message;
    throw err;
  }
  throw new Error(`parseConfig accepted ${argv.join(' ')}`);
}

describe('the admission secret', () => {
  it('comes from the flag, its variable, a file, or else the data directory', () => {
    expect(config(['--admission-secret', 'sixteen-chars-ok']).security.admissionSecret).toEqual({ kind: 'value', value: 'sixteen-chars-ok' });
    expect(config([], { MESHKV_ADMISSION_SECRET: 'from-the-environment' }).security.admissionSecret).toEqual({ kind: 'value', value: 'from-the-environment' });
    expect(config(['--admission-secret-file', '/run/secrets/meshkv']).security.admissionSecret).toEqual({ kind: 'file', path: '/run/secrets/meshkv' });
    expect(config([]).security.admissionSecret).toEqual({ kind: 'data-dir' });
  });

  it('refuses a weak secret or two sources without quoting the secret', () => {
    const weak = refusal(['--admission-secret', 'hunter2']);
    expect(weak).toBe('--admission-secret is shorter than 16 characters');
    expect(weak).not.toContain('hunter2');
    expect(refusal(['--admission-secret', 'sixteen-chars-ok', '--admission-secret-file', '/x'])).toBe('give --admission-secret or --admission-secret-file, not both');
  });

  it('with peer TLS, tabs stay out unless browser peers are asked for with a secret of their own', () => {
    const tls = ['--peer-cert-file', 'c', '--peer-key-file', 'k', '--peer-trusted-ca-file', 'ca', '--initial-advertise-peer-urls', 'https://127.0.0.1:2380'];
    expect(config(tls).browserPeers).toBeNull();
    expect(refusal([...tls, '--browser-peers', 'on'])).toMatch(/^with peer TLS, --browser-peers on needs --browser-admission-secret or --browser-admission-secret-file/);
    expect(config([...tls, '--browser-peers', 'on', '--browser-admission-secret', 'the-tabs-own-secret']).security.browserAdmissionSecret).toEqual({ kind: 'value', value: 'the-tabs-own-secret' });
  });

  it('a member with other members is not started on a secret only it would know', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'meshkv-sec-secrets-'));
    dirs.push(dir);
    const c = config(['--name', 'a', '--data-dir', join(dir, 'a'), '--listen-client-urls', `http://127.0.0.1:${await freePort()}`, '--initial-cluster', `a=http://127.0.0.1:${await freePort()},b=http://127.0.0.1:${await freePort()}`]);
    const err = await startNodeMember(c, { log: () => {} }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StartError);
    expect((err as Error).message).toBe('no admission secret: this member has other members (--initial-cluster names 2): give every member the same --admission-secret or --admission-secret-file');
  });

  it('a secret file that is too short is refused without printing what it holds', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'meshkv-sec-secrets-'));
    dirs.push(dir);
    const file = join(dir, 'secret');
    writeFileSync(file, 'short-secret\n');
    const c = config(['--data-dir', join(dir, 'data'), '--listen-client-urls', `http://127.0.0.1:${await freePort()}`, '--admission-secret-file', file]);
    const err = await startNodeMember(c, { log: () => {} }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StartError);
    expect((err as Error).message).toBe(`--admission-secret-file ${file}: the secret in it is shorter than 16 characters`);
  });
});
