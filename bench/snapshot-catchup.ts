// A new member catching up from a large store while the cluster keeps serving writes, real
// etcd 3.4 and meshkv in the same run (one after the other, same machine load). For each:
// one member, filled with KEYS keys of VALUE_BYTES-byte values (100 puts per txn); then a
// write load (16 clients, single 256-byte puts over 10,000 keys) for LOAD_S seconds alone;
// then a learner is added and started while the load goes on. Printed: the catch-up time
// (learner start until it serves the revision the leader had when it started), the write
// throughput before and during the catch-up, and the peak resident memory of the leader
// (reset just before the learner starts) and of the learner — all of it (VmHWM, which counts
// the database file's pages mapped in, as LMDB's and bbolt's reads do) and the largest
// anonymous part sampled every 200 ms (RssAnon: heap and buffers, what grows if a process
// held the store in memory).
//
//   npm run build && npx tsx bench/snapshot-catchup.ts                # 1 GiB: 262,144 × 4 KiB
//   KEYS=20000 VALUE_BYTES=1024 SYSTEMS=meshkv npx tsx bench/snapshot-catchup.ts
//   SYSTEMS=etcd,meshkv:/tmp/base,meshkv npx tsx bench/snapshot-catchup.ts   # A/B: another built checkout
//   MEMBER_NODE_FLAGS='--cpu-prof --cpu-prof-dir=/tmp/prof' KEYS=20000 SYSTEMS=meshkv npx tsx bench/snapshot-catchup.ts
//       # CPU profiles of every member thread (bench/cpu-profile-shares.mjs FILE --last 10)
//
// Also printed, because a loaded machine stretches every wall-clock figure: the CPU seconds the
// leader spent during the catch-up and the learner spent from its start until it caught up
// (/proc/<pid>/stat; in parentheses its main thread's, the member's event loop), and for meshkv the stream's own rate (pair bytes from the leader's
// "streaming" log line to its "done" line).
//
// Both use a snapshot every 500 entries, so the learner must take a snapshot: etcd sends its
// bbolt file, meshkv streams its LMDB backend (src/server/snapshot-stream.ts). Stops every
// process it started, by PID; removes its data directories.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectGrpc } from '../adapters/etcd-api/grpc-connection.ts';
import { addLearner, launchCli, memoryOf, peerUrl, readyLine, revisionOf, waitForLine, type CliMemberSpec } from '../test/helpers/cli-members.ts';
import { freePort, spawnCollecting, type Spawned } from '../test/helpers/processes.ts';

const keys = Number(process.env.KEYS ?? 262_144);
const valueBytes = Number(process.env.VALUE_BYTES ?? 4096);
const loadS = Number(process.env.LOAD_S ?? 10);
/** `etcd`, `meshkv` (this checkout's build), or `meshkv:<dir>` (the build in another checkout). */
const systems = (process.env.SYSTEMS ?? 'etcd,meshkv').split(',');
/** MEMBER_NODE_FLAGS: node flags for meshkv's members; they are then stopped with SIGINT, so that `--cpu-prof` profiles get written. */
const nodeFlags = (process.env.MEMBER_NODE_FLAGS ?? '').split(' ').filter((f) => f !== '');
const snapshotCount = 500;
const loadClients = 16;

type Client = ReturnType<typeof connectGrpc>;

interface Started {
  proc: Spawned;
  endpoint: string;
  dbFile: string;
}

function startEtcd(root: string, name: string, peerPort: number, clientPort: number, initialCluster: string, state: 'new' | 'existing'): Started {
  const dataDir = join(root, name);
  const proc = spawnCollecting('/usr/bin/etcd', [
    '--name', name,
    '--data-dir', dataDir,
    '--listen-client-urls', `http://127.0.0.1:${clientPort}`,
    '--advertise-client-urls', `http://127.0.0.1:${clientPort}`,
    '--listen-peer-urls', `http://127.0.0.1:${peerPort}`,
    '--initial-advertise-peer-urls', `http://127.0.0.1:${peerPort}`,
    '--initial-cluster', initialCluster,
    '--initial-cluster-state', state,
    '--snapshot-count', String(snapshotCount),
    '--quota-backend-bytes', String(8 * 2 ** 30),
  ]);
  return { proc, endpoint: `127.0.0.1:${clientPort}`, dbFile: join(dataDir, 'member', 'snap', 'db') };
}

function startMeshkv(checkout: string | undefined, root: string, name: string, peerPort: number, clientPort: number, initialCluster: string, state: 'new' | 'existing'): Started {
  const bin = checkout === undefined ? undefined : join(checkout, 'bin', 'meshkv.mjs');
  const spec: CliMemberSpec = { name, dataDir: join(root, name), peerPort, clientPort, initialCluster, state, snapshotCount, bin, nodeFlags };
  return { proc: launchCli(spec), endpoint: `127.0.0.1:${clientPort}`, dbFile: join(spec.dataDir, 'backend', 'data.mdb') };
}

