// One torture run against real meshkv processes: start a cluster, run the clients, watchers
// and nemesis for the given time, heal, wait for convergence, read every member's final
// state and HashKV, run the checkers. Shared by the CLI (npm run torture) and the CI test.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GrpcConnection } from '../../adapters/etcd-api/grpc-connection.ts';
import { prefixEnd } from '../../src/client/bytes.ts';
import { prng } from '../raft/prng.ts';
import { etcdctl } from '../etcd-api/harness.ts';
import { checkAll, formatResult, type CheckSummary } from '../check/index.ts';
import type { FinalState, HistoryOp, WatchRecord } from '../check/history.ts';
import { sleep, TortureCluster } from './cluster.ts';
import { faultKinds, Nemesis, type FaultKind, type FaultRecord } from './nemesis.ts';
import { checkLeaseRecords, keyPrefix, leasePrefix, RecordingWatcher, Workload, type LeaseRecord } from './workload.ts';

export interface TortureOptions {
  members: number;
  durationMs: number;
  seed: number;
  clients: number;
  /** Keep the run dir (data dirs, logs, records) even when the run passes. */
  keep: boolean;
  log: (line: string) => void;
  /** Fault hold range; shorter in CI. */
  holdMs?: [number, number];
  /** Run past the time until every fault kind has been injected once. */
  coverEveryKind?: boolean;
}

export interface TortureReport {
  seed: number;
  members: number;
  durationMs: number;
  runDir: string;
  kept: boolean;
  /** Operations by kind and outcome (ok: acknowledged; unknown: recorded open; failed: certainly not applied, not recorded). */
  ops: Record<string, { ok: number; unknown: number; failed: number }>;
  leaseCycles: { total: number; revokeAcknowledged: number; readAfterRevoke: number };
  faults: Record<FaultKind, number>;
  faultLog: FaultRecord[];
  /** How long members took to refuse a corrupted WAL or snapshot (spawn to exit). */
  corruptionRefusals: { count: number; maxMs: number };
  watchEvents: number;
  finalRevision: number | null;
  hashes: Record<string, number>;
  checks: CheckSummary | null;
  anomalies: string[];
  /** True when nothing was found; 'unknown' when the linearizability search gave up. */
  ok: boolean | 'unknown';
}

const snapshotCount = 200;
const leaseTtlSeconds = 3;
const dec = new TextDecoder();

export async function runTorture(opts: TortureOptions): Promise<TortureReport> {
  // Separate streams, so that the nemesis's choices do not depend on how many operations ran.
  const random = prng(opts.seed);
  const nemesisRandom = prng(opts.seed ^ 0x5eed);
  const runDir = mkdtempSync(join(tmpdir(), `meshkv-torture-${opts.seed}-`));
  const cluster = new TortureCluster(runDir, snapshotCount);
  const anomalies: string[] = [];
  const endpoints = () => cluster.slots.map((s) => s.endpoint);
  let workload: Workload | null = null;
  let nemesis: Nemesis | null = null;
  const watchers: RecordingWatcher[] = [];
  let finals: FinalState[] = [];
  let hashes: Record<string, number> = {};
  let checks: CheckSummary | null = null;
  try {
    opts.log(`torture: seed ${opts.seed}, ${opts.members} members, ${opts.clients} clients, ${Math.round(opts.durationMs / 1000)} s; run dir ${runDir}`);
    await cluster.start(opts.members);
    workload = new Workload({ endpoints: endpoints(), clients: opts.clients, keys: 6, random, callTimeoutMs: 3000, leaseTtlSeconds });
    for (let w = 0; w < 2; w++) {
      const order = endpoints().map((_, i) => endpoints()[(i + w) % endpoints().length]);
      const watcher = new RecordingWatcher(1000 + w, order);
      await watcher.start();
      watchers.push(watcher);
    }
    nemesis = new Nemesis(cluster, { random: nemesisRandom, holdMs: opts.holdMs ?? [2000, 6000], gapMs: 1000, log: opts.log, now: () => workload!.now(), coverEveryKind: opts.coverEveryKind });
    workload.begin();
    nemesis.begin();
    await sleep(opts.durationMs);
    opts.log('torture: time is up; healing and waiting for the cluster to converge');
    await nemesis.end();
    await workload.end();
    anomalies.push(...nemesis.anomalies);

    await recover(cluster);
    await cluster.healthy(60_000);
    const finalPut = await workload.finalPut(endpoints());
    if (finalPut === null) anomalies.push('the final write after healing did not succeed');
    else await waitWatchers(watchers, finalPut, anomalies);
    for (const w of watchers) for (const e of w.errors) anomalies.push(`watcher ${w.record.client} ended: ${e}`);
    await waitLeaseKeysGone(cluster, anomalies);
    anomalies.push(...checkLeaseRecords(workload.leases));

    const revision = await commonRevision(cluster);
    finals = await readFinals(cluster, revision);
    hashes = await hashKvs(cluster, revision);
    if (new Set(Object.values(hashes)).size !== 1) anomalies.push(`HashKV at revision ${revision} differs between members: ${JSON.stringify(hashes)}`);

    opts.log(`torture: checking ${workload.history.length} operations and ${watchers.reduce((n, w) => n + w.record.responses.length, 0)} watch responses`);
    checks = checkAll(workload.history, watchers.map((w) => w.record), finals, { timeLimitMs: 120_000 });
    for (const [name, r] of [['linearizable', checks.linearizable], ['watches', checks.watches], ['durability', checks.durability]] as const) {
      if (r !== null && r.ok === false) anomalies.push(formatResult(name, r));
    }
  } catch (err) {
    anomalies.push(`the run itself failed: ${(err as Error).stack ?? (err as Error).message}`);
  } finally {
    for (const w of watchers) w.close();
    if (workload) await workload.end().catch(() => {});
    await cluster.stopAll();
  }
  const ok = anomalies.length > 0 ? false : checks?.ok === 'unknown' ? 'unknown' : true;
  const history = workload?.history ?? [];
  const report: TortureReport = {
    seed: opts.seed,
    members: opts.members,
    durationMs: opts.durationMs,
    runDir,
    kept: opts.keep || ok !== true,
    ops: opsByKind(history, workload?.failed ?? new Map()),
    leaseCycles: leaseSummary(workload?.leases ?? []),
    faults: Object.fromEntries(faultKinds.map((k) => [k, nemesis?.faults.filter((f) => f.kind === k).length ?? 0])) as Record<FaultKind, number>,
    faultLog: nemesis?.faults ?? [],
    corruptionRefusals: { count: nemesis?.refusalMs.length ?? 0, maxMs: Math.max(0, ...(nemesis?.refusalMs ?? [])) },
    watchEvents: watchers.reduce((n, w) => n + w.record.responses.reduce((m, r) => m + r.events.length, 0), 0),
    finalRevision: finals[0]?.revision ?? null,
    hashes,
    checks,
    anomalies,
    ok,
  };
  if (report.kept) {
    saveRun(runDir, report, history, watchers.map((w) => w.record), finals, workload?.leases ?? [], cluster);
  } else {
    rmSync(runDir, { recursive: true, force: true });
  }
  return report;
}

