// A snapshot stream cut mid-way over real TCP: two KvMembers on fs-wal and LMDB, the leader's
// link to the joiner running through a TCP proxy that the test cuts once the stream is under
// way. Chunks written into the cut connection are lost and never sent again, so the stream can
// only fail; the leader must hear that at once (the link went down) and send a new snapshot,
// instead of leaving the follower in snapshot state until the stream's idle timeout.

import { mkdtempSync, rmSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LmdbBackend } from '../../adapters/backend/lmdb.ts';
import { systemClock } from '../../adapters/clock/system.ts';
import { FsWalStorage } from '../../adapters/storage/fs-wal/index.ts';
import { FrameReader, FrameType, encodeFrame, frameBytesMax, type Frame } from '../../adapters/transport/tcp/frame.ts';
import { TcpTransport } from '../../adapters/transport/tcp/index.ts';
import { silentLogger } from '../../src/raft/config.ts';
import type { MemberId } from '../../src/raft/types.ts';
import { KvMember } from '../../src/server/kv-member.ts';
import { prng } from '../raft/prng.ts';
import { waitFor } from '../helpers/wait.ts';

const b = (s: string) => new TextEncoder().encode(s);
/** Long enough that a stream left to time out could not pass the test's catch-up bound. */
const snapshotStreamIdleMs = 60_000;
/** The test's bound on catching up after the cut: a fraction of the idle timeout. */
const catchUpAfterCutMsMax = 20_000;

