// Simulator regressions: seeds that once failed (each with what it found), proof that the
// checkers can fail, and proof that a seed replays exactly.

import { describe, expect, it } from 'vitest';
import { runSeed } from './simulator.ts';
import type { SimResult } from './simulator.ts';
import { failureReport } from './report.ts';

interface RegressionSeed {
  seed: number;
  found: string;
  /**
   * Set while the core bug the seed found is still open on main: the test then expects the
   * failure, and turns red once the fix lands, as a reminder to drop this field.
   */
  openCoreIssue?: string;
}

const regressionSeeds: RegressionSeed[] = [
  {
    seed: 2,
    found:
      'followers drop an App whose commit index is past the entries it carries; with a small messageBytesMax ' +
      'a lagging follower never catches up (liveness)',
    openCoreIssue: 'core-fix-1.patch (sim docs: core issue 3)',
  },
  {
    seed: 10,
    found: 'same as seed 2, with a 5-voter cluster and a removed voter',
    openCoreIssue: 'core-fix-1.patch (sim docs: core issue 3)',
  },
  // The seeds below found bugs with an earlier version of the simulator (shorter fault phase);
  // they still run the same kinds of histories and stay as broad regression coverage.
  { seed: 3, found: 'a lost append with a full inflight window stalled a follower forever (core issue 2, fixed in eb8f2f0)' },
  { seed: 5, found: 'simulator: a follower relays ReadIndex with the original sender as `from`; links are cut by the relaying member' },
  { seed: 75, found: 'a joiner refused the leader snapshot that predates its addition, forever (core issue 4, fixed in c322e6d)' },
  {
    seed: 198,
    found:
      'the bootstrap membership was in no log entry or snapshot: a joiner replaying from index 1 got another ' +
      'configuration (core issue 1, fixed by the bootstrap snapshot); today it hits core issue 3',
    openCoreIssue: 'core-fix-1.patch (sim docs: core issue 3)',
  },
  { seed: 265, found: 'without pre-vote a stale member disrupted eight elections in a row: recovery took 1240 ms (sets the liveness budget)' },
];

function explain(r: SimResult): string {
  return r.ok ? `seed ${r.seed} passed` : failureReport(r);
}

describe('simulator regression seeds', () => {
  for (const { seed, found, openCoreIssue } of regressionSeeds) {
    if (openCoreIssue) {
      it(`seed ${seed} still fails until ${openCoreIssue} lands: ${found}`, () => {
        const r = runSeed({ seed });
        expect(r.ok, `seed ${seed} passes now: remove openCoreIssue from its entry`).toBe(false);
        expect(r.failure?.property).toBe('liveness');
      });
    } else {
      it(`seed ${seed}: ${found}`, () => {
        const r = runSeed({ seed });
        expect(r.ok, explain(r)).toBe(true);
      });
    }
  }
});

describe('the checkers can fail', () => {
  it('a member that corrupts what it applies is caught by state machine safety', () => {
    const r = runSeed({ seed: 7, sabotage: 'corrupt-apply' });
    expect(r.ok).toBe(false);
    expect(r.failure?.property).toBe('state machine safety');
    expect(r.failure?.message).toMatch(/applied \d+\/t\d+ "put .*"/);
  });

  it('a disk that flips a committed entry is caught when the member replays its log', () => {
    const r = runSeed({ seed: 7, sabotage: 'corrupt-storage' });
    expect(r.ok).toBe(false);
    expect(['state machine safety', 'log matching', 'leader completeness']).toContain(r.failure?.property);
    expect(r.failure?.message).toContain('-corrupt');
  });

  it('the failure report names the seed, the check and the recent events', () => {
    const r = runSeed({ seed: 7, sabotage: 'corrupt-apply' });
    const report = failureReport(r);
    expect(report).toContain('seed 7 FAILED');
    expect(report).toContain('state machine safety');
    expect(report).toContain('SABOTAGE');
    expect(report).toContain('--seed 7');
  });
});

describe('determinism', () => {
  it('the same seed replays the same events', () => {
    const a = runSeed({ seed: 42 });
    const b = runSeed({ seed: 42 });
    expect(a.ok, explain(a)).toBe(true);
    expect(b.traceDigest).toBe(a.traceDigest);
    expect(b.historyDigest).toBe(a.historyDigest);
    expect(b.simulatedMs).toBe(a.simulatedMs);
    expect(b.commits).toBe(a.commits);
  });

  it('different seeds run different histories', () => {
    const a = runSeed({ seed: 42 });
    const b = runSeed({ seed: 43 });
    expect(b.traceDigest).not.toBe(a.traceDigest);
    expect(b.historyDigest).not.toBe(a.historyDigest);
  });
});
