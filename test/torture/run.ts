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
import { checkAll, checkTxnAtomicity, formatResult, type CheckResult, type CheckSummary, type TxnRead, type TxnRecord } from '../check/index.ts';
import type { FinalState, HistoryOp, WatchRecord } from '../check/history.ts';
import { retry, sleep, TortureCluster } from './cluster.ts';
import { faultKinds, Nemesis, type FaultKind, type FaultRecord } from './nemesis.ts';
import { checkLeaseExpiry, checkLeaseRecords, keyPrefix, leasePrefix, RecordingWatcher, Workload, type ExpiryRecord, type LeaseRecord } from './workload.ts';

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
  /** Quiet time between a fault's heal (the cluster healthy again) and the next fault (default 1000 ms); shorter in CI. */
  gapMs?: number;
  /** Run past the time until every fault kind has been injected once. */
  coverEveryKind?: boolean;
  /** Clients that only watch leases expire (default 2). */
  expiryClients?: number;
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
  /** Leases left to expire: checked against their TTL, excused (their life overlapped a clock fault), and the earliest expiry seen relative to the TTL (ms; negative would be early). */
  leaseExpiry: { checked: number; excused: number; earliestMs: number | null };
  /** Multi-key txns (acknowledged, unknown outcome) and the reads that checked their atomicity. */
  txns: { ok: number; unknown: number; reads: number; result: CheckResult | null };
  maintenance: Workload['maintenance'] & { watchRestartsAfterCompaction: number };
  /** Snapshots streamed to a member and adopted (from the members' logs), and how lag-snapshot, disk-full and leader transfers went. */
  snapshotsAdopted: number;
  nemesisOutcomes: Nemesis['outcomes'];
  /** Where the SIGKILLs of kill faults landed relative to the LMDB backend's commit. */
  killLandings: Nemesis['killLandings'];
  /** The command that replays this run's seed (timing of real processes still varies). */
  replay: string;
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

const snapshotCount = 100;
const leaseTtlSeconds = 3;
/** How much earlier than its TTL a lease key may vanish (see checkLeaseExpiry): none. */
const leaseEarlyMsMax = 0;
const dec = new TextDecoder();

