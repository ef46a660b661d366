import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LmdbBackend } from '../../adapters/backend/lmdb.ts';
import { backendCompliance, text } from './compliance.ts';
import { crashBatchOps } from './lmdb-crash-layout.ts';

backendCompliance('LmdbBackend', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'meshkv-lmdb-'));
  return {
    async open() {
      return LmdbBackend.open(dir);
    },
    async cleanup() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

/** Starts the crash child, waits until it has committed `committedMin` batches, kills it with SIGKILL mid-stream. */
function runAndKill(dir: string, committedMin: number, extraMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'lmdb-crash-child.ts'), dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let lastCommitted = 0;
    let seen = 0;
    let killing = false;
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.on('data', (d: Buffer) => {
      for (const m of d.toString().matchAll(/committed (\d+)/g)) {
        lastCommitted = Number(m[1]);
        seen++;
      }
      if (!killing && seen >= committedMin) {
        killing = true;
        setTimeout(() => child.kill('SIGKILL'), extraMs);
      }
    });
    child.on('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve(lastCommitted);
      else reject(new Error(`crash child exited ${code}: ${stderr}`));
    });
  });
}

describe('LmdbBackend crash consistency (real process, SIGKILL)', () => {
  it('after a kill in the middle of a commit, the applied index matches exactly the batches stored', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'meshkv-lmdb-crash-'));
    try {
      let previous = 0;
      for (const [round, extraMs] of [0, 3, 7, 1, 11].entries()) {
        const acknowledged = await runAndKill(dir, 5, extraMs);
        const backend = LmdbBackend.open(dir);
        const k = backend.appliedIndex;
        // Never behind what the child saw committed, never ahead of its data.
        expect(k, `round ${round}`).toBeGreaterThanOrEqual(acknowledged);
        expect(k).toBeGreaterThan(previous);
        expect(text(backend.get('meta', new TextEncoder().encode('last')))).toBe(String(k));
        const perBatch = new Map<number, number>();
        backend.range('key', new Uint8Array(0), null, (key) => {
          const batch = Number(/^b(\d+)-/.exec(text(key)!)![1]);
          perBatch.set(batch, (perBatch.get(batch) ?? 0) + 1);
        });
        const expected = new Map<number, number>();
        for (let i = Math.max(1, k - 2); i <= k; i++) expected.set(i, crashBatchOps);
        expect([...perBatch].sort((a, b) => a[0] - b[0])).toEqual([...expected]);
        await backend.close();
        previous = k;
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