/** Restarts any member the nemesis left down (it stops only after healing, but a failed fault may not have). */
async function recover(cluster: TortureCluster): Promise<void> {
  for (const s of cluster.slots) cluster.resume(s);
  await cluster.healAll();
  for (const s of cluster.slots) {
    if (cluster.isRunning(s)) continue;
    cluster.launch(s);
    await cluster.ready(s);
  }
}

async function waitWatchers(watchers: RecordingWatcher[], revision: number, anomalies: string[]): Promise<void> {
  const start = Date.now();
  while (watchers.some((w) => w.lastRevision < revision)) {
    if (Date.now() - start > 30_000) {
      anomalies.push(`watchers did not reach revision ${revision} within 30 s after healing: ${watchers.map((w) => `${w.record.client}@${w.lastRevision}`).join(', ')}`);
      return;
    }
    await sleep(100);
  }
}

/** Every lease was revoked or left to expire (TTL 3 s): once healed, no lease key may remain. */
async function waitLeaseKeysGone(cluster: TortureCluster, anomalies: string[]): Promise<void> {
  const start = Date.now();
  const timeoutMs = leaseTtlSeconds * 1000 + 20_000;
  for (;;) {
    const left: string[] = [];
    for (const s of cluster.slots) {
      const kvs = await rangeAll(s.endpoint, 0, leasePrefix);
      left.push(...Object.keys(kvs).map((k) => `${s.member.name}:${k}`));
    }
    if (left.length === 0) return;
    if (Date.now() - start > timeoutMs) {
      anomalies.push(`lease keys still present ${Math.round(timeoutMs / 1000)} s after the run although every lease was revoked or left to expire: ${left.slice(0, 10).join(', ')}`);
      return;
    }
    await sleep(500);
  }
}

/** Waits until every member reports the same revision and applied index (nothing writes now). */
async function commonRevision(cluster: TortureCluster): Promise<number> {
  const start = Date.now();
  for (;;) {
    const st = await Promise.all(cluster.slots.map((s) => cluster.status(s)));
    if (st.every((s) => s !== null) && new Set(st.map((s) => s!.revision)).size === 1 && new Set(st.map((s) => s!.appliedIndex)).size === 1) return st[0]!.revision;
    if (Date.now() - start > 30_000) throw new Error(`members did not converge on one revision within 30 s: ${JSON.stringify(st)}`);
    await sleep(200);
  }
}

/** A serializable range over keys starting with `prefix` (everything for ''), at `revision` (0: current). */
async function rangeAll(endpoint: string, revision: number, prefix: string): Promise<Record<string, string>> {
  const conn = new GrpcConnection([endpoint], { callTimeoutMs: 5000 });
  try {
    const enc = new TextEncoder();
    const key = prefix === '' ? new Uint8Array([0]) : enc.encode(prefix);
    const rangeEnd = prefix === '' ? new Uint8Array([0]) : prefixEnd(key);
    const r = await conn.range({ key, rangeEnd, revision, serializable: true });
    return Object.fromEntries(r.kvs.map((kv) => [dec.decode(kv.key), dec.decode(kv.value)]));
  } finally {
    conn.close();
  }
}