interface Started {
  kv: KvMember;
  backend: LmdbBackend;
  transport: TcpTransport;
  logs: string[];
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function start(id: MemberId, peers: MemberId[]): Promise<Started> {
  const dir = mkdtempSync(join(tmpdir(), 'meshkv-tcp-snapshot-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const logs: string[] = [];
  const log = (level: string, msg: string) => logs.push(`${level}: ${msg}`);
  const transport = await TcpTransport.listen({ id, clusterToken: 'tcp-snapshot-test', admissionSecret: 'tcp-snapshot-test-secret', port: 0, log });
  const storage = await FsWalStorage.open(join(dir, 'wal'), { logger: silentLogger });
  const backend = LmdbBackend.open(join(dir, 'backend'));
  const kv = await KvMember.start({
    id,
    peers,
    clock: systemClock,
    storage,
    transport,
    random: prng(11 + id),
    tickMs: 10,
    electionTicks: 10,
    snapshotEntries: 50,
    snapshotKeepEntries: 10,
    snapshotStreamIdleMs,
    mvcc: { backend },
    log,
  });
  cleanups.push(async () => {
    await kv.stop();
    await backend.close();
  });
  return { kv, backend, transport, logs };
}

/**
 * A TCP proxy to `target` that counts the bytes it forwards and can cut every connection. With
 * `rewrite`, it reads the connecting side's bytes as peer frames and forwards what `rewrite`
 * makes of each frame instead.
 */
async function proxyTo(
  target: string,
  rewrite?: (frame: Frame) => Uint8Array,
): Promise<{ address: string; forwarded: () => number; cut: () => void; cutWhen: (cond: () => boolean) => Promise<number> }> {
  const [host, port] = target.split(':');
  const sockets = new Set<net.Socket>();
  let forwarded = 0;
  let pending: { cond: () => boolean; resolve: (atMs: number) => void } | null = null;
  const cut = () => {
    for (const s of sockets) s.destroy();
  };
  const server = net.createServer((client) => {
    const upstream = net.connect({ host, port: Number(port) });
    sockets.add(client).add(upstream);
    const reader = new FrameReader();
    reader.frameBytesLimit = frameBytesMax;
    client.on('data', (chunk: Buffer) => {
      if (rewrite !== undefined) {
        for (const f of reader.push(chunk)) upstream.write(rewrite(f));
        return;
      }
      forwarded += chunk.length;
      // Cut before forwarding the chunk that crosses the line, so the stream is surely mid-way.
      if (pending?.cond()) {
        const p = pending;
        pending = null;
        cut();
        p.resolve(performance.now());
        return;
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => client.write(chunk));
    for (const s of [client, upstream]) {
      s.on('error', () => {});
      s.on('close', () => {
        sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        cut();
        server.close(() => resolve());
      }),
  );
  const { port: proxyPort } = server.address() as net.AddressInfo;
  return {
    address: `127.0.0.1:${proxyPort}`,
    forwarded: () => forwarded,
    cut,
    cutWhen: (cond) => new Promise((resolve) => (pending = { cond, resolve })),
  };
}

describe('a snapshot stream over TCP', () => {
  it('cut mid-way is reported failed at once, and the follower gets a new one promptly', { timeout: 150_000 }, async () => {
    const leader = await start(1, [1]);
    await waitFor('leadership', () => leader.kv.member.isLeader(), 20_000);
    const joiner = await start(2, []);
    const proxy = await proxyTo(joiner.transport.addressString);
    leader.transport.addPeer(2, proxy.address);
    joiner.transport.addPeer(1, leader.transport.addressString);
    // About 200 KB in the backend: the stream is one chunk (snapshotChunkBytesMax is 512 KiB),
    // written into the socket whole. The log is cut at snapshots, so the joiner can only catch
    // up from a stream.
    const value = 'x'.repeat(2048);
    for (let i = 0; i < 100; i++) await leader.kv.put({ key: b(`k/${i}`), value: b(value) });

    // Cut the leader's connection to the joiner once 64 KiB of the stream went through: inside
    // its only chunk, which is lost, and nothing more of the stream follows that could show the
    // joiner a gap. Only the link going down can tell the leader the stream failed.
    let streamStartForwarded: number | null = null;
    const streaming = () => leader.logs.some((l) => l.includes('streaming snapshot'));
    const cutAt = proxy.cutWhen(() => {
      if (!streaming()) return false;
      streamStartForwarded ??= proxy.forwarded();
      return proxy.forwarded() - streamStartForwarded > 64 * 1024;
    });
    await leader.kv.addMember(2, ['http://joiner'], true);
    const cutMs = await cutAt;

    await waitFor('the joiner caught up', () => joiner.kv.mvcc.currentRevision === leader.kv.mvcc.currentRevision, catchUpAfterCutMsMax + 10_000, 20);
    const caughtUpAfterMs = performance.now() - cutMs;
    const failures = leader.logs.filter((l) => l.includes('snapshot stream') && l.includes('failed'));
    expect(failures[0], leader.logs.join('\n')).toMatch(/snapshot stream 1 to member 2 failed: the link to member 2 went down/);
    expect(leader.kv.member.snapshotStreams.sendFailed).toBe(1);
    await waitFor('the second stream done', () => leader.kv.member.snapshotStreams.sent === 1, 20_000);
    expect(joiner.kv.member.snapshotStreams.received).toBe(1);
    expect(caughtUpAfterMs).toBeLessThan(catchUpAfterCutMsMax);
    expect(joiner.kv.hashKV(0)).toEqual(leader.kv.hashKV(0));
  });
});

/** The frame as it was sent; a StreamChunk's pairs go through `change` first. */
function reframe(f: Frame, change: (pairs: Uint8Array) => Uint8Array = (p) => p): Uint8Array {
  if (f.type !== FrameType.StreamChunk) return encodeFrame(f.type, f.payload);
  const pairs = change(f.pairs!);
  const payload = new Uint8Array(f.payload.length + pairs.length);
  payload.set(f.payload);
  payload.set(pairs, f.payload.length);
  return encodeFrame(f.type, payload);
}

describe('a snapshot stream chunk damaged on the way (StreamChunk frames)', () => {
  // The TCP checksum would catch this on a real wire; the stream's own CRC-32C and the pair
  // framing must catch it anyway (a bug, a broken middlebox): the receiver refuses the stream,
  // adopts nothing, and the retry completes with the leader's data.
  for (const [what, change, reason] of [
    ['a flipped byte', (p: Uint8Array) => (p.length > 1000 ? p.map((x, i) => (i === 1000 ? x ^ 0x40 : x)) : p), /checksum mismatch after chunk \d+/],
    ['truncated pairs', (p: Uint8Array) => (p.length > 1000 ? p.subarray(0, p.length - 700) : p), /pair at byte \d+ overruns the \d+-byte chunk/],
  ] as const) {
    it(`with ${what} is refused, never adopted, and the retry completes`, { timeout: 150_000 }, async () => {
      const leader = await start(1, [1]);
      await waitFor('leadership', () => leader.kv.member.isLeader(), 20_000);
      const joiner = await start(2, []);
      let damaged = 0;
      const proxy = await proxyTo(joiner.transport.addressString, (f) => {
        if (f.type !== FrameType.StreamChunk || damaged > 0 || f.pairs!.length <= 1000) return reframe(f);
        damaged++;
        return reframe(f, change);
      });
      leader.transport.addPeer(2, proxy.address);
      joiner.transport.addPeer(1, leader.transport.addressString);
      const value = 'x'.repeat(2048);
      for (let i = 0; i < 100; i++) await leader.kv.put({ key: b(`k/${i}`), value: b(value) });
      await leader.kv.addMember(2, ['http://joiner'], true);

      await waitFor('the joiner caught up', () => joiner.kv.mvcc.currentRevision === leader.kv.mvcc.currentRevision, 60_000, 20);
      expect(damaged).toBe(1);
      const refusals = joiner.logs.filter((l) => l.includes('snapshot stream 1 from member 1'));
      expect(refusals.join('\n'), joiner.logs.join('\n')).toMatch(reason);
      expect(leader.kv.member.snapshotStreams.sendFailed).toBe(1);
      await waitFor('the second stream done', () => leader.kv.member.snapshotStreams.sent === 1, 20_000);
      expect(joiner.kv.member.snapshotStreams.received).toBe(1);
      expect(joiner.kv.hashKV(0)).toEqual(leader.kv.hashKV(0));
    });
  }
});
