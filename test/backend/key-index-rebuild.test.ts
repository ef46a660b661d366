// The key index a restart rebuilds from the backend (src/mvcc/index-rebuild.ts) against the one
// live writes built: a store written by puts in random key order, overwrites, deletes of keys
// and ranges, leases and compactions is reopened from LMDB (the view-based scan) and from the
// memory backend (the plain range), and must answer a read of every key at every revision from
// the compaction on, its revision, compaction, hash and lease attachments exactly as the live
// store does. Keys first written in ascending order take the path without a sort; both are run.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LmdbBackend } from '../../adapters/backend/lmdb.ts';
import { encodeKeyValue, revisionKey } from '../../src/backend/layout.ts';
import { MemoryBackend } from '../../src/backend/memory.ts';
import { MvccStateMachine, type ApplyRequest } from '../../src/mvcc/index.ts';
import { Prng } from '../mvcc/prng.ts';

const enc = (text: string) => new TextEncoder().encode(text);
const all = { key: new Uint8Array([0]), rangeEnd: new Uint8Array([0]) };

function show(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('hex') : typeof v === 'bigint' ? `${v}n` : v));
}

/** Every read a user could make of the history: all keys at every revision from the compaction on. */
function history(sm: MvccStateMachine): string[] {
  const reads = [show({ revision: sm.currentRevision, compacted: sm.compactRevision, keys: sm.keyCount, hash: sm.hash(), leases: sm.leaseLeases() })];
  for (let revision = Math.max(1, sm.compactRevision); revision <= sm.currentRevision; revision++) {
    reads.push(show(sm.range({ ...all, revision })));
  }
  return reads;
}

/** Requests over `keys` keys: first `ascending` puts in key order, then random puts, deletes, leases and compactions. */
function requests(seed: number, keys: number, ascending: number, steps: number, current: () => number): () => ApplyRequest {
  const rng = new Prng(seed);
  const name = (i: number) => enc(`k/${String(i).padStart(4, '0')}`);
  let step = 0;
  return () => {
    step++;
    if (step === 1) return { kind: 'leaseGrant', request: { TTL: 600, ID: 7n } };
    if (step <= ascending + 1) return { kind: 'put', request: { key: name(step - 2), value: enc(`v${step}`) } };
    const roll = rng.int(0, 99);
    if (roll < 70) return { kind: 'put', request: { key: name(rng.int(0, keys - 1)), value: enc(`v${step}`), lease: rng.chance(0.2) ? 7n : 0n } };
    if (roll < 85) return { kind: 'deleteRange', request: { key: name(rng.int(0, keys - 1)) } };
    if (roll < 90) {
      const from = rng.int(0, keys - 1);
      return { kind: 'deleteRange', request: { key: name(from), rangeEnd: name(from + rng.int(1, 5)) } };
    }
    if (roll < 97 || step > steps - 20) return { kind: 'txn', request: { compare: [], success: [{ requestPut: { key: name(rng.int(0, keys - 1)), value: enc('t') } }, { requestPut: { key: name(rng.int(0, keys - 1)), value: enc('u') } }], failure: [] } };
    return { kind: 'compaction', request: { revision: Math.max(1, current() - rng.int(0, 40)) } };
  };
}

describe('the key index rebuilt at open', () => {
  const cases = [
    { name: 'random key order', seed: 5, keys: 120, ascending: 0, steps: 1500 },
    { name: 'ascending first writes, then overwrites and deletes', seed: 8, keys: 400, ascending: 400, steps: 1200 },
    { name: 'ascending keys only (no sort)', seed: 13, keys: 300, ascending: 300, steps: 301 },
  ];
  for (const c of cases) {
    it(`${c.name}: a reopened store answers every read at every revision as the live one`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'meshkv-rebuild-'));
      const memory = new MemoryBackend();
      let lmdb = LmdbBackend.open(dir);
      const live = new MvccStateMachine({ backend: memory });
      const onLmdb = new MvccStateMachine({ backend: lmdb });
      try {
        const next = requests(c.seed, c.keys, c.ascending, c.steps, () => live.currentRevision);
        for (let index = 1; index <= c.steps; index++) {
          const request = next();
          expect(show(onLmdb.apply(request, { nowMs: 0, index })), `step ${index}`).toBe(show(live.apply(request, { nowMs: 0, index })));
        }
        expect(live.compactRevision > 1 || c.steps === c.ascending + 1, "the run compacted").toBe(true);
        const expected = history(live);
        expect(await lmdb.durable()).toBe(c.steps);
        await lmdb.close();
        lmdb = LmdbBackend.open(dir);
        const reopened = new MvccStateMachine({ backend: lmdb });
        reopened.checkValid();
        expect(history(reopened)).toEqual(expected);
        // The memory backend has no rangeViews: the same rebuild through the plain range.
        const fromMemory = new MvccStateMachine({ backend: memory });
        fromMemory.checkValid();
        expect(history(fromMemory)).toEqual(expected);
        // Lease attachments were rebuilt too: revoking the lease deletes the same keys in both.
        const revoke: ApplyRequest = { kind: 'leaseRevoke', request: { ID: 7n } };
        expect(show(reopened.apply(revoke, { nowMs: 0, index: c.steps + 1 }))).toBe(show(live.apply(revoke, { nowMs: 0, index: c.steps + 1 })));
        expect(show(reopened.range(all))).toBe(show(live.range(all)));
      } finally {
        await lmdb.close();
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }

  it('refuses a stored tombstone for a key with no history, naming its revision', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'meshkv-rebuild-'));
    let lmdb = LmdbBackend.open(dir);
    try {
      const key = enc('orphan');
      await lmdb.commit({ clear: false, appliedIndex: 3, ops: [{ bucket: 'key', key: revisionKey(5, 0, true), value: encodeKeyValue({ key, createRevision: 0, modRevision: 5, version: 0, value: new Uint8Array(0), lease: 0n }) }] });
      await lmdb.close();
      lmdb = LmdbBackend.open(dir);
      expect(() => new MvccStateMachine({ backend: lmdb })).toThrow('kvStore: tombstone at 5 for a key with no history');
    } finally {
      await lmdb.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