export async function runTorture(opts: TortureOptions): Promise<TortureReport> {
  // Separate streams, so that the nemesis's choices do not depend on how many operations ran
  // (each client has its own, derived from the seed in the workload).
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
  let expiry: ReturnType<typeof checkLeaseExpiry> | null = null;
  let atomicity: CheckResult | null = null;
  const watchRecords = () => watchers.flatMap((w) => w.records);
  try {
    opts.log(`torture: seed ${opts.seed}, ${opts.members} members, ${opts.clients} clients, ${Math.round(opts.durationMs / 1000)} s; run dir ${runDir}`);
    opts.log(`torture: replay with ${replayCommand(opts)}`);
    await cluster.start(opts.members);
    workload = new Workload({
      endpoints: endpoints(),
      clients: opts.clients,
      // More clients get more keys, so that the per-key linearizability search stays small.
      keys: Math.max(6, Math.ceil(opts.clients / 2)),
      seed: opts.seed,
      callTimeoutMs: 3000,
      leaseTtlSeconds,
      expiryClients: opts.expiryClients ?? 2,
      compactEveryMs: 5000,
      watchedRevision: () => Math.min(...watchers.map((w) => w.lastRevision)),
    });
    for (let w = 0; w < 2; w++) {
      const order = endpoints().map((_, i) => endpoints()[(i + w) % endpoints().length]);
      const watcher = new RecordingWatcher(1000 + w, order);
      await watcher.start();
      watchers.push(watcher);
    }
    nemesis = new Nemesis(cluster, { random: nemesisRandom, holdMs: opts.holdMs ?? [2000, 6000], gapMs: opts.gapMs ?? 1000, log: opts.log, now: () => workload!.now(), coverEveryKind: opts.coverEveryKind, snapshotCount });
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
    for (const w of watchers) for (const e of w.errors) anomalies.push(`watcher ${w.records[0].client} ended: ${e}`);
    await waitLeaseKeysGone(cluster, anomalies);
    anomalies.push(...checkLeaseRecords(workload.leases));
    expiry = checkLeaseExpiry(workload.expiries, nemesis.skewWindows, leaseEarlyMsMax);
    anomalies.push(...expiry.anomalies);
    atomicity = checkTxnAtomicity(workload.txns, workload.txnReads);
    if (atomicity.ok === false) anomalies.push(formatResult('txn atomicity', atomicity));

    const revision = await commonRevision(cluster);
    finals = await readFinals(cluster, revision);
    hashes = await hashKvs(cluster, revision);
    if (new Set(Object.values(hashes)).size !== 1) anomalies.push(`HashKV at revision ${revision} differs between members: ${JSON.stringify(hashes)}`);

    opts.log(`torture: checking ${workload.history.length} operations and ${watchRecords().reduce((n, r) => n + r.responses.length, 0)} watch responses`);
    checks = checkAll(workload.history, watchRecords(), finals, { timeLimitMs: 600_000 });
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
  const txns: TxnRecord[] = workload?.txns ?? [];
  const txnReads: TxnRead[] = workload?.txnReads ?? [];
  const report: TortureReport = {
    seed: opts.seed,
    members: opts.members,
    durationMs: opts.durationMs,
    runDir,
    kept: opts.keep || ok !== true,
    ops: opsByKind(history, workload?.failed ?? new Map()),
    leaseCycles: leaseSummary(workload?.leases ?? []),
    leaseExpiry: { checked: expiry?.checked ?? 0, excused: expiry?.excused ?? 0, earliestMs: expiry?.earliestMs ?? null },
    txns: { ok: txns.filter((t) => t.revision !== null).length, unknown: txns.filter((t) => t.revision === null).length, reads: txnReads.length, result: atomicity },
    maintenance: { ...(workload?.maintenance ?? { compact: 0, compactFailed: 0, defrag: 0, defragFailed: 0, compactedTo: 0 }), watchRestartsAfterCompaction: watchers.reduce((n, w) => n + w.compactions, 0) },
    snapshotsAdopted: cluster.slots.reduce((n, s) => n + s.logs.filter((l) => l.includes('adopted snapshot')).length, 0),
    nemesisOutcomes: nemesis?.outcomes ?? { diskFullStops: { wal: 0, backend: 0 }, lagSnapshotsAdopted: 0, transfersRefused: 0 },
    replay: replayCommand(opts),
    killLandings: nemesis?.killLandings ?? { backendAheadOfWalCommit: 0, backendBehindWalCommit: 0, even: 0, unread: 0 },
    faults: Object.fromEntries(faultKinds.map((k) => [k, nemesis?.faults.filter((f) => f.kind === k).length ?? 0])) as Record<FaultKind, number>,
    faultLog: nemesis?.faults ?? [],
    corruptionRefusals: { count: nemesis?.refusalMs.length ?? 0, maxMs: Math.max(0, ...(nemesis?.refusalMs ?? [])) },
    watchEvents: watchRecords().reduce((n, w) => n + w.responses.reduce((m, r) => m + r.events.length, 0), 0),
    finalRevision: finals[0]?.revision ?? null,
    hashes,
    checks,
    anomalies,
    ok,
  };
  if (report.kept) {
    saveRun(runDir, report, { history, watches: watchRecords(), finals, leases: workload?.leases ?? [], expiries: workload?.expiries ?? [], txns, txnReads }, cluster);
  } else {
    rmSync(runDir, { recursive: true, force: true });
  }
  return report;
}

/**
 * Restarts any member the nemesis left down (it stops only after healing, but a failed fault
 * may not have); one whose data dir it corrupted is replaced instead, as the fault would have.
 */
async function recover(cluster: TortureCluster): Promise<void> {
  for (const s of cluster.slots) cluster.resume(s);
  await cluster.healAll();
  for (const s of cluster.slots) {
    if (cluster.isRunning(s)) continue;
    if (s.corrupt) {
      await cluster.replace(s);
      continue;
    }
    cluster.launch(s);
    await cluster.ready(s);
  }
}

/** The command line that replays a run's seed and shape. */
export function replayCommand(o: Pick<TortureOptions, 'members' | 'durationMs' | 'seed' | 'clients' | 'holdMs' | 'expiryClients'>): string {
  const hold = o.holdMs ? ` --hold-ms ${o.holdMs[0]}-${o.holdMs[1]}` : '';
  const expiry = o.expiryClients !== undefined ? ` --expiry-clients ${o.expiryClients}` : '';
  return `npm run torture -- --members ${o.members} --minutes ${o.durationMs / 60_000} --seed ${o.seed} --clients ${o.clients}${hold}${expiry} --keep`;
}

async function waitWatchers(watchers: RecordingWatcher[], revision: number, anomalies: string[]): Promise<void> {
  const start = Date.now();
  while (watchers.some((w) => w.lastRevision < revision)) {
    if (Date.now() - start > 30_000) {
      anomalies.push(`watchers did not reach revision ${revision} within 30 s after healing: ${watchers.map((w) => `${w.records[0].client}@${w.lastRevision}`).join(', ')}`);
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

/**
 * A serializable range over keys starting with `prefix` (everything for ''), at `revision` (0:
 * current), retried for 30 s: a member just restarted or replaced may not answer at once.
 */
function rangeAll(endpoint: string, revision: number, prefix: string): Promise<Record<string, string>> {
  return retry(`reading ${prefix || 'every key'} from ${endpoint}`, () => rangeOnce(endpoint, revision, prefix));
}

async function rangeOnce(endpoint: string, revision: number, prefix: string): Promise<Record<string, string>> {
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
    const r = await retry(`etcdctl endpoint hashkv on ${s.member.name}`, async () => {
      const r = await etcdctl(s.endpoint, ['endpoint', 'hashkv', `--rev=${revision}`, '-w', 'json', '--command-timeout=10s']);
      if (r.code !== 0) throw new Error(r.stderr);
      return r;
    });
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

interface SavedRecords {
  history: HistoryOp[];
  watches: WatchRecord[];
  finals: FinalState[];
  leases: LeaseRecord[];
  expiries: ExpiryRecord[];
  txns: TxnRecord[];
  txnReads: TxnRead[];
}

/** Saves what a later look needs: the records (ret null means Infinity: JSON has none) and every log. */
function saveRun(runDir: string, report: TortureReport, records: SavedRecords, cluster: TortureCluster): void {
  writeFileSync(join(runDir, 'report.json'), JSON.stringify(report, null, 2));
  writeFileSync(join(runDir, 'history.json'), JSON.stringify(records));
  for (const s of cluster.slots) writeFileSync(join(runDir, `slot${s.index}.log`), s.logs.join('\n') + '\n');
}

/** The report as text for a terminal. */
export function formatReport(r: TortureReport): string {
  const lines = [`torture report (seed ${r.seed}, ${r.members} members, ${Math.round(r.durationMs / 1000)} s)`];
  lines.push('operations (ok / unknown outcome / failed, not recorded):');
  for (const [f, n] of Object.entries(r.ops).sort()) lines.push(`  ${f.padEnd(7)} ${String(n.ok).padStart(7)} ${String(n.unknown).padStart(6)} ${String(n.failed).padStart(6)}`);
  lines.push(`lease cycles: ${r.leaseCycles.total} (revoke acknowledged: ${r.leaseCycles.revokeAcknowledged}, read back after revoke: ${r.leaseCycles.readAfterRevoke})`);
  lines.push(`leases left to expire: ${r.leaseExpiry.checked} checked against their TTL, ${r.leaseExpiry.excused} excused (clock fault); earliest expiry ${r.leaseExpiry.earliestMs === null ? '-' : `${Math.round(r.leaseExpiry.earliestMs)} ms`} after the TTL`);
  lines.push(`multi-key txns: ${r.txns.ok} acknowledged, ${r.txns.unknown} unknown outcome; ${r.txns.reads} reads checked for atomicity${r.txns.result ? `: ${formatResult('txn atomicity', r.txns.result).split('\n')[0]}` : ''}`);
  const m = r.maintenance;
  lines.push(`compactions: ${m.compact} (failed or unknown ${m.compactFailed}, up to revision ${m.compactedTo}); watches restarted after compaction: ${m.watchRestartsAfterCompaction}; defrags: ${m.defrag} (failed ${m.defragFailed})`);
  lines.push(`snapshots streamed and adopted: ${r.snapshotsAdopted}; lag-snapshot restarts that adopted one: ${r.nemesisOutcomes.lagSnapshotsAdopted}; members stopped by a full disk: WAL ${r.nemesisOutcomes.diskFullStops.wal}, backend ${r.nemesisOutcomes.diskFullStops.backend}; leader transfers refused under skew: ${r.nemesisOutcomes.transfersRefused}`);
  const k = r.killLandings;
  lines.push(`SIGKILLs by where they landed: backend ahead of the WAL's commit index ${k.backendAheadOfWalCommit}, behind it ${k.backendBehindWalCommit}, even ${k.even}, unread ${k.unread}`);
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
  if (r.ok !== true) lines.push(`replay the seed (the fault schedule and each client's operations; timing varies): ${r.replay}`);
  lines.push(r.ok === true ? 'PASS' : r.ok === 'unknown' ? 'INCONCLUSIVE (the linearizability search gave up)' : 'FAIL');
  return lines.join('\n');
}
