// `meshkv bench` as a user runs it: node bin/meshkv.mjs bench ... against one in-process member,
// short runs of each workload; the summary's numbers must agree with what reached the store.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectGrpc } from '../../adapters/etcd-api/grpc-connection.ts';
import type { Client } from '../../src/client/client.ts';
import { spawnCollecting } from '../helpers/processes.ts';
import { deadEndpoint } from '../client-grpc/helpers.ts';
import { serve, type Served } from './harness.ts';

const bin = new URL('../../bin/meshkv.mjs', import.meta.url).pathname;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function bench(args: string[]): Promise<Run> {
  const p = spawnCollecting(process.execPath, [bin, 'bench', ...args], { stdout: true });
  const stdout: string[] = [];
  const stderr: string[] = [];
  p.child.stdout!.on('data', (d: Buffer) => stdout.push(d.toString()));
  p.child.stderr!.on('data', (d: Buffer) => stderr.push(d.toString()));
  return p.exited.then((code) => ({ code, stdout: stdout.join(''), stderr: stderr.join('') }));
}

interface Summary {
  workload: string;
  requests: number;
  errors: number;
  requestsPerSec: number;
  totalSecs: number;
  latencyMs: { slowest: number; fastest: number; average: number; stddev: number; percentiles: Record<string, number> };
  histogram: { upToMs: number; count: number }[];
  counters: Record<string, number>;
}

function expectConsistent(s: Summary, requests: number): void {
  expect(s.requests).toBe(requests);
  expect(s.errors).toBe(0);
  const l = s.latencyMs;
  const ordered = [l.fastest, ...['p10', 'p25', 'p50', 'p75', 'p90', 'p95', 'p99', 'p99.9'].map((p) => l.percentiles[p]), l.slowest];
  expect([...ordered].sort((a, b) => a - b)).toEqual(ordered);
  expect(l.fastest).toBeGreaterThan(0);
  expect(l.average).toBeGreaterThanOrEqual(l.fastest);
  expect(l.average).toBeLessThanOrEqual(l.slowest);
  expect(s.histogram.reduce((n, b) => n + b.count, 0)).toBe(requests);
  expect(s.requestsPerSec).toBeCloseTo(requests / s.totalSecs, 3);
}

async function keysUnder(client: Client, prefix: string): Promise<Record<string, string>> {
  return client.getAll().prefix(prefix);
}

