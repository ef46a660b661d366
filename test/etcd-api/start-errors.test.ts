// Operator mistakes at start-up end in one log line that names the mistake, exit code 1 (2 for
// usage), and no stack trace; a busy port is found before anything is written to the data dir.

import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, spawnCollecting } from '../helpers/processes.ts';

const repo = new URL('../..', import.meta.url).pathname;
const bin = join(repo, 'bin/meshkv.mjs');
let dir: string;
const nobody = 65534;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'meshkv-start-errors-'));
  // Readable by the unprivileged user the permission test runs as.
  chmodSync(dir, 0o755);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs the meshkv command to its end (optionally as another user); every stderr line. */
async function meshkv(args: string[], as?: { uid: number }): Promise<{ code: number | null; lines: string[] }> {
  const command = as ? ['/usr/bin/setpriv', [`--reuid=${as.uid}`, `--regid=${as.uid}`, '--clear-groups', process.execPath, bin, ...args]] as const : [process.execPath, [bin, ...args]] as const;
  const run = spawnCollecting(command[0], [...command[1]]);
  return { code: await run.exited, lines: run.logs };
}

/** The one error line, parsed; no line of the output is a stack frame. */
function errorOf(lines: string[]): string {
  for (const line of lines) expect(line).not.toMatch(/^\s+at /);
  const errors = lines.map((l) => JSON.parse(l) as { level: string; msg: string }).filter((l) => l.level === 'error');
  expect(errors).toHaveLength(1);
  return errors[0].msg;
}

async function occupy(port: number): Promise<Server> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return server;
}

describe('start-up errors', () => {
  it('a data dir that is a file', async () => {
    const file = join(dir, 'a-file');
    writeFileSync(file, 'not a directory');
    const r = await meshkv(['--data-dir', file, `--listen-client-urls=http://127.0.0.1:${await freePort()}`, '--browser-peers=off']);
    expect(r.code).toBe(1);
    expect(errorOf(r.lines)).toBe(`cannot access data directory: ${file} is a file, not a directory`);
  });

  it('a data dir this user may not create: EACCES, without a stack trace', async () => {
    if (process.getuid?.() !== 0) throw new Error('this test runs meshkv as an unprivileged user through setpriv, which needs root (CI runs as root)');
    const locked = join(dir, 'locked');
    mkdirSync(locked, { mode: 0o755 });
    const data = join(locked, 'data');
    const r = await meshkv(['--data-dir', data, `--listen-client-urls=http://127.0.0.1:${await freePort()}`, '--browser-peers=off'], { uid: nobody });
    expect(r.code).toBe(1);
    expect(errorOf(r.lines)).toBe(`cannot access data directory: mkdir ${data}: permission denied (EACCES): choose a --data-dir this user may write, or change its owner`);
    expect(existsSync(data)).toBe(false);
  });

  it('a busy client port or peer port is found before the data dir is made', async () => {
    const [client, peer] = [await freePort(), await freePort()];
    const data = join(dir, 'never-made');
    const busy = await occupy(client);
    try {
      const r = await meshkv(['--data-dir', data, `--listen-client-urls=http://127.0.0.1:${client}`, '--browser-peers=off']);
      expect(r.code).toBe(1);
      expect(errorOf(r.lines)).toBe(`listen tcp 127.0.0.1:${client}: bind: address already in use`);
      expect(existsSync(data)).toBe(false);
    } finally {
      busy.close();
    }
    const busyPeer = await occupy(peer);
    try {
      const r = await meshkv([
        '--data-dir', data, `--listen-client-urls=http://127.0.0.1:${await freePort()}`, '--browser-peers=off',
        `--listen-peer-urls=http://127.0.0.1:${peer}`, `--initial-advertise-peer-urls=http://127.0.0.1:${peer}`,
      ]);
      expect(r.code).toBe(1);
      expect(errorOf(r.lines)).toBe(`listen tcp 127.0.0.1:${peer}: bind: address already in use`);
      expect(existsSync(data)).toBe(false);
    } finally {
      busyPeer.close();
    }
  });

  it('npm start --flag without -- says how to pass flags through npm', async () => {
    const r = await new Promise<{ code: number; stderr: string }>((resolve) =>
      execFile('npm', ['start', '--name', 'one'], { cwd: repo, timeout: 60_000 }, (err, _stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stderr })),
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('meshkv: npm took --name for itself; npm start passes flags to meshkv only after --: npm start -- --name one --data-dir ./one.data\n');
  });
});
