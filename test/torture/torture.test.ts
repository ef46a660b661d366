// The bounded torture run CI does (issues 7, 15): three real meshkv processes, four clients,
// two lease-expiry clients and two watchers for 60 s, or longer until the nemesis has injected
// every fault kind once (overlapping ones included); then the checkers must pass and every
// member must hold the same HashKV. Longer runs: npm run torture.

import { describe, expect, it } from 'vitest';
import { requireEtcdctl } from '../etcd-api/harness.ts';
import { faultKinds } from './nemesis.ts';
import { formatReport, runTorture } from './run.ts';

/** A fixed seed by default so a failure can be replayed; MESHKV_TORTURE_SEED picks another. */
const seed = Number(process.env.MESHKV_TORTURE_SEED ?? 7);

describe('torture against real processes', () => {
  it('survives every fault kind with linearizable operations, complete watches and equal HashKV', async () => {
    requireEtcdctl();
    const lines: string[] = [];
    const report = await runTorture({
      members: 3,
      durationMs: 60_000,
      seed,
      clients: 4,
      keep: false,
      holdMs: [1000, 3000],
      // Each fault starts once the cluster is healthy again; the workload runs throughout, so a
      // short quiet time still puts healthy-cluster operations between faults (19 gaps of 1 s
      // were a fifth of this test's wall time).
      gapMs: 250,
      coverEveryKind: true,
      log: (l) => lines.push(l),
    });
    const text = `${formatReport(report)}\nreplay this test: MESHKV_TORTURE_SEED=${seed} npx vitest run test/torture/torture.test.ts`;
    console.log(text);
    expect(report.anomalies, `${text}\n${lines.join('\n')}`).toEqual([]);
    expect(report.ok).toBe(true);
    for (const kind of faultKinds) expect(report.faults[kind], kind).toBeGreaterThan(0);
    expect(report.corruptionRefusals.count).toBe(report.faults['wal-flip'] + report.faults['snap-flip']);
    // A full backend must have stopped its member (the fault took effect), and the run still passed.
    expect(report.nemesisOutcomes.diskFullStops.backend).toBeGreaterThan(0);
    for (const f of ['get', 'put', 'delete', 'cas', 'range']) expect(report.ops[f]?.ok ?? 0, f).toBeGreaterThan(0);
    expect(report.leaseCycles.readAfterRevoke).toBeGreaterThan(0);
    expect(report.leaseExpiry.checked).toBeGreaterThan(0);
    expect(report.txns.reads).toBeGreaterThan(0);
    expect(report.txns.result?.ok).toBe(true);
    expect(report.maintenance.compact).toBeGreaterThan(0);
    expect(report.snapshotsAdopted).toBeGreaterThan(0);
    expect(report.watchEvents).toBeGreaterThan(0);
    expect(Object.keys(report.hashes)).toHaveLength(3);
    expect(new Set(Object.values(report.hashes)).size).toBe(1);
    expect(report.checks?.linearizable.ok).toBe(true);
    expect(report.checks?.watches.ok).toBe(true);
    expect(report.checks?.durability?.ok).toBe(true);
  }, 900_000);
});
