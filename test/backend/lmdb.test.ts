import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LmdbBackend } from '../../adapters/backend/lmdb.ts';
import { backendCompliance, batch, bytes, put, text } from './compliance.ts';
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

// As a member opens it, commits wait for an interval to share a write transaction. The suite
// awaits thousands of commits one by one, so it runs the timer path with a shorter interval
// than a member's (--backend-batch-interval, 100ms by default).
const suiteBatchIntervalMs = 2;
backendCompliance(`LmdbBackend, batchIntervalMs ${suiteBatchIntervalMs}`, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'meshkv-lmdb-batched-'));
  return {
    async open() {
      return LmdbBackend.open(dir, { batchIntervalMs: suiteBatchIntervalMs });
    },
    async cleanup() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

describe('LmdbBackend batch interval', () => {
  const hourMs = 3_600_000;
  const withBackend = async (options: Parameters<typeof LmdbBackend.open>[1], body: (b: LmdbBackend, dir: string) => Promise<void>) => {
    const dir = mkdtempSync(join(tmpdir(), 'meshkv-lmdb-interval-'));
    const backend = LmdbBackend.open(dir, options);
    try {
      await body(backend, dir);
    } finally {
      await backend.close();
      rmSync(dir, { recursive: true, force: true });
    }
  };

  it('commits wait for the interval in one write transaction; durable() writes them at once', async () => {
    await withBackend({ batchIntervalMs: hourMs }, async (backend) => {
      let committed = 0;
      const commits = [1, 2, 3].map((i) => backend.commit(batch(i, [put('key', `k${i}`, `v${i}`)])).then(() => committed++));
      await new Promise((r) => setTimeout(r, 50));
      // Still waiting: neither the data nor the applied index is in the backend yet.
      expect(committed).toBe(0);
      expect(backend.get('key', bytes('k1'))).toBeUndefined();
      expect(backend.appliedIndex).toBe(0);
      expect(await backend.durable()).toBe(3);
      await Promise.all(commits);
      expect(committed).toBe(3);
      expect(text(backend.get('key', bytes('k3')))).toBe('v3');
    });
  });

  it('batchOpsMax waiting ops start the write transaction before the interval ends', async () => {
    await withBackend({ batchIntervalMs: hourMs, batchOpsMax: 4 }, async (backend) => {
      const ops = (i: number) => [put('key', `a${i}`, 'x'), put('key', `b${i}`, 'y')];
      await Promise.all([backend.commit(batch(1, ops(1))), backend.commit(batch(2, ops(2)))]);
      expect(backend.appliedIndex).toBe(2);
      expect(text(backend.get('key', bytes('b2')))).toBe('y');
    });
  });

  it('close() writes the waiting batches; a reopened backend holds them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'meshkv-lmdb-interval-'));
    try {
      const backend = LmdbBackend.open(dir, { batchIntervalMs: hourMs });
      const committed = backend.commit(batch(1, [put('key', 'k', 'v')]));
      await backend.close();
      await committed;
      const reopened = LmdbBackend.open(dir);
      expect(reopened.appliedIndex).toBe(1);
      expect(text(reopened.get('key', bytes('k')))).toBe('v');
      await reopened.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a negative interval or a zero ops limit', () => {
    const dir = mkdtempSync(join(tmpdir(), 'meshkv-lmdb-interval-'));
    try {
      expect(() => LmdbBackend.open(dir, { batchIntervalMs: -1 })).toThrow(/batchIntervalMs \(-1\) must be >= 0/);
      expect(() => LmdbBackend.open(dir, { batchOpsMax: 0 })).toThrow(/batchOpsMax \(0\) >= 1/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
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