async function readFinals(cluster: TortureCluster, revision: number): Promise<FinalState[]> {
  const finals: FinalState[] = [];
  for (const s of cluster.slots) {
    const all = await rangeAll(s.endpoint, revision, '');
    // The history covers the k/ keys only (lease keys are checked separately and are gone by now).
    const kvs = Object.fromEntries(Object.entries(all).filter(([k]) => k.startsWith(keyPrefix)));
    finals.push({ member: s.member.name, revision, kvs });
  }
  return finals;
}

async function hashKvs(cluster: TortureCluster, revision: number): Promise<Record<string, number>> {
  const hashes: Record<string, number> = {};
  for (const s of cluster.slots) {
    const r = await etcdctl(s.endpoint, ['endpoint', 'hashkv', `--rev=${revision}`, '-w', 'json', '--command-timeout=10s']);
    if (r.code !== 0) throw new Error(`etcdctl endpoint hashkv on ${s.member.name} failed: ${r.stderr}`);
    const [answer] = JSON.parse(r.stdout) as { HashKV: { hash: number } }[];
    hashes[s.member.name] = answer.HashKV.hash;
  }
  return hashes;
}

function opsByKind(history: HistoryOp[], failed: Map<string, number>): TortureReport['ops'] {
  const ops: TortureReport['ops'] = {};
  const row = (f: string) => (ops[f] ??= { ok: 0, unknown: 0, failed: 0 });
  for (const op of history) row(op.input.f)[op.output === null ? 'unknown' : 'ok']++;
  for (const [f, n] of failed) row(f).failed += n;
  return ops;
}

function leaseSummary(leases: LeaseRecord[]): TortureReport['leaseCycles'] {
  return {
    total: leases.length,
    revokeAcknowledged: leases.filter((l) => l.revoke === 'ok').length,
    readAfterRevoke: leases.filter((l) => l.afterRevoke !== undefined).length,
  };
}

/** Saves what a later look needs: the records (ret null means Infinity: JSON has none) and every log. */
function saveRun(runDir: string, report: TortureReport, history: HistoryOp[], watches: WatchRecord[], finals: FinalState[], leases: LeaseRecord[], cluster: TortureCluster): void {
  writeFileSync(join(runDir, 'report.json'), JSON.stringify(report, null, 2));
  writeFileSync(join(runDir, 'history.json'), JSON.stringify({ history, watches, finals, leases }));
  for (const s of cluster.slots) writeFileSync(join(runDir, `slot${s.index}.log`), s.logs.join('\n') + '\n');
}

/** The report as text for a terminal. */
export function formatReport(r: TortureReport): string {
  const lines = [`torture report (seed ${r.seed}, ${r.members} members, ${Math.round(r.durationMs / 1000)} s)`];
  lines.push('operations (ok / unknown outcome / failed, not recorded):');
  for (const [f, n] of Object.entries(r.ops).sort()) lines.push(`  ${f.padEnd(7)} ${String(n.ok).padStart(7)} ${String(n.unknown).padStart(6)} ${String(n.failed).padStart(6)}`);
  lines.push(`lease cycles: ${r.leaseCycles.total} (revoke acknowledged: ${r.leaseCycles.revokeAcknowledged}, read back after revoke: ${r.leaseCycles.readAfterRevoke})`);
  lines.push(`watch events received: ${r.watchEvents}`);
  lines.push(`faults injected: ${Object.entries(r.faults).map(([k, n]) => `${k} ${n}`).join(', ')} (total ${r.faultLog.length})`);
  lines.push(`refusals to start on a corrupted file: ${r.corruptionRefusals.count} (slowest ${r.corruptionRefusals.maxMs} ms)`);
  lines.push(`final revision: ${r.finalRevision ?? 'not read'}; HashKV: ${JSON.stringify(r.hashes)}`);
  if (r.checks) {
    lines.push(formatResult('linearizable', r.checks.linearizable).split('\n')[0]);
    lines.push(formatResult('watches', r.checks.watches).split('\n')[0]);
    if (r.checks.durability) lines.push(formatResult('durability', r.checks.durability).split('\n')[0]);
  }
  lines.push(r.anomalies.length === 0 ? 'anomalies: none' : `anomalies (${r.anomalies.length}):`);
  for (const a of r.anomalies) lines.push(`  - ${a}`);
  if (r.kept) lines.push(`run dir kept: ${r.runDir} (report.json, history.json, slot*.log)`);
  lines.push(r.ok === true ? 'PASS' : r.ok === 'unknown' ? 'INCONCLUSIVE (the linearizability search gave up)' : 'FAIL');
  return lines.join('\n');
}
