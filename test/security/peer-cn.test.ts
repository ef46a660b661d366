// --peer-cert-allowed-cn on real members: with mutual peer TLS, a member accepts peer
// connections only from certificates whose CommonName is the allowed one, as etcd does.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../adapters/node/config.ts';
import { startNodeMember, type NodeMember } from '../../adapters/node/node-member.ts';
import { freePort } from '../helpers/processes.ts';
import { waitFor } from '../helpers/wait.ts';

const secret = 'security-peer-cn-admission-secret';
let dir: string;
const file = (name: string) => join(dir, name);
const running: NodeMember[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'meshkv-sec-cn-'));
  const run = (...args: string[]) => execFileSync('/usr/bin/openssl', args, { stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  run('req', '-x509', ...ec, '-keyout', file('ca.key'), '-out', file('ca.crt'), '-days', '2', '-subj', '/CN=meshkv test CA');
  run('req', ...ec, '-keyout', file('peer.key'), '-out', file('peer.csr'), '-subj', '/CN=meshkv peer');
  writeFileSync(file('peer.ext'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n');
  run('x509', '-req', '-in', file('peer.csr'), '-CA', file('ca.crt'), '-CAkey', file('ca.key'), '-CAcreateserial', '-out', file('peer.crt'), '-days', '2', '-extfile', file('peer.ext'));
});

afterAll(async () => {
  for (const m of running) await m.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Two members a and b of a new cluster over mutual TLS, each with its --peer-cert-allowed-cn. */
async function pair(allowed: { a: string; b: string }, tag: string): Promise<{ members: NodeMember[]; logs: string[] }> {
  const peers = { a: await freePort(), b: await freePort() };
  const cluster = `a=https://127.0.0.1:${peers.a},b=https://127.0.0.1:${peers.b}`;
  const logs: string[] = [];
  const members: NodeMember[] = [];
  for (const name of ['a', 'b'] as const) {
    const parsed = parseConfig(
      [
        '--name', name,
        '--data-dir', file(`${tag}-${name}`),
        '--listen-client-urls', `http://127.0.0.1:${await freePort()}`,
        '--initial-cluster', cluster,
        '--admission-secret', secret,
        '--peer-cert-file', file('peer.crt'), '--peer-key-file', file('peer.key'), '--peer-trusted-ca-file', file('ca.crt'),
        '--peer-cert-allowed-cn', allowed[name],
      ],
      {},
    );
    if (parsed.kind !== 'start') throw new Error('expected a start config');
    const m = await startNodeMember(parsed.config, { log: (level, msg) => logs.push(`${name} ${level}: ${msg}`) });
    running.push(m);
    members.push(m);
  }
  return { members, logs };
}

describe('--peer-cert-allowed-cn', () => {
  it('members whose certificates carry the allowed CommonName form a cluster', async () => {
    const { members } = await pair({ a: 'meshkv peer', b: 'meshkv peer' }, 'allowed');
    await waitFor('a leader', () => members.some((m) => m.kv.member.isLeader()), 20_000);
  });

  it('a member refuses peers whose CommonName is another: no quorum forms', async () => {
    const { members, logs } = await pair({ a: 'meshkv peer', b: 'someone else' }, 'refused');
    await waitFor('b to refuse a', () => logs.some((l) => l.startsWith('b warn:') && l.includes(`refused a peer whose certificate's CommonName "meshkv peer" is not the allowed "someone else"`)), 20_000);
    expect(members.some((m) => m.kv.member.isLeader())).toBe(false);
  });
});