describe('meshkv bench', () => {
  let member: Served;
  let client: Client;

  beforeAll(async () => {
    member = await serve();
    client = connectGrpc([member.endpoint]);
  });
  afterAll(async () => {
    client.close();
    await member.stop();
  });

  it('put writes keys of the key space and prints the text summary with a final progress line', async () => {
    const run = await bench(['put', `--endpoints=${member.endpoint}`, '--total=60', '--clients=4', '--conns=2', '--key-space=20', '--prefix=p/', '--val-size=5']);
    expect(run.code).toBe(0);
    for (const label of ['Total:', 'Slowest:', 'Fastest:', 'Average:', 'Stddev:', 'Requests/sec:', 'Response time histogram:', '10% in', '99.9% in']) {
      expect(run.stdout).toContain(label);
    }
    expect(run.stderr).toContain('60/60 requests');
    const written = await keysUnder(client, 'p/');
    expect(Object.keys(written).length).toBeGreaterThan(0);
    expect(Object.keys(written).length).toBeLessThanOrEqual(20);
    for (const [key, value] of Object.entries(written)) {
      expect(key).toMatch(/^p\/\d{8}$/);
      expect(value).toBe('vvvvv');
    }
    // 60 puts landed: the keys' versions add up to them.
    const res = await client.getAll().prefix('p/').exec();
    expect(res.kvs.reduce((n, kv) => n + kv.version, 0)).toBe(60);
  });

  it('put --json gives one JSON object whose numbers agree', async () => {
    const run = await bench(['put', `--endpoints=${member.endpoint}`, '--total=50', '--clients=3', '--prefix=j/', '--json']);
    expect(run.code).toBe(0);
    const s = JSON.parse(run.stdout) as Summary;
    expect(s.workload).toBe('put');
    expectConsistent(s, 50);
  });

  it('range reads keys: serializable and linearizable', async () => {
    await client.put('r/00000000').value('x');
    for (const consistency of ['s', 'l']) {
      const run = await bench(['range', `--endpoints=${member.endpoint}`, '--total=40', '--clients=2', '--key-space=1', '--prefix=r/', `--consistency=${consistency}`, '--json']);
      expect(run.code).toBe(0);
      const s = JSON.parse(run.stdout) as Summary;
      expectConsistent(s, 40);
      // One key in the key space, present: every read found exactly it.
      expect(s.counters.keysFound).toBe(40);
    }
  });

  it('txn compare-and-swaps: the successful swaps are the puts the store saw', async () => {
    const run = await bench(['txn', `--endpoints=${member.endpoint}`, '--total=60', '--clients=4', '--conns=2', '--key-space=5', '--prefix=t/', '--json']);
    expect(run.code).toBe(0);
    const s = JSON.parse(run.stdout) as Summary;
    expectConsistent(s, 60);
    expect(s.counters.casSucceeded + (s.counters.casFailed ?? 0)).toBe(60);
    const res = await client.getAll().prefix('t/').exec();
    expect(res.kvs.reduce((n, kv) => n + kv.version, 0)).toBe(s.counters.casSucceeded);
  });

  it('watch delivers every put to every watcher and reports the lag', async () => {
    const run = await bench(['watch', `--endpoints=${member.endpoint}`, '--total=30', '--clients=2', '--watchers=4', '--prefix=w/', '--json']);
    expect(run.code).toBe(0);
    const s = JSON.parse(run.stdout) as Summary;
    expectConsistent(s, 120);
    expect(s.counters).toMatchObject({ puts: 30, putErrors: 0, eventsExpected: 120, eventsMissing: 0 });
    const res = await client.getAll().prefix('w/').exec();
    expect(res.kvs.reduce((n, kv) => n + kv.version, 0)).toBe(30);
  });

  it('--duration runs for about that long', async () => {
    const run = await bench(['put', `--endpoints=${member.endpoint}`, '--duration=0.5', '--prefix=d/', '--json']);
    expect(run.code).toBe(0);
    const s = JSON.parse(run.stdout) as Summary;
    expect(s.totalSecs).toBeGreaterThanOrEqual(0.5);
    expect(s.totalSecs).toBeLessThan(3);
    expect(s.requests).toBeGreaterThan(0);
    expect(run.stderr).toMatch(/0\.5s, \d+ requests/);
  });

  it('counts and reports errors; exit code 1 when every request failed', async () => {
    // Beyond the member's request size limit (1.5 MiB, as etcd's): every put is refused.
    const run = await bench(['put', `--endpoints=${member.endpoint}`, '--total=3', '--val-size=2000000', '--prefix=big/']);
    expect(run.code).toBe(1);
    expect(run.stdout).toContain('Errors (3):');
    expect(run.stdout).toContain('[3]\tetcdserver: request is too large');
    expect(await keysUnder(client, 'big/')).toEqual({});
  });

  it('refuses bad flags with exit code 2 and says which', async () => {
    const cases: [string[], string][] = [
      [[], 'missing the workload'],
      [['delete'], 'unknown workload "delete"'],
      [['put', '--clients=0'], '--clients must be an integer >= 1'],
      [['put', '--total=x'], '--total must be an integer'],
      [['put', '--total=5', '--duration=1'], 'not both'],
      [['range', '--consistency=x'], '--consistency must be l or s'],
      [['put', '--bogus=1'], 'unknown flag --bogus'],
      [['put', '--endpoints=nope'], 'is not host:port'],
      [['put', '--key-space=1000', '--key-size=4'], 'too short'],
    ];
    const runs = await Promise.all(cases.map(([args]) => bench(args)));
    runs.forEach((run, i) => {
      expect(run.code, cases[i][1]).toBe(2);
      expect(run.stderr).toContain(cases[i][1]);
      expect(run.stdout).toBe('');
    });
  });

  it('fails fast with exit code 1 on an unreachable endpoint', async () => {
    const dead = await deadEndpoint();
    const started = Date.now();
    const run = await bench(['put', `--endpoints=${dead}`, '--total=10']);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`cannot reach ${dead}`);
    expect(Date.now() - started).toBeLessThan(8000);
  });
});
