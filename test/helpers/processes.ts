// Child processes for tests that run real meshkv, etcd and etcdctl binaries.

import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import type { Readable } from 'node:stream';

/** A port that was free a moment ago: bound, then released for the caller to use. */
export async function freePort(): Promise<number> {
  // Below Linux's ephemeral range (32768–60999): a port the kernel handed out and took back
  // can be given at once to some process's outgoing connection as its source port, and the
  // server started on it next then finds it in use. Random, so parallel test files rarely meet.
  for (let attempt = 0; ; attempt++) {
    const port = freePortLow + Math.floor(Math.random() * (freePortHigh - freePortLow));
    // Free now is not enough: a port handed out earlier in this process may not be bound yet
    // (a test that picks every member's ports before starting any; CI saw a peer port equal
    // to another member's client port).
    if (handedOut.has(port)) continue;
    const server = createServer();
    const bound = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (bound) {
      await new Promise((r) => server.close(r));
      handedOut.add(port);
      return port;
    }
    if (attempt >= 100) throw new Error('freePort: no free port found in 100 tries');
  }
}

const handedOut = new Set<number>();
const freePortLow = 20_000;
const freePortHigh = 32_000;

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
