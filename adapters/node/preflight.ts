// Checks before a member writes anything: every port it will listen on is free, and the data
// directory is a directory this user may write. An operator's mistake then stops the start
// with one line naming it (etcd's words where etcd has them), before a WAL is created or an
// election held, instead of a stack trace or a half-made data directory.

import { constants, accessSync, mkdirSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import type { NodeConfig } from './config.ts';

/**
 * The first problem found, or null: the client ports, the peer port (when the member opens its
 * own peer listener), then the data directory, which is created here when missing.
 */
export async function preflightProblem(config: Pick<NodeConfig, 'listenClientUrls' | 'listenPeerUrls' | 'dataDir'>, peerListener: boolean): Promise<string | null> {
  const urls = [...config.listenClientUrls, ...(peerListener && config.listenPeerUrls ? config.listenPeerUrls.slice(0, 1) : [])];
  for (const url of urls) {
    const problem = await portProblem(url.hostname.replace(/^\[(.*)\]$/, '$1'), Number(url.port));
    if (problem !== null) return problem;
  }
  return dataDirProblem(config.dataDir);
}

/** Why `host:port` cannot be listened on, or null when it can (the port is released again at once). */
export function portProblem(host: string, port: number): Promise<string | null> {
  if (port === 0) return Promise.resolve(null);
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) => resolve(`listen tcp ${host}:${port}: bind: ${bindReason(err)}`));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(null)));
  });
}

function bindReason(err: NodeJS.ErrnoException): string {
  // Go's wording, which etcd prints.
  if (err.code === 'EADDRINUSE') return 'address already in use';
  if (err.code === 'EACCES') return 'permission denied';
  if (err.code === 'EADDRNOTAVAIL') return 'cannot assign requested address';
  return err.code ?? err.message;
}

/**
 * Why the data directory cannot be used, or null. Creates it (with its parents) when missing:
 * that is the first write, made only after every port checked out.
 */
export function dataDirProblem(dir: string): string | null {
  let stat;
  try {
    stat = statSync(dir, { throwIfNoEntry: false });
  } catch (err) {
    return `cannot access data directory: stat ${dir}: ${fsReason(err as NodeJS.ErrnoException)}`;
  }
  if (stat !== undefined && !stat.isDirectory()) return `cannot access data directory: ${dir} is a file, not a directory`;
  try {
    // Private, as member-secrets.ts makes it: the directory holds the admission secrets.
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    accessSync(dir, constants.W_OK | constants.X_OK);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const what = stat === undefined ? `mkdir ${e.path ?? dir}` : `open ${dir}`;
    return `cannot access data directory: ${what}: ${fsReason(e)}`;
  }
  return null;
}

function fsReason(e: NodeJS.ErrnoException): string {
  if (e.code === 'EACCES' || e.code === 'EPERM') return `permission denied (${e.code}): choose a --data-dir this user may write, or change its owner`;
  if (e.code === 'ENOTDIR') return 'a parent is a file, not a directory (ENOTDIR)';
  if (e.code === 'EROFS') return 'read-only file system (EROFS)';
  if (e.code === 'ENOSPC') return 'no space left on device (ENOSPC)';
  return e.code ?? e.message;
}
