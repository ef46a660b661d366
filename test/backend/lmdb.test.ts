import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LmdbBackend } from '../../adapters/backend/lmdb.ts';
import { readChunk, type ChunkCursor } from '../../src/server/snapshot-stream.ts';
import { crc32c } from '../../src/codec/crc32c.ts';
import { backendCompliance, batch, bytes, dump, put, text } from './compliance.ts';
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

describe('LmdbBackend staging through its chunk writer thread (BackendStaging.writeChunk)', () => {
  const enc = (s: string) => new TextEncoder().encode(s);
  /** Framed pairs as a stream chunk carries them (src/server/snapshot-stream.ts). */
  function chunkOf(backend: LmdbBackend): Uint8Array[] {
    const view = backend.view();
    const chunks: Uint8Array[] = [];
    let cursor: ChunkCursor | null = { bucket: 0, after: null };
    while (cursor !== null) {
      const { pairs, next } = readChunk(view, cursor, 4096);
      chunks.push(pairs.slice());
      cursor = next;
    }
    view.release();
    return chunks;
  }

  async function withBackends(run: (source: LmdbBackend, target: LmdbBackend) => Promise<void>): Promise<void> {
    const dir = mkdtempSync(join(tmpdir(), 'meshkv-lmdb-stage-'));
    const source = LmdbBackend.open(join(dir, 'source'));
    const target = LmdbBackend.open(join(dir, 'target'));
    try {
      await source.commit({ clear: false, ops: Array.from({ length: 200 }, (_, i) => ({ bucket: 'key' as const, key: enc(`k${String(i).padStart(4, '0')}`), value: new Uint8Array(100).fill(i) })), appliedIndex: 40 });
      await target.commit({ clear: false, ops: [{ bucket: 'key', key: enc('old'), value: enc('live') }], appliedIndex: 7 });
      await run(source, target);
    } finally {
      await source.close();
      await target.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }

  it('writes every chunk, answers with the running CRC-32C, and the adopted content equals the source', async () => {
    await withBackends(async (source, target) => {
      const chunks = chunkOf(source);
      expect(chunks.length).toBeGreaterThan(4);
      const staging = target.stage();
      // Handed over at once, as a receiver does with its window: written in call order. Each in a
      // buffer of its own, as TCP's StreamChunk frames deliver them: taken (transferred), not copied.
      const handed = chunks.map((c) => c.slice());
      const crcs = await Promise.all(handed.map((c) => staging.writeChunk!(c)));
      expect(handed.map((c) => c.byteLength)).toEqual(chunks.map(() => 0));
      let crc = 0;
      expect(crcs).toEqual(chunks.map((c) => (crc = crc32c(c, crc))));
      // Staged pairs stay invisible until the adopt.
      expect(text(target.get('key', enc('old')))).toBe('live');
      expect(target.get('key', enc('k0000'))).toBeUndefined();
      expect(() => staging.write([{ bucket: 'key', key: enc('x'), value: enc('y') }])).toThrow(/write\(\) or writeChunk\(\), not both/);
      await staging.adopt(40);
      expect(target.appliedIndex).toBe(40);
      expect(dump(target, 'key')).toEqual(dump(source, 'key'));
      expect(target.get('key', enc('old'))).toBeUndefined();
    });
  }, 60_000);

  it('a malformed chunk is refused with the reason, nothing after it is written, and the adopt is refused', async () => {
    await withBackends(async (source, target) => {
      const [first, second] = chunkOf(source);
      const staging = target.stage();
      await staging.writeChunk!(first);
      const bad = Uint8Array.of(99, 0, 0, 0, 1, 0, 0, 0, 0, 0x61);
      await expect(staging.writeChunk!(bad)).rejects.toThrow(/unknown bucket 99 at byte 0/);
      await expect(staging.writeChunk!(second)).rejects.toThrow(/unknown bucket 99/);
      await expect(staging.adopt(40)).rejects.toThrow(/unknown bucket 99/);
      // The live content is as it was, and the backend still commits.
      expect(target.appliedIndex).toBe(7);
      expect(text(target.get('key', enc('old')))).toBe('live');
      await target.commit({ clear: false, ops: [{ bucket: 'key', key: enc('after'), value: enc('1') }], appliedIndex: 8 });
      expect(text(target.get('key', enc('after')))).toBe('1');
    });
  }, 60_000);

  it('chunks still queued for a replaced staging area never reach the next one', async () => {
    await withBackends(async (source, target) => {
      await source.commit({ clear: false, ops: Array.from({ length: 400 }, (_, i) => ({ bucket: 'key' as const, key: enc(`m${String(i).padStart(4, '0')}`), value: new Uint8Array(2000).fill(i) })), appliedIndex: 41 });
      const chunks = chunkOf(source);
      expect(chunks.length).toBeGreaterThan(100);
      const first = target.stage();
      // The writer thread is running, and the rest are queued to it when the area is replaced.
      await first.writeChunk!(chunks[0]);
      const abandoned = chunks.slice(1).map((c) => first.writeChunk!(c).then(() => 'written', () => 'refused'));
      await new Promise((r) => setTimeout(r, 1));
      // A newer stream replaces the area while its chunks are still on their way.
      const second = target.stage();
      const one = new Uint8Array([0, 0, 0, 0, 3, 0, 0, 0, 1, 0x6e, 0x65, 0x77, 0x21]);
      await second.writeChunk!(one);
      const outcomes = await Promise.all(abandoned);
      expect(outcomes.length).toBe(chunks.length - 1);
      expect(() => first.writeChunk!(chunks[0])).toThrow(/adopted, abandoned or replaced/);
      await second.adopt(50);
      expect(dump(target, 'key')).toEqual([['new', '!']]);
    });
  }, 60_000);
});
