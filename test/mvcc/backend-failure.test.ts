// A backend that fails a commit must stop the state machine: applying more on top of writes
// that never became durable would acknowledge what a restart cannot give back.

import { describe, expect, it } from 'vitest';
import { MemoryBackend } from '../../src/backend/memory.ts';
import { MvccStateMachine } from '../../src/mvcc/index.ts';
import type { BackendBatch } from '../../src/seams.ts';

/** A memory backend whose commits fail from the `failAt`-th on, as a full disk would. */
class FailingBackend extends MemoryBackend {
  commits = 0;
  constructor(private readonly failAt: number) {
    super();
  }
  override commit(batch: BackendBatch): Promise<void> {
    if (++this.commits >= this.failAt) return Promise.reject(new Error('ENOSPC: no space left on device'));
    return super.commit(batch);
  }
}

const put = (key: string) => ({ kind: 'put' as const, request: { key: new TextEncoder().encode(key), value: new Uint8Array([1]) } });

describe('MvccStateMachine over a failing backend', () => {
  it('refuses every apply after a failed commit, naming the failure', async () => {
    const sm = new MvccStateMachine({ backend: new FailingBackend(3) });
    expect(sm.apply(put('a'), { nowMs: 0, index: 1 }).ok).toBe(true);
    expect(sm.apply(put('b'), { nowMs: 0, index: 2 }).ok).toBe(true);
    // The third commit is handed over, then fails asynchronously.
    expect(sm.apply(put('c'), { nowMs: 0, index: 3 }).ok).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(() => sm.apply(put('d'), { nowMs: 0, index: 4 })).toThrow(/the backend failed, nothing more can be applied: ENOSPC: no space left on device/);
    await expect(sm.durable()).rejects.toThrow(/durable up to 2, not 3/);
  });
});
