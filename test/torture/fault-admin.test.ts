// The fault-injection admin endpoint and the adjustable clock behind it: what they do, what
// they refuse, and that a member serves the endpoint only when started with the flag.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AdjustableClock } from '../../adapters/clock/adjustable.ts';
import { answerFaultRequest, type FaultControls } from '../../adapters/etcd-api/fault-admin.ts';
import { PeerFaults } from '../../adapters/transport/fault-switch.ts';
import { DiskFaults } from '../../adapters/storage/fs-wal/faulty-fs.ts';
import { nodeWalFs } from '../../adapters/storage/fs-wal/index.ts';
import { etcdctl } from '../etcd-api/harness.ts';
import { parseConfig } from '../../adapters/node/config.ts';
import { Processes, ready } from '../cluster/processes.ts';
import type { Clock } from '../../src/seams.ts';

function manualClock(): Clock & { advance(ms: number): void } {
  let t = 1000;
  return { now: () => t, every: () => () => {}, advance: (ms) => (t += ms) };
}

async function waitFor(cond: () => boolean, timeoutMs: number): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const controls = (): FaultControls & { faults: PeerFaults } => ({ faults: new PeerFaults(), clock: new AdjustableClock(manualClock()), peers: () => [0xabc, 0xdef] });

describe('AdjustableClock', () => {
  it('follows its base at rate 1, jumps forward, and runs slow or fast from the moment the rate changes', () => {
    const base = manualClock();
    const clock = new AdjustableClock(base);
    const t0 = clock.now();
    base.advance(100);
    expect(clock.now()).toBe(t0 + 100);
    clock.jump(5000);
    expect(clock.now()).toBe(t0 + 5100);
    clock.setRate(0.5);
    expect(clock.now()).toBe(t0 + 5100);
    base.advance(100);
    expect(clock.now()).toBe(t0 + 5150);
    clock.setRate(3);
    base.advance(10);
    expect(clock.now()).toBe(t0 + 5180);
    expect(clock.jumped).toBe(5000);
    expect(clock.rate).toBe(3);
  });

  it('refuses to go backwards or stop', () => {
    const clock = new AdjustableClock(manualClock());
    expect(() => clock.jump(-1)).toThrow('a clock jump must be a finite number of milliseconds >= 0, not -1');
    expect(() => clock.setRate(0)).toThrow('a clock rate must be a finite number > 0, not 0');
  });
});

describe('the fault admin requests', () => {

  it('blocks one direction of one peer, reports it, and heals it', () => {
    const c = controls();
    expect(answerFaultRequest(c, 'POST', '/meshkv/faults/block', { peer: 'abc', direction: 'out' })).toEqual({
      status: 200,
      body: {
        peers: [
          { id: 'abc', blockedIn: false, blockedOut: true },
          { id: 'def', blockedIn: false, blockedOut: false },
        ],
        clock: { rate: 1, jumpedMs: 0 },
      },
    });
    answerFaultRequest(c, 'POST', '/meshkv/faults/block', { peer: 'def' });
    expect(c.faults.isBlocked(0xdef, 'in') && c.faults.isBlocked(0xdef, 'out')).toBe(true);
    answerFaultRequest(c, 'POST', '/meshkv/faults/heal', { peer: 'abc' });
    expect(c.faults.isBlocked(0xabc, 'out')).toBe(false);
    expect(c.faults.isBlocked(0xdef, 'in')).toBe(true);
    answerFaultRequest(c, 'POST', '/meshkv/faults/heal', {});
    expect(c.faults.isBlocked(0xdef, 'in')).toBe(false);
  });

  it('jumps and slows the clock', () => {
    const c = controls();
    const before = c.clock.now();
    const answer = answerFaultRequest(c, 'POST', '/meshkv/faults/clock', { jumpMs: 2000, rate: 0.25 });
    expect(answer).toMatchObject({ status: 200, body: { clock: { rate: 0.25, jumpedMs: 2000 } } });
    expect(c.clock.now()).toBe(before + 2000);
  });

  it('refuses bad requests with a message that says what to send', () => {
    const c = controls();
    expect(answerFaultRequest(c, 'POST', '/meshkv/faults/block', { peer: 'xyz' })).toEqual({
      status: 400,
      body: { error: '"peer" must be a member id in hex (as etcdctl member list shows it), not "xyz"' },
    });
    expect(answerFaultRequest(c, 'POST', '/meshkv/faults/block', { peer: 'abc', direction: 'up' }).body).toEqual({
      error: '"direction" must be "in", "out" or "both", not "up"',
    });
    expect(answerFaultRequest(c, 'POST', '/meshkv/faults/clock', { jumpMs: -5 }).body).toEqual({ error: '"jumpMs" must be >= 0 (the clock never goes backwards), not -5' });
    expect(answerFaultRequest(c, 'POST', '/meshkv/faults/clock', {}).status).toBe(400);
    expect(answerFaultRequest(c, 'POST', '/meshkv/faults/explode', {}).body).toEqual({
      error: 'unknown fault action "explode"; POST /meshkv/faults/block, /heal, /clock or /disk',
    });
    expect(answerFaultRequest(c, 'DELETE', '/meshkv/faults', {}).status).toBe(405);
    expect(answerFaultRequest(c, 'POST', '/meshkv/faults/disk', { full: true }).body).toEqual({ error: 'this member has no disk faults to set' });
    expect(c.faults.isBlocked(0xabc, 'in') || c.faults.isBlocked(0xabc, 'out')).toBe(false);
  });
});