async function untilServing(endpoint: string, proc: Spawned, timeoutMs: number): Promise<void> {
  const start = Date.now();
  for (;;) {
    if (proc.child.exitCode !== null) throw new Error(`exited: ${proc.logs.slice(-10).join('\n')}`);
    try {
      await revisionOf(endpoint);
      return;
    } catch (err) {
      if (Date.now() - start > timeoutMs) throw err;
      await sleep(200);
    }
  }
}

async function fill(client: Client): Promise<void> {
  const value = 'v'.repeat(valueBytes);
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < keys) {
        const from = next;
        next = Math.min(keys, next + 100);
        const puts = [];
        for (let i = from; i < next; i++) puts.push(client.put(`data/${String(i).padStart(8, '0')}`).value(value));
        await client.txn().then(...puts).commit();
      }
    }),
  );
}

/** Single puts from `loadClients` loops until `stop()`; counts acknowledged puts by time. */
function writeLoad(client: Client): { acked: number[]; stop: () => Promise<void> } {
  const acked: number[] = [];
  let running = true;
  const value = 'w'.repeat(256);
  const loops = Array.from({ length: loadClients }, async (_, w) => {
    for (let i = 0; running; i++) {
      try {
        await client.put(`load/${(w * 7919 + i) % 10_000}`).value(value).exec();
        acked.push(performance.now());
      } catch {
        await sleep(10);
      }
    }
  });
  return {
    acked,
    stop: async () => {
      running = false;
      await Promise.all(loops);
    },
  };
}

function rate(acked: number[], from: number, to: number): number {
  return acked.filter((t) => t >= from && t < to).length / ((to - from) / 1000);
}

/** Resets the process's peak RSS (VmHWM) to its current RSS (Linux: clear_refs 5). */
function resetPeak(pid: number): void {
  writeFileSync(`/proc/${pid}/clear_refs`, '5');
}

/**
 * User plus system CPU seconds a process has used (Linux: /proc/<pid>/stat, in clock ticks of
 * 1/100 s); with `mainThread`, only its main thread's (a member's event loop, without workers).
 */
