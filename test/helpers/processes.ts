// Child processes for tests that run real meshkv, etcd and etcdctl binaries.

import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import type { Readable } from 'node:stream';

/** A port that was free a moment ago: bound to :0, read back, released. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  await new Promise((r) => server.close(r));
  return port;
}

/** Appends each complete line `stream` emits to `lines`. */
export function collectLines(stream: Readable, lines: string[]): void {
  let partial = '';
  stream.on('data', (d: Buffer) => {
    const parts = (partial + d.toString()).split('\n');
    partial = parts.pop()!;
    lines.push(...parts);
  });
}

export interface Spawned {
  child: ChildProcess;
  /** Lines the process wrote to the collected streams, in arrival order. */
  logs: string[];
  /** Resolves with the exit code once the process has ended. */
  exited: Promise<number | null>;
}

/** Starts `cmd`, collecting the lines of stderr (and of stdout too when `stdout` is true). */
export function spawnCollecting(cmd: string, args: string[], opts: { env?: Record<string, string>; stdout?: boolean } = {}): Spawned {
  const child = spawn(cmd, args, { env: { ...process.env, ...opts.env }, stdio: ['ignore', opts.stdout ? 'pipe' : 'ignore', 'pipe'] });
  const logs: string[] = [];
  if (opts.stdout) collectLines(child.stdout!, logs);
  collectLines(child.stderr!, logs);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, logs, exited };
}
