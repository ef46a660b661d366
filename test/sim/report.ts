// Human-readable output for simulator runs: one line per seed, and a full report on failure.

import type { SimResult } from './simulator.ts';
import { formatEvent } from './trace.ts';

export function summaryLine(r: SimResult, wallMs: number): string {
  return (
    `seed ${String(r.seed).padStart(10)}  sim ${(r.simulatedMs / 1000).toFixed(1).padStart(6)}s  ` +
    `commits ${String(r.commits).padStart(5)}  faults ${String(r.faultsInjected).padStart(3)}  ` +
    `leaders ${String(r.leadersElected).padStart(3)}  confchanges ${String(r.confChangesApplied).padStart(2)}  ` +
    `reads ${String(r.readsServed).padStart(4)}  ops ${String(r.historyOps).padStart(4)}  watched ${String(r.watchEvents).padStart(4)}  outbox ${String(r.outbox.committed).padStart(3)}/${String(r.outbox.conflicts).padStart(3)}/${String(r.outbox.pending).padStart(2)}  snaps ${String(r.snapshotsSent).padStart(3)}  crashes ${String(r.crashes).padStart(3)}  tabs-gone ${String(r.tabVanishings).padStart(2)}  recovery ${String(r.recoveryMs).padStart(4)}ms  wall ${String(Math.round(wallMs)).padStart(5)}ms  ` +
    `${r.ok ? 'ok' : 'FAILED'}`
  );
}

/** `flags`: the CLI flags besides the seed that the run needs to replay (sabotage, catch-up). */
export function failureReport(r: SimResult, flags: readonly string[] = []): string {
  const lines: string[] = [];
  lines.push('');
  lines.push(`=== seed ${r.seed} FAILED at ${r.simulatedMs}ms virtual ===`);
  lines.push(`cluster: ${r.clusterShape}`);
  lines.push(`check:   ${r.failure?.message ?? '(none)'}`);
  lines.push('members at the failure:');
  lines.push(...r.memberStates);
  lines.push(`last ${r.recentEvents.length} events (heartbeats elided):`);
  for (const e of r.recentEvents) lines.push(formatEvent(e));
  lines.push(`reproduce: npx tsx test/sim/cli.ts --seed ${r.seed}${flags.map((f) => ` ${f}`).join('')} [--verbose]`);
  return lines.join('\n');
}
