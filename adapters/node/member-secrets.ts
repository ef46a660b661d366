// The secrets a Node member starts with: the admission secret (peer port and signaling), the
// tabs' own admission secret when one is set, and the fault endpoint's secret. A secret given
// by flag or environment is used as it is; a file flag's file is read (its first line); with
// neither, the member keeps one in its data directory, made on first start (32 random bytes,
// base64url, mode 0600). A founding member alone may make one; members of a larger cluster
// must all be given the same secret, so that they admit each other. No secret is ever logged
// or quoted in an error: errors name the flag or the file.

import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { chmod, mkdir, open, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { secretProblem, type SecretSource } from './security-config.ts';
import type { NodeConfig } from './config.ts';

export interface MemberSecrets {
  /** Checked in the TCP Hello; also the signaling secret unless `signalingSecret` differs. */
  admission: string;
  /** What tabs and signaling members present (pages this member serves fetch it). */
  signaling: string;
  /** The fault endpoint's bearer secret; null without --experimental-fault-injection. */
  fault: string | null;
}

export class SecretError extends Error {}

/** File names in the data directory. */
export const admissionSecretFile = 'admission-secret';
export const faultSecretFile = 'fault-injection-secret';
/** Random bytes in a generated secret. */
const generatedSecretBytes = 32;

export type SecretLog = (level: 'info' | 'warn', msg: string, fields?: Record<string, unknown>) => void;

export async function loadMemberSecrets(config: NodeConfig, log: SecretLog): Promise<MemberSecrets> {
  const s = config.security;
  const founderAlone = config.initialCluster.length === 1 && config.initialClusterState === 'new';
  const admission = await loadSecret(s.admissionSecret, {
    flag: 'admission-secret',
    dataDir: config.dataDir,
    fileName: admissionSecretFile,
    log,
    // A generated secret is known to this member alone: the others could never be admitted.
    mayGenerate: founderAlone,
    cannotGenerate: `this member has other members (--initial-cluster names ${config.initialCluster.length}${config.initialClusterState === 'existing' ? ', joining an existing cluster' : ''}): give every member the same --admission-secret or --admission-secret-file`,
  });
  const browser = s.browserAdmissionSecret && (await loadSecret(s.browserAdmissionSecret, { flag: 'browser-admission-secret', dataDir: config.dataDir, fileName: '', log, mayGenerate: false, cannotGenerate: '' }));
  const fault = config.faultInjection
    ? await loadSecret(s.faultInjectionSecret, { flag: 'experimental-fault-injection-secret', dataDir: config.dataDir, fileName: faultSecretFile, log, mayGenerate: true, cannotGenerate: '' })
    : null;
  return { admission, signaling: browser || admission, fault };
}

interface LoadOptions {
  flag: string;
  dataDir: string;
  fileName: string;
  log: SecretLog;
  mayGenerate: boolean;
  cannotGenerate: string;
}

async function loadSecret(source: SecretSource, o: LoadOptions): Promise<string> {
  if (source.kind === 'value') return source.value;
  if (source.kind === 'file') return (await readSecretFile(source.path, `--${o.flag}-file`))!;
  const path = join(o.dataDir, o.fileName);
  const existing = await readSecretFile(path, `the ${o.fileName} file in --data-dir`, true);
  if (existing !== null) {
    o.log('info', `using the secret for --${o.flag} kept in the data directory`, { file: path });
    return existing;
  }
  if (!o.mayGenerate) throw new SecretError(`no admission secret: ${o.cannotGenerate}`);
  const secret = randomBytes(generatedSecretBytes).toString('base64url');
  await mkdir(o.dataDir, { recursive: true, mode: 0o700 });
  let file;
  try {
    file = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  } catch (err) {
    // Another process made it first (two starts on one data dir): use theirs.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return (await readSecretFile(path, `the ${o.fileName} file in --data-dir`))!;
    throw new SecretError(`cannot create ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    await file.writeFile(`${secret}\n`);
    await file.sync();
  } finally {
    await file.close();
  }
  const dir = await open(o.dataDir, constants.O_RDONLY);
  await dir.sync().finally(() => dir.close());
  o.log('info', `generated a secret for --${o.flag}; give it to the members and pages that must be admitted`, { file: path });
  return secret;
}

/** The secret in the first line of `path`, or null when `missingOk` and there is no file. */
async function readSecretFile(path: string, what: string, missingOk = false): Promise<string | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (missingOk && code === 'ENOENT') return null;
    throw new SecretError(`${what}: cannot read ${path}: ${code ?? (err as Error).message}`);
  }
  // Others must not read the data directory's copy; one copied in with a loose mode is tightened.
  if (missingOk && ((await stat(path)).mode & 0o077) !== 0) await chmod(path, 0o600).catch(() => {});
  const secret = text.split(/\r?\n/)[0];
  const problem = secretProblem(secret);
  if (problem) throw new SecretError(`${what} ${path}: the secret in it ${problem}`);
  return secret;
}
