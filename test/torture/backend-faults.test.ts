// Disk faults on the state-machine backend (adapters/backend/faulty-backend.ts): over a real
// LMDB a full disk refuses commits for good and leaves LMDB's applied index at the data it
// holds; a slow disk holds commits back and keeps their order. On a real member process a
// refused backend commit stops the member, and a restart from its data dir has every
// acknowledged write.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FaultyBackend } from '../../adapters/backend/faulty-backend.ts';
import { LmdbBackend } from '../../adapters/backend/lmdb.ts';
import { DiskFaults } from '../../adapters/storage/fs-wal/faulty-fs.ts';
import type { BackendBatch } from '../../src/seams.ts';
import { etcdctl } from '../etcd-api/harness.ts';
import { Processes, ready } from '../cluster/processes.ts';

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array | undefined) => (b === undefined ? undefined : new TextDecoder().decode(b));
const put = (key: string, value: string, appliedIndex: number): BackendBatch => ({ clear: false, ops: [{ bucket: 'key', key: bytes(key), value: bytes(value) }], appliedIndex });

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'meshkv-backend-faults-'));
}

describe('FaultyBackend over LMDB', () => {
  it('refuses commits with ENOSPC once full, for good; LMDB keeps the applied index of the data it holds', async () => {
    const dir = tempDir();
    try {
      const lmdb = LmdbBackend.open(dir);
      const disk = new DiskFaults();
      const backend = new FaultyBackend(lmdb, disk, dir);
      await backend.commit(put('a', '1', 1));
      // A full WAL leaves the backend alone.
      disk.set({ full: true, target: 'wal' });
      await backend.commit(put('b', '2', 2));
      disk.set({ target: 'backend' });
      await expect(backend.commit(put('c', '3', 3))).rejects.toMatchObject({ code: 'ENOSPC', message: expect.stringContaining('ENOSPC: no space left on device') });
      disk.set({ full: false });
      await expect(backend.commit(put('d', '4', 4))).rejects.toThrow('ENOSPC');
      await expect(backend.durable()).rejects.toThrow('ENOSPC');
      expect(() => backend.stage!()).toThrow('ENOSPC');
      expect(disk.refusedCommits).toBe(1);
      expect(backend.appliedIndex).toBe(2);
      await backend.close();
      const reopened = LmdbBackend.open(dir);
      expect(reopened.appliedIndex).toBe(2);
      expect(['a', 'b', 'c', 'd'].map((k) => text(reopened.get('key', bytes(k))))).toEqual(['1', '2', undefined, undefined]);
      await reopened.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('holds commits back while slow, hands them over together and in order, and refuses held ones if the disk fills meanwhile', async () => {
    const dir = tempDir();
    try {
      const lmdb = LmdbBackend.open(dir);
      const disk = new DiskFaults();
      const backend = new FaultyBackend(lmdb, disk, dir);
      disk.set({ syncDelayMs: 300, target: 'both' });
      const start = performance.now();
      const first = backend.commit(put('k', 'one', 1));
      const second = backend.commit(put('k', 'two', 2));
      // Not yet in LMDB: a read of the inner backend still misses it.
      expect(backend.get('key', bytes('k'))).toBeUndefined();
      // The delay is lifted, but a commit called now still lands after the held ones.
      disk.set({ syncDelayMs: 0 });
      const third = backend.commit(put('k', 'three', 3));
      await Promise.all([first, second, third]);
      expect(performance.now() - start).toBeGreaterThanOrEqual(290);
      expect(text(backend.get('key', bytes('k')))).toBe('three');
      expect(await backend.durable()).toBe(3);
      expect(disk.delayedCommits).toBe(1);
      disk.set({ syncDelayMs: 200 });
      const held = backend.commit(put('k', 'four', 4));
      disk.set({ full: true });
      await expect(held).rejects.toThrow('ENOSPC');
      await backend.close();
      const reopened = LmdbBackend.open(dir);
      expect([reopened.appliedIndex, text(reopened.get('key', bytes('k')))]).toEqual([3, 'three']);
      await reopened.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('a member whose backend fills up', () => {
  const procs = new Processes();
  afterAll(() => procs.cleanup());

  it('stops serving, and restarted from its data dir it has every write it acknowledged', async () => {
    const m = await procs.spec('backend-full');
    const p = procs.start(m, [m], ['--experimental-fault-injection']);
    await ready(p);
    const authorization = `Bearer ${readFileSync(join(m.dataDir, 'fault-injection-secret'), 'utf8').trim()}`;
    const faults = (path: string, body?: unknown) =>
      fetch(`http://${p.endpoint}/meshkv/faults${path}`, { method: body === undefined ? 'GET' : 'POST', headers: { authorization }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) }).then(async (r) => ({ status: r.status, body: (await r.json()) as { disk: Record<string, unknown> } }));
    const acknowledged = new Map<string, string>();
    for (let i = 0; i < 5; i++) {
      expect((await etcdctl(p.endpoint, ['put', `before/${i}`, `v${i}`])).code).toBe(0);
      acknowledged.set(`before/${i}`, `v${i}`);
    }
    expect((await faults('/disk', { full: true, target: 'backend' })).body.disk).toMatchObject({ full: true, target: 'backend' });
    // The put is applied (and may be acknowledged: the WAL has it) while its backend commit is
    // refused in the background; with nothing more to apply, the member must notice on its own.
    const during = await etcdctl(p.endpoint, ['put', 'during', 'w', '--command-timeout=3s']);
    if (during.code === 0) acknowledged.set('during', 'w');
    const deadline = Date.now() + 10_000;
    while (!p.logs.some((l) => l.includes('stopped:') && l.includes('the backend failed') && l.includes('ENOSPC'))) {
      if (Date.now() > deadline) throw new Error(`the member did not stop within 10 s:\n${p.logs.slice(-20).join('\n')}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    // It serves nothing more, reads included.
    expect((await etcdctl(p.endpoint, ['get', 'before/0', '--command-timeout=3s'])).code).not.toBe(0);
    // The WAL was not hit: only backend commits were refused.
    expect((await faults('')).body.disk).toMatchObject({ refusedWrites: 0, refusedCommits: expect.any(Number) });
    expect((await faults('')).body.disk.refusedCommits).toBeGreaterThanOrEqual(1);
    await procs.kill9(p);

    const again = procs.start(m, [m]);
    await ready(again);
    const got = await etcdctl(again.endpoint, ['get', '', '--prefix', '-w', 'json']);
    expect(got.code).toBe(0);
    const kvs = (JSON.parse(got.stdout) as { kvs?: { key: string; value: string }[] }).kvs ?? [];
    const found = new Map(kvs.map((kv) => [Buffer.from(kv.key, 'base64').toString(), Buffer.from(kv.value, 'base64').toString()]));
    for (const [key, value] of acknowledged) expect(found.get(key), key).toBe(value);
  }, 90_000);
});
