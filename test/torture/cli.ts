// The torture run against real meshkv processes (issue 7):
//   npm run torture -- --members 3 --minutes N [--seed S] [--clients C] [--expiry-clients E] [--hold-ms LO-HI] [--keep]
//   npm run torture -- --check <run dir>/history.json     (re-check saved records offline)
// Prints a report; exits 0 when nothing was found, 1 on any anomaly, 2 when the
// linearizability search gave up (inconclusive), 64 on a usage error.

import { readFileSync } from 'node:fs';
import { checkAll, checkTxnAtomicity, formatResult, type TxnRead, type TxnRecord } from '../check/index.ts';
import type { FinalState, HistoryOp, WatchRecord } from '../check/history.ts';
import { formatReport, runTorture } from './run.ts';

const usage = 'usage: npm run torture -- --members 3 --minutes N [--seed S] [--clients C] [--expiry-clients E] [--hold-ms LO-HI] [--keep]\n       npm run torture -- --check <run dir>/history.json\n';

function fail(message: string): never {
  process.stderr.write(`torture: ${message}\n${usage}`);
  process.exit(64);
}

function parse(argv: string[]) {
  const o = { members: 3, minutes: 1, seed: Date.now() % 0x7fffffff, clients: 4, expiryClients: 2, holdMs: undefined as [number, number] | undefined, keep: false, check: null as string | null };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const num = (min: number): number => {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v) || v < min) fail(`${arg} needs a number >= ${min}, got ${argv[i]}`);
      return v;
    };
    if (arg === '--members') o.members = Math.floor(num(3));
    else if (arg === '--minutes') o.minutes = num(0.1);
    else if (arg === '--seed') o.seed = Math.floor(num(0));
    else if (arg === '--clients') o.clients = Math.floor(num(1));
    else if (arg === '--expiry-clients') o.expiryClients = Math.floor(num(0));
    else if (arg === '--hold-ms') {
      const m = /^(\d+)-(\d+)$/.exec(argv[++i] ?? '');
      if (!m || Number(m[1]) > Number(m[2])) fail(`--hold-ms needs LO-HI in milliseconds (LO <= HI), got ${argv[i]}`);
      o.holdMs = [Number(m[1]), Number(m[2])];
    } else if (arg === '--keep') o.keep = true;
    else if (arg === '--check') o.check = argv[++i] ?? fail('--check needs a file');
    else if (arg === '--help' || arg === '-h') {
      process.stdout.write(usage);
      process.exit(0);
    } else fail(`unknown argument ${JSON.stringify(arg)}`);
  }
  return o;
}

/** Re-checks a saved history.json (JSON has no Infinity: an open op's ret was saved as null). */
function recheck(path: string): number {
  const saved = JSON.parse(readFileSync(path, 'utf8')) as { history: HistoryOp[]; watches: WatchRecord[]; finals: FinalState[]; txns?: TxnRecord[]; txnReads?: TxnRead[] };
  const history = saved.history.map((op) => (op.output === null ? { ...op, ret: Infinity } : op));
  const summary = checkAll(history, saved.watches, saved.finals, { timeLimitMs: 600_000 });
  const txns = (saved.txns ?? []).map((t) => (t.revision === null ? { ...t, ret: Infinity } : t));
  const atomicity = checkTxnAtomicity(txns, saved.txnReads ?? []);
  for (const [name, r] of [['linearizable', summary.linearizable], ['watches', summary.watches], ['durability', summary.durability], ['txn atomicity', atomicity]] as const) {
    if (r !== null) process.stdout.write(formatResult(name, r) + '\n');
  }
  if (atomicity.ok === false) return 1;
  return summary.ok === true ? 0 : summary.ok === 'unknown' ? 2 : 1;
}

async function main(): Promise<number> {
  const o = parse(process.argv.slice(2));
  if (o.check !== null) return recheck(o.check);
  const report = await runTorture({
    members: o.members,
    durationMs: o.minutes * 60_000,
    seed: o.seed,
    clients: o.clients,
    expiryClients: o.expiryClients,
    ...(o.holdMs ? { holdMs: o.holdMs } : {}),
    keep: o.keep,
    log: (line) => process.stderr.write(`${line}\n`),
  });
  process.stdout.write(formatReport(report) + '\n');
  return report.ok === true ? 0 : report.ok === 'unknown' ? 2 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`torture: ${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);