describe('disk faults', () => {
  it('sets slow syncs and a full disk through the endpoint, and refuses bad values', () => {
    const c = { ...controls(), disk: new DiskFaults() };
    expect(answerFaultRequest(c, 'POST', '/meshkv/faults/disk', { syncDelayMs: 250 })).toMatchObject({ status: 200, body: { disk: { syncDelayMs: 250, full: false } } });
    expect(answerFaultRequest(c, 'POST', '/meshkv/faults/disk', { full: true })).toMatchObject({ status: 200, body: { disk: { syncDelayMs: 250, full: true } } });
    expect(answerFaultRequest(c, 'POST', '/meshkv/faults/disk', { full: 'yes' }).body).toEqual({ error: '"full" must be true or false, not "yes"' });
    expect(answerFaultRequest(c, 'POST', '/meshkv/faults/disk', { syncDelayMs: 1.5 }).body).toEqual({ error: 'a sync delay must be an integer from 0 to 60000 ms, not 1.5' });
    expect(answerFaultRequest(c, 'POST', '/meshkv/faults/disk', {}).body).toEqual({ error: 'give "syncDelayMs" (0 to 60000), "full" (true or false) or both, and optionally "target" ("wal", "backend" or "both")' });
    expect(answerFaultRequest(c, 'POST', '/meshkv/faults/disk', { full: true, target: 'lmdb' }).body).toEqual({ error: '"target" must be "wal", "backend" or "both", not "lmdb"' });
    expect(c.disk.state).toEqual({ syncDelayMs: 250, full: true, target: 'wal' });
    expect(answerFaultRequest(c, 'POST', '/meshkv/faults/disk', { full: false, target: 'backend' })).toMatchObject({ status: 200, body: { disk: { full: false, target: 'backend', refusedCommits: 0 } } });
  });

  it('makes the WAL fail with ENOSPC while full and delays its syncs, on a real file system', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'meshkv-disk-faults-'));
    try {
      const disk = new DiskFaults();
      const fs = disk.wrap(nodeWalFs);
      const file = await fs.open(join(dir, 'a'), 'create');
      await file.write(new Uint8Array([1, 2, 3]), 0);
      disk.set({ full: true });
      await expect(file.write(new Uint8Array([4]), 3)).rejects.toMatchObject({ code: 'ENOSPC' });
      await expect(fs.open(join(dir, 'b'), 'create')).rejects.toThrow(/^ENOSPC: no space left on device, open/);
      disk.set({ full: false, syncDelayMs: 200 });
      await file.write(new Uint8Array([4]), 3);
      const start = performance.now();
      await file.datasync();
      expect(performance.now() - start).toBeGreaterThanOrEqual(190);
      await file.close();
      expect([...readFileSync(join(dir, 'a'))]).toEqual([1, 2, 3, 4]);
      expect(disk.refusedWrites).toBe(2);
      expect(disk.delayedSyncs).toBe(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the --experimental-fault-injection flag', () => {
  it('is off by default and on with the flag alone or its variable', () => {
    const config = (argv: string[], env = {}) => {
      const r = parseConfig(argv, env);
      if (r.kind !== 'start') throw new Error('expected a start config');
      return r.config;
    };
    expect(config([]).faultInjection).toBe(false);
    expect(config(['--experimental-fault-injection', '--name', 'x']).faultInjection).toBe(true);
    expect(config([], { MESHKV_EXPERIMENTAL_FAULT_INJECTION: 'true' }).faultInjection).toBe(true);
    expect(() => config(['--experimental-fault-injection=yes'])).toThrow('--experimental-fault-injection must be true or false, not "yes"');
  });

  const procs = new Processes();
  afterAll(() => procs.cleanup());

  it('makes a real member serve /meshkv/faults to holders of its secret; without it the path is not found', async () => {
    const on = await procs.spec('on');
    const off = await procs.spec('off');
    const pOn = procs.start(on, [on], ['--experimental-fault-injection']);
    const pOff = procs.start(off, [off]);
    await ready(pOn);
    await ready(pOff);
    const authorization = `Bearer ${readFileSync(join(on.dataDir, 'fault-injection-secret'), 'utf8').trim()}`;
    const got = await fetch(`http://${pOn.endpoint}/meshkv/faults`, { headers: { authorization } });
    expect(got.status).toBe(200);
    const disk = { syncDelayMs: 0, full: false, target: 'wal', refusedWrites: 0, delayedSyncs: 0, refusedCommits: 0, delayedCommits: 0 };
    expect(await got.json()).toEqual({ peers: [], clock: { rate: 1, jumpedMs: 0 }, disk });
    const jumped = await fetch(`http://${pOn.endpoint}/meshkv/faults/clock`, { method: 'POST', headers: { authorization }, body: JSON.stringify({ jumpMs: 100 }) });
    expect(await jumped.json()).toEqual({ peers: [], clock: { rate: 1, jumpedMs: 100 }, disk });
    expect((await fetch(`http://${pOff.endpoint}/meshkv/faults`)).status).toBe(404);
    expect(pOn.logs.some((l) => l.includes('fault injection is on'))).toBe(true);
  }, 60_000);

  it("lets a real member's WAL sync slowly, then fill up: the member stops with ENOSPC and refuses writes", async () => {
    const m = await procs.spec('disk');
    const p = procs.start(m, [m], ['--experimental-fault-injection']);
    await ready(p);
    const authorization = `Bearer ${readFileSync(join(m.dataDir, 'fault-injection-secret'), 'utf8').trim()}`;
    const post = (body: unknown) => fetch(`http://${p.endpoint}/meshkv/faults/disk`, { method: 'POST', headers: { authorization }, body: JSON.stringify(body) });
    expect((await post({ syncDelayMs: 300 })).status).toBe(200);
    const start = performance.now();
    expect((await etcdctl(p.endpoint, ['put', 'slow', '1'])).stdout.trim()).toBe('OK');
    expect(performance.now() - start).toBeGreaterThanOrEqual(290);
    expect((await post({ syncDelayMs: 0, full: true })).status).toBe(200);
    const refused = await etcdctl(p.endpoint, ['put', 'full', '1', '--command-timeout=5s']);
    expect(refused.code).not.toBe(0);
    await waitFor(() => p.logs.some((l) => l.includes('stopped:') && l.includes('ENOSPC: no space left on device')), 10_000);
    expect(await (await fetch(`http://${p.endpoint}/meshkv/faults`, { headers: { authorization } })).json()).toMatchObject({ disk: { full: true, syncDelayMs: 0 } });
  }, 60_000);
});
