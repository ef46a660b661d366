// lock and elect: clientv3/concurrency's recipes (src/client/lock.ts, election.ts), so they
// interoperate with `etcdctl lock` / `etcdctl elect` on the same names.

import { spawn } from 'node:child_process';
import { toText } from '../../../src/client/bytes.ts';
import type { KeyValue } from '../../../src/mvcc/types.ts';
import { command, interrupted, print, UsageError } from './common.ts';

function printKv(kv: KeyValue): void {
  print(toText(kv.key));
  print(toText(kv.value));
}

/** Runs `argv` with the lock key and revision in its environment (as etcdctl does); its exit code. */
function runHolding(argv: string[], key: string, revision: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), {
      stdio: 'inherit',
      env: { ...process.env, ETCD_LOCK_KEY: key, ETCD_LOCK_REV: String(revision) },
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}

/**
 * Waits for `attempt` (acquire, campaign); Ctrl-C meanwhile gives it up with `giveUp` (which
 * leaves no key behind). True if it was given up.
 */
async function whileWaiting(attempt: Promise<void>, stopped: Promise<void>, giveUp: () => Promise<void>): Promise<boolean> {
  const outcome = await Promise.race([attempt.then(() => 'done' as const), stopped.then(() => 'stopped' as const)]);
  if (outcome === 'done') return false;
  await giveUp();
  await attempt.catch(() => {}); // rejected by giveUp(), as intended
  return true;
}

export const lock = command('lock <name> [-- command arg...]', { ttl: { type: 'string' } }, async (run) => {
  const [name, ...argv] = run.args;
  if (name === undefined) throw new UsageError('lock needs <name>');
  const ttlSeconds = run.flag('ttl') === undefined ? undefined : Number(run.flag('ttl'));
  if (ttlSeconds !== undefined && !(Number.isInteger(ttlSeconds) && ttlSeconds > 0)) throw new UsageError('--ttl: not a positive integer');
  const mutex = run.client.lock(name, ttlSeconds === undefined ? {} : { ttlSeconds });
  const stopped = interrupted();
  if (await whileWaiting(mutex.acquire(), stopped, () => mutex.release())) return 0;
  const lost = new Promise<never>((_, reject) => mutex.session!.on('lost', (err) => reject(err)));
  try {
    if (argv.length > 0) return await Promise.race([runHolding(argv, mutex.ownKey!, mutex.header!.revision), lost]);
    print(mutex.ownKey!);
    await Promise.race([stopped, lost]);
    return 0;
  } finally {
    await mutex.release();
  }
});

export const elect = command('elect <name> [proposal] | elect -l <name>', { listen: { type: 'boolean', short: 'l' } }, async (run) => {
  if (run.has('listen')) {
    const [name] = run.positionals(1);
    const observer = run.client.election(name).observe();
    observer.on('change', (_value, kv) => printKv(kv));
    const failed = new Promise<never>((_, reject) => observer.on('error', reject));
    await Promise.race([interrupted(), failed]);
    observer.cancel();
    return 0;
  }
  const [name, proposal] = run.positionals(2);
  const election = run.client.election(name);
  const stopped = interrupted();
  if (await whileWaiting(election.campaign(proposal), stopped, () => election.resign())) return 0;
  try {
    const kv = await election.leaderKv();
    if (kv !== null) printKv(kv);
    const lost = new Promise<never>((_, reject) => election.session!.on('lost', (err) => reject(err)));
    await Promise.race([stopped, lost]);
    return 0;
  } finally {
    await election.resign();
  }
});
