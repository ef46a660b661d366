// The client port's gRPC server cost, A against B: two checkouts each serve one in-memory
// member (test/etcd-api/harness.ts's serve(): memory storage, no fsync, no peers) in a child
// process, loaded by ../shared/bench-etcd's bench.mjs (its h2 client), sides interleaved
// A, B, A, B… per workload so both see the same machine load. The member's work is the same on
// both sides, so the difference in server CPU per operation is the gRPC server's. With
// PROFILE=1 each server also runs under --cpu-prof and its CPU shares are printed
// (bench/cpu-profile-shares.mjs), load seconds only.
//
//   npx tsx bench/grpc-server.ts A_ROOT B_ROOT [ROUNDS]     # env: ONLY, DURATION (6), WARMUP (2), PROFILE
//   A_HTTP2=node B_HTTP2=meshkv npx tsx bench/grpc-server.ts . .   # one checkout, the two HTTP/2 servers
//
// A checkout of another commit, for A: mkdir /tmp/main && git archive main | tar -x -C /tmp/main
// && ln -s "$PWD/node_modules" /tmp/main/. Prints `uptime`'s load average beside every figure.
// Every child it starts is stopped by PID.

import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(import.meta.url);
const repo = resolve(here, '../..');

if (process.argv[2] === '--serve') {
  // Child: serve one member from the given checkout until SIGINT (which lets --cpu-prof write).
  const root = process.argv[3]!;
  const http2Server = process.argv[4];
  const { serve } = (await import(join(root, 'test/etcd-api/harness.ts'))) as typeof import('../test/etcd-api/harness.ts');
  const s = await serve({ minTtlSeconds: 3600, ...(http2Server === 'meshkv' || http2Server === 'node' ? { http2Server } : {}) });
  process.on('SIGINT', () => void s.stop().then(() => process.exit(0)));
  process.stdout.write(`${s.endpoint}\n`);
} else {
  const [aRoot, bRoot] = [process.argv[2], process.argv[3]].map((r) => {
    if (r === undefined) throw new Error('usage: npx tsx bench/grpc-server.ts A_ROOT B_ROOT [ROUNDS]');
    return resolve(r);
  });
  const rounds = Number(process.argv[4] ?? 2);
  const duration = process.env.DURATION ?? '6';
  const warmup = process.env.WARMUP ?? '2';
  const profile = process.env.PROFILE === '1';
  // The shared harness is read-only: a copy with its own node_modules, as the shell benches do.
  const harness = join(mkdtempSync(join(tmpdir(), 'grpc-bench-harness-')), 'harness');
  cpSync(resolve(repo, '../shared/bench-etcd'), harness, { recursive: true });
  execFileSync('npm', ['ci', '--no-audit', '--no-fund', '--silent'], { cwd: harness, stdio: 'inherit' });
  const workloads: Record<string, string[]> = {
    'put-c1': ['--workload', 'put', '--clients', '1'],
    'put-c64': ['--workload', 'put', '--clients', '64'],
    'get-lin-c64': ['--workload', 'get-linearizable', '--clients', '64'],
    // No Raft round at all: the closest to the gRPC server's cost alone.
    'get-ser-c64': ['--workload', 'get-serializable', '--clients', '64'],
    'watch100-w1': ['--workload', 'watch-fanout', '--watchers', '100', '--clients', '1'],
    // 16 puts in flight: enough events per second that the member's fixed per-second cost fades.
    'watch100-w16': ['--workload', 'watch-fanout', '--watchers', '100', '--clients', '16'],
  };
  const only = process.env.ONLY?.split(/\s+/).filter(Boolean) ?? Object.keys(workloads);
  const children = new Set<ChildProcess>();
  const killAll = () => {
    for (const c of children) if (c.pid !== undefined && c.exitCode === null) process.kill(c.pid, 'SIGKILL');
  };
  process.on('exit', killAll);
  process.on('SIGINT', () => process.exit(130));

  const http2Of: Record<string, string> = { a: process.env.A_HTTP2 ?? '', b: process.env.B_HTTP2 ?? '' };
  const startServer = async (root: string, http2Server: string, profDir: string | null): Promise<{ child: ChildProcess; endpoint: string }> => {
    const profArgs = profDir === null ? [] : ['--cpu-prof', `--cpu-prof-dir=${profDir}`];
    const child = spawn(process.execPath, [...profArgs, '--import', 'tsx', here, '--serve', root, http2Server], { cwd: repo, stdio: ['ignore', 'pipe', 'inherit'] });
    children.add(child);
    const endpoint = await new Promise<string>((ok, fail) => {
      let out = '';
      child.stdout!.on('data', (c: Buffer) => {
        out += c;
        if (out.includes('\n')) ok(out.trim());
      });
      child.once('exit', (code) => fail(new Error(`server for ${root} exited with ${code}`)));
    });
    return { child, endpoint };
  };
  const stopServer = async (child: ChildProcess) => {
    if (child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      process.kill(child.pid!, 'SIGINT');
      await exited;
    }
    children.delete(child);
  };

  const rows: { side: string; workload: string; usPerOp: number; opsPerS: number; load: string }[] = [];
  for (const w of only) {
    const args = workloads[w];
    if (args === undefined) throw new Error(`unknown workload ${w} (${Object.keys(workloads).join(', ')})`);
    for (let r = 0; r < rounds; r++) {
      for (const [side, root] of [['a', aRoot], ['b', bRoot]] as const) {
        const profDir = profile ? mkdtempSync(join(tmpdir(), `grpc-bench-${side}-`)) : null;
        const { child, endpoint } = await startServer(root, http2Of[side]!, profDir);
        const load = loadavg().map((x) => x.toFixed(1)).join(' ');
        const serverPid = String(child.pid);
        const out = execFileSync(
          process.execPath,
          [join(harness, 'bench.mjs'), '--endpoints', endpoint, '--duration', duration, '--warmup', warmup, '--mode', 'h2', '--value-size', '256', '--server-pids', serverPid, ...args],
          { cwd: harness, encoding: 'utf8' },
        );
        await stopServer(child);
        const json = JSON.parse(out.split('\n').find((l) => l.startsWith('{'))!);
        // For watch-fanout an operation is one delivered event.
        const ops: number = json.ops_per_s;
        // bench.mjs rounds its µs per op to whole µs; a watch event costs a few: recomputed.
        const usPerOp: number = (json.server.cpu_pct_sum * 1e4) / ops;
        rows.push({ side, workload: w, usPerOp, opsPerS: ops, load });
        console.log(`${side} ${w}: ${Math.round(ops)} ${w.startsWith('watch') ? 'events' : 'ops'}/s, server ${usPerOp.toFixed(1)} µs per ${w.startsWith('watch') ? 'event' : 'op'} (load ${load})`);
        if (profDir !== null) {
          const files = readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile'));
          for (const f of files) {
            const shares = execFileSync(process.execPath, [join(repo, 'bench/cpu-profile-shares.mjs'), join(profDir, f), '--last', String(Number(duration) + Number(warmup))], { encoding: 'utf8' });
            // The tsx loader's worker thread writes a profile of its own, idle during the load.
            if (!/busy 0\.0\d s/.test(shares)) console.log(shares.split('\n').map((l) => `    ${l}`).join('\n'));
          }
          rmSync(profDir, { recursive: true, force: true });
        }
      }
    }
  }
  rmSync(resolve(harness, '..'), { recursive: true, force: true });
  console.log('\nlowest server CPU per op of each side (µs):');
  for (const w of only) {
    const best = (side: string) => Math.min(...rows.filter((r) => r.side === side && r.workload === w).map((r) => r.usPerOp));
    const a = best('a');
    const b = best('b');
    console.log(`${w}: a ${a.toFixed(1)}  b ${b.toFixed(1)}  b/a ${(b / a).toFixed(2)}`);
  }
}