function cpuSecondsOf(pid: number, mainThread = false): number {
  const stat = readFileSync(mainThread ? `/proc/${pid}/task/${pid}/stat` : `/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function run(label: string): Promise<Record<string, string | number>> {
  const [system, checkout] = label.split(':') as ['etcd' | 'meshkv', string | undefined];
  const root = mkdtempSync(join(tmpdir(), `catchup-${system}-`));
  const start = system === 'etcd' ? startEtcd : startMeshkv.bind(null, checkout);
  const procs: Spawned[] = [];
  try {
    const [p0, c0, p1, c1] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const cluster0 = `${system}0=http://127.0.0.1:${p0}`;
    const leader = start(root, `${system}0`, p0, c0, cluster0, 'new');
    procs.push(leader.proc);
    // When the leader logs the stream's start and end (meshkv), for the stream's own rate.
    const streamTimes: { startMs?: number; doneMs?: number; bytes?: number } = {};
    leader.proc.child.stderr!.on('data', (d: Buffer) => {
      const text = d.toString();
      if (streamTimes.startMs === undefined && text.includes('streaming snapshot')) streamTimes.startMs = performance.now();
      const done = / done \((\d+) bytes\)/.exec(text);
      if (done !== null && streamTimes.doneMs === undefined) {
        streamTimes.doneMs = performance.now();
        streamTimes.bytes = Number(done[1]);
      }
    });
    if (system === 'meshkv') await waitForLine(leader.proc, readyLine, 60_000);
    await untilServing(leader.endpoint, leader.proc, 60_000);
    const client = connectGrpc([leader.endpoint]);
    const fillStart = performance.now();
    await fill(client);
    const fillS = (performance.now() - fillStart) / 1000;
    const dbBytes = statSync(leader.dbFile).size;
    console.error(`${system}: filled ${keys} × ${valueBytes} B in ${fillS.toFixed(1)} s; db file ${(dbBytes / 2 ** 20).toFixed(0)} MiB`);

    const load = writeLoad(client);
    const beforeFrom = performance.now();
    await sleep(loadS * 1000);
    const joinAt = performance.now();
    const before = rate(load.acked, beforeFrom, joinAt);
    const target = await revisionOf(leader.endpoint);
    resetPeak(leader.proc.child.pid!);
    const leaderCpuAtJoin = cpuSecondsOf(leader.proc.child.pid!);
    await addLearner(leader.endpoint, `${system}1`, `http://127.0.0.1:${p1}`);
    const joiner = start(root, `${system}1`, p1, c1, `${cluster0},${system}1=${peerUrl({ peerPort: p1 })}`, 'existing');
    procs.push(joiner.proc);
    let leaderPeak = 0;
    let joinerPeak = 0;
    let leaderAnonPeak = 0;
    let joinerAnonPeak = 0;
    const sampler = setInterval(() => {
      try {
        const l = memoryOf(leader.proc.child.pid!);
        const j = memoryOf(joiner.proc.child.pid!);
        leaderPeak = Math.max(leaderPeak, l.peakRssBytes);
        joinerPeak = Math.max(joinerPeak, j.peakRssBytes);
        leaderAnonPeak = Math.max(leaderAnonPeak, l.anonBytes);
        joinerAnonPeak = Math.max(joinerAnonPeak, j.anonBytes);
      } catch {
        // A process that just exited: the run fails below.
      }
    }, 200);
    let caughtAt = 0;
    for (;;) {
      if (joiner.proc.child.exitCode !== null) throw new Error(`${system} learner exited: ${joiner.proc.logs.slice(-10).join('\n')}`);
      const rev = await revisionOf(joiner.endpoint).catch(() => 0);
      if (rev >= target) {
        caughtAt = performance.now();
        break;
      }
      if (performance.now() - joinAt > 30 * 60_000) throw new Error(`${system}: learner not caught up after 30 minutes`);
      await sleep(250);
    }
    const during = rate(load.acked, joinAt, caughtAt);
    const leaderCpu = cpuSecondsOf(leader.proc.child.pid!) - leaderCpuAtJoin;
    const learnerCpu = cpuSecondsOf(joiner.proc.child.pid!);
    const learnerMainCpu = cpuSecondsOf(joiner.proc.child.pid!, true);
    // The leader's "done" line follows the learner's adoption; wait briefly for it.
    for (let i = 0; system === 'meshkv' && streamTimes.doneMs === undefined && i < 100; i++) await sleep(100);
    for (const line of [...leader.proc.logs, ...joiner.proc.logs]) if (/stream|adopted|snapshot/i.test(line)) console.error(`  ${line.slice(0, 300)}`);
    await load.stop();
    client.close();
    clearInterval(sampler);
    leaderPeak = Math.max(leaderPeak, memoryOf(leader.proc.child.pid!).peakRssBytes);
    joinerPeak = Math.max(joinerPeak, memoryOf(joiner.proc.child.pid!).peakRssBytes);
    return {
      system: label,
      store: `${keys} × ${valueBytes} B`,
      'db file MiB': Math.round(dbBytes / 2 ** 20),
      'catch-up s': Number(((caughtAt - joinAt) / 1000).toFixed(1)),
      'writes/s before': Math.round(before),
      'writes/s during': Math.round(during),
      'leader peak RSS MiB': Math.round(leaderPeak / 2 ** 20),
      'learner peak RSS MiB': Math.round(joinerPeak / 2 ** 20),
      'leader / learner peak anon MiB': `${Math.round(leaderAnonPeak / 2 ** 20)} / ${Math.round(joinerAnonPeak / 2 ** 20)}`,
      'leader CPU s during / learner CPU s (main thread)': `${leaderCpu.toFixed(1)} / ${learnerCpu.toFixed(1)} (${learnerMainCpu.toFixed(1)})`,
      'stream MB/s':
        streamTimes.startMs !== undefined && streamTimes.doneMs !== undefined
          ? `${(streamTimes.bytes! / 1e6 / ((streamTimes.doneMs - streamTimes.startMs) / 1000)).toFixed(1)} (${(streamTimes.bytes! / 1e6).toFixed(0)} MB in ${((streamTimes.doneMs - streamTimes.startMs) / 1000).toFixed(1)} s)`
          : '–',
      'load avg': loadavg().map((l) => l.toFixed(1)).join(' '),
    };
  } finally {
    for (const p of procs) {
      if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill(nodeFlags.length > 0 ? 'SIGINT' : 'SIGKILL');
      await p.exited;
    }
    rmSync(root, { recursive: true, force: true });
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

const rows = [];
for (const system of systems) {
  const row = await run(system);
  console.error(JSON.stringify(row));
  rows.push(row);
}
const columns = Object.keys(rows[0]);
console.log(`| ${columns.join(' | ')} |`);
console.log(`|${columns.map(() => '---').join('|')}|`);
for (const row of rows) console.log(`| ${columns.map((c) => row[c]).join(' | ')} |`);
console.log(`\n${execFileSync('uptime').toString().trim()}`);
