// Simulator regressions: seeds that once failed (each with what it found), proof that the
// checkers can fail, and proof that a seed replays exactly.

import { describe, expect, it } from 'vitest';
import { runSeed } from './simulator.ts';
import type { SimResult } from './simulator.ts';
import { failureReport } from './report.ts';
import { checkKeyValues } from '../check/index.ts';

interface RegressionSeed {
  seed: number;
  found: string;
}

const regressionSeeds: RegressionSeed[] = [
  // Core issue 3 (sim docs): a follower dropped an append whose commit index was past the
  // entries it carried, so with a small messageBytesMax a lagging follower never caught up
  // (liveness). Fixed on main in 70dcf48.
  { seed: 3, found: 'core issue 3: a lagging follower never caught up, its appends were dropped' },
  { seed: 10, found: 'core issue 3, with 5 voters and lease-based reads' },
  { seed: 15, found: 'core issue 3, with an inflight window of 4' },
  // The seeds below found bugs with earlier versions of the simulator (the fault mix and the
  // fault phase changed since, so today they run other histories); they stay as coverage.
  { seed: 2, found: 'core issue 3 first (with the first simulator version)' },
  { seed: 5, found: 'simulator: a follower relays ReadIndex with the original sender as `from`; links are cut by the relaying member' },
  { seed: 19, found: 'core issue 5: a throttled leader (hidden tab, timers at 1 Hz) served stale lease-based reads' },
  { seed: 75, found: 'core issue 4: a joiner refused the leader snapshot that predates its addition, forever (fixed in c322e6d)' },
  { seed: 198, found: 'core issue 1: a joiner replaying the log from index 1 never learned the bootstrap membership (fixed on main)' },
  { seed: 5194, found: 'simulator: catch-up ticks stopped a lingering removed member just before a client proposal reached it' },
  { seed: 58, found: 'simulator: healing a frozen member left its held messages queued past the liveness deadline' },
  { seed: 111, found: 'simulator: fsync stalls longer than an election timeout kept leadership from settling after the heal' },
  { seed: 241, found: 'core issue 6: a snapshot restored under entries being applied; createSnapshot() threw "entry compacted" (fixed in 7163aa4)' },
  { seed: 532, found: 'core issue 6: a learner applied leave-joint on top of a newer snapshot configuration (fixed in 7163aa4)' },
  { seed: 265, found: 'without pre-vote a stale member disrupted eight elections in a row (sets the liveness budget)' },
];

function explain(r: SimResult): string {
  return r.ok ? `seed ${r.seed} passed` : failureReport(r);
}

describe('simulator regression seeds', () => {
  for (const { seed, found } of regressionSeeds) {
    it(`seed ${seed}: ${found}`, () => {
      const r = runSeed({ seed });
      expect(r.ok, explain(r)).toBe(true);
    });
  }
});

describe('core issue 5: lease reads need the driver to catch up ticks', () => {
  // Seed 171 (re-pinned from 145 when the recorded history changed what every seed runs, then
  // from 168 when tab members did, issue 12; the stale read is one of the clients' reads).
  it('without catch-up, a throttled leader serves a stale lease-based read (seed 171)', () => {
    const r = runSeed({ seed: 171, tickCatchUp: false });
    expect(r.clusterShape).toContain('reads=lease');
    expect(r.ok).toBe(false);
    expect(r.failure?.property).toBe('linearizable read');
  });
});

