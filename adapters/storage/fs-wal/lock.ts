// One process per data directory: an exclusive lock file holding the owner's pid, created
// atomically with its content (write a private temp file, then link() it into place, which
// fails if the lock exists). A lock whose pid is not running is stale and taken over with a
// warning, as is one naming our own pid that this process does not hold. Known limit: if the stale pid was reused by an unrelated process, the lock looks
// live and the error tells the operator which file to delete.

import { join, resolve } from 'node:path';
import type { Logger } from '../../../src/raft/config.ts';
import { StorageError } from '../errors.ts';
import type { WalFs } from './fs.ts';

export const lockFileName = 'LOCK';

/**
 * Lock files this process holds. A lock naming our own pid is ours only if it is in here;
 * otherwise an earlier process had the same pid (containers restart as pid 1 every time).
 */
const held = new Set<string>();

export interface LockOptions {
  fs: WalFs;
  logger: Logger;
  pid: number;
  isProcessAlive: (pid: number) => boolean;
}

export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function acquireLock(dir: string, opts: LockOptions): Promise<() => Promise<void>> {
  const lockPath = join(dir, lockFileName);
  const tmpPath = join(dir, `${lockFileName}.${opts.pid}.tmp`);
  await opts.fs.unlink(tmpPath).catch(ignoreNotFound);
  await opts.fs.writeNewFile(tmpPath, new TextEncoder().encode(`${opts.pid}\n`));
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        await opts.fs.link(tmpPath, lockPath);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const holder = await readHolder(opts.fs, lockPath);
      if (holder === 'gone') continue;
      const ours = holder === opts.pid;
      if ((ours && held.has(resolve(lockPath))) || (!ours && holder !== null && opts.isProcessAlive(holder))) {
        throw new StorageError(
          'locked',
          `data dir ${dir} is locked by process ${holder}${ours ? ' (this process)' : ''}: ` +
            `${ours ? 'close the other storage on it first' : 'stop that process first'}; if it is not a meshkv member, delete ${lockPath}`,
        );
      }
      if (attempt > 0) {
        throw new StorageError('locked', `data dir ${dir}: another process took over the stale lock ${lockPath} at the same time; retry`);
      }
      const why =
        holder === null
          ? 'it holds no valid pid'
          : ours
            ? `it names this process's pid ${holder}, left by an earlier process with the same pid (e.g. a container restart)`
            : `process ${holder} is not running`;
      opts.logger.warn(`taking over stale lock ${lockPath}: ${why}`);
      await opts.fs.unlink(lockPath).catch(ignoreNotFound);
    }
    // Temp files of processes that died between writing theirs and linking it.
    for (const name of await opts.fs.readdir(dir)) {
      const pid = /^LOCK\.(\d+)\.tmp$/.exec(name)?.[1];
      if (pid !== undefined && Number(pid) !== opts.pid && !opts.isProcessAlive(Number(pid))) {
        await opts.fs.unlink(join(dir, name)).catch(ignoreNotFound);
      }
    }
    await opts.fs.syncDir(dir);
  } finally {
    await opts.fs.unlink(tmpPath).catch(ignoreNotFound);
  }
  held.add(resolve(lockPath));
  return async () => {
    held.delete(resolve(lockPath));
    const holder = await readHolder(opts.fs, lockPath);
    if (holder !== opts.pid) {
      opts.logger.warn(`not removing lock ${lockPath}: it now names process ${String(holder)}, not ${opts.pid}`);
      return;
    }
    await opts.fs.unlink(lockPath);
  };
}

/** The pid in the lock file, null if unreadable as a pid, 'gone' if the file vanished. */
async function readHolder(fs: WalFs, lockPath: string): Promise<number | null | 'gone'> {
  let text: string;
  try {
    text = new TextDecoder().decode(await fs.readFile(lockPath));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'gone';
    throw err;
  }
  const pid = Number(text.trim());
  return Number.isSafeInteger(pid) && pid > 0 ? pid : null;
}

function ignoreNotFound(err: unknown): void {
  if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
}