describe('the checkers can fail', () => {
  it('a member that corrupts what it applies is caught by state machine safety', () => {
    const r = runSeed({ seed: 7, sabotage: 'corrupt-apply' });
    expect(r.ok).toBe(false);
    expect(r.failure?.property).toBe('state machine safety');
    expect(r.failure?.message).toMatch(/applied \d+\/t\d+ "put .*"/);
  });

  it('an MVCC store written outside the log is caught by comparing HashKV between replicas', () => {
    // Re-pinned from seed 7 when the recorded history was added: in most seeds the history
    // checkers see the extra revision first (seed 4: a watcher's events at the wrong revisions;
    // it was seed 5 until leaders began sending appends while persisting them).
    // Seeds re-pinned when tab members changed what every seed runs (issue 12).
    const r = runSeed({ seed: 5, sabotage: 'corrupt-mvcc' });
    expect(r.ok).toBe(false);
    expect(r.failure?.property).toBe('hashkv');
    const seenByWatch = runSeed({ seed: 1, sabotage: 'corrupt-mvcc' });
    expect(seenByWatch.failure?.property).toBe('history watches');
  });

  it('without sabotage, replicas at one applied index agree on HashKV', () => {
    const r = runSeed({ seed: 7 });
    expect(r.ok, explain(r)).toBe(true);
    expect(r.hashKvGroups).toBeGreaterThanOrEqual(1);
  });

  it('a disk that flips a committed entry is caught when the member replays its log', () => {
    const r = runSeed({ seed: 7, sabotage: 'corrupt-storage' });
    expect(r.ok).toBe(false);
    expect(['state machine safety', 'log matching', 'leader completeness']).toContain(r.failure?.property);
    expect(r.failure?.message).toContain('-corrupt');
  });

  it('disks that ignore fsync lose votes and acknowledged entries, and the checkers notice', () => {
    const lostVote = runSeed({ seed: 13, sabotage: 'ignore-fsync' });
    expect(lostVote.failure?.property).toBe('vote safety');
    // Seed 6 (re-pinned from 2 when the recorded history changed what every seed runs).
    const lostEntry = runSeed({ seed: 1, sabotage: 'ignore-fsync' });
    expect(lostEntry.failure?.property).toBe('leader completeness');
  });

  it('the failure report names the seed, the check and the recent events', () => {
    const r = runSeed({ seed: 7, sabotage: 'corrupt-apply' });
    const report = failureReport(r);
    expect(report).toContain('seed 7 FAILED');
    expect(report).toContain('state machine safety');
    expect(report).toContain('-corrupt');
    expect(report).toContain('--seed 7');
  });
});

describe('the recorded client history', () => {
  it('a seed records every kind of operation, unknown outcomes and watch events, and passes the checkers', () => {
    const r = runSeed({ seed: 2 });
    expect(r.ok, explain(r)).toBe(true);
    expect(new Set(r.history.map((op) => op.input.f))).toEqual(new Set(['get', 'put', 'delete', 'cas', 'range']));
    expect(r.historyOps).toBeGreaterThan(50);
    expect(r.historyUnknownOps).toBeGreaterThan(0);
    expect(r.watchEvents).toBeGreaterThan(0);
  });

  it('followers serving linearizable reads locally (sabotage stale-reads) are caught, by revisions and by the WGL search alone', () => {
    for (const seed of [5, 6, 8]) {
      const r = runSeed({ seed, sabotage: 'stale-reads' });
      expect(r.failure?.property, `seed ${seed}`).toBe('history linearizability');
      expect(failureReport(r, ['--sabotage', 'stale-reads'])).toContain(`--seed ${seed} --sabotage stale-reads`);
      expect(checkKeyValues(r.history).ok, `seed ${seed}: the per-key search on its own`).toBe(false);
    }
  });
});

describe('determinism', () => {
  it('the same seed replays the same events', () => {
    const a = runSeed({ seed: 2 });
    const b = runSeed({ seed: 2 });
    expect(a.ok, explain(a)).toBe(true);
    expect(b.traceDigest).toBe(a.traceDigest);
    expect(b.historyDigest).toBe(a.historyDigest);
    expect(b.simulatedMs).toBe(a.simulatedMs);
    expect(b.commits).toBe(a.commits);
  });

  it('different seeds run different histories', () => {
    const a = runSeed({ seed: 2 });
    const b = runSeed({ seed: 43 });
    expect(b.traceDigest).not.toBe(a.traceDigest);
    expect(b.historyDigest).not.toBe(a.historyDigest);
  });
});
