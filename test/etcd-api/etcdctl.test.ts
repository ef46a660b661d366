// The real etcdctl (3.4) against a meshkv member: every expected output below was recorded from
// etcd 3.4.23 running the same command (ids, sizes and the endpoint are the only differences,
// and are matched by pattern).

import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { decodeSnapshotFile } from '../../adapters/etcd-api/snapshot-file.ts';
import { MvccStateMachine } from '../../src/mvcc/state-machine.ts';
import { etcdctl, requireEtcdctl, serve, spawnEtcdctl, waitFor, type Served } from './harness.ts';

let s: Served;
let ctl: (...args: string[]) => ReturnType<typeof etcdctl>;
const dec = new TextDecoder();

beforeAll(async () => {
  requireEtcdctl();
  s = await serve();
  ctl = (...args) => etcdctl(s.endpoint, args);
});
afterAll(async () => {
  await s?.stop();
});
beforeEach(async () => {
  await s.kv.deleteRange({ key: new Uint8Array([0]), rangeEnd: new Uint8Array([0]) });
});

/** etcdctl's error line (it also logs a JSON retry warning before it). */
function errorLine(stderr: string): string {
  return stderr.split('\n').find((l) => l.startsWith('Error:')) ?? `(no Error: line in ${JSON.stringify(stderr)})`;
}

describe('etcdctl against meshkv', () => {
  it('put, get, get --prefix, --keys-only, del --prefix --prev-kv print what etcd prints', async () => {
    expect(await ctl('put', 'foo', 'bar')).toMatchObject({ code: 0, stdout: 'OK\n' });
    expect(await ctl('put', 'foo', 'bar2', '--prev-kv')).toMatchObject({ code: 0, stdout: 'OK\nfoo\nbar\n' });
    expect(await ctl('get', 'foo')).toMatchObject({ code: 0, stdout: 'foo\nbar2\n' });
    await ctl('put', 'foo/a', '1');
    await ctl('put', 'foo/b', '2');
    expect((await ctl('get', 'foo', '--prefix')).stdout).toBe('foo\nbar2\nfoo/a\n1\nfoo/b\n2\n');
    expect((await ctl('get', 'foo', '--prefix', '--keys-only')).stdout).toBe('foo\n\nfoo/a\n\nfoo/b\n\n');
    expect((await ctl('del', 'foo/a')).stdout).toBe('1\n');
    expect((await ctl('del', 'foo', '--prefix', '--prev-kv')).stdout).toBe('2\nfoo\nbar2\nfoo/b\n2\n');
    expect((await ctl('del', 'nothing')).stdout).toBe('0\n');
    expect(await ctl('get', 'missing')).toMatchObject({ code: 0, stdout: '' });
  });

  it('get -w json has etcd\'s fields, with the header\'s ids and term', async () => {
    await ctl('put', 'foo', 'bar');
    const put2 = await ctl('put', 'foo', 'bar2');
    expect(put2.code).toBe(0);
    const json = JSON.parse((await ctl('get', 'foo', '-w', 'json')).stdout);
    const rev = s.kv.mvcc.currentRevision;
    expect(json).toEqual({
      header: { cluster_id: 324952591200643719, member_id: s.kv.id, revision: rev, raft_term: s.kv.member.status().term },
      kvs: [{ key: 'Zm9v', create_revision: rev - 1, mod_revision: rev, version: 2, value: 'YmFyMg==' }],
      count: 1,
    });
  });

  it('reports etcd\'s errors and exit codes, and keeps serving', async () => {
    const empty = await ctl('put', '', 'x');
    expect(empty.code).toBe(1);
    expect(errorLine(empty.stderr)).toBe('Error: etcdserver: key is not provided');
    const future = await ctl('get', 'foo', '--rev=100000');
    expect(errorLine(future.stderr)).toBe('Error: etcdserver: mvcc: required revision is a future revision');
    await ctl('put', 'c', '1');
    await ctl('put', 'c', '2');
    const rev = s.kv.mvcc.currentRevision;
    expect(await ctl('compaction', String(rev))).toMatchObject({ code: 0, stdout: `compacted revision ${rev}\n` });
    const compacted = await ctl('get', 'c', `--rev=${rev - 1}`);
    expect(compacted.code).toBe(1);
    expect(errorLine(compacted.stderr)).toBe('Error: etcdserver: mvcc: required revision has been compacted');
    expect((await ctl('get', 'c')).stdout).toBe('c\n2\n');
  });

  it('refuses an oversized request and a txn with too many operations with etcd\'s messages', async () => {
    const big = await etcdctl(s.endpoint, ['put', 'big'], 'x'.repeat(1.6 * 1024 * 1024));
    expect(errorLine(big.stderr)).toBe('Error: etcdserver: request is too large');
    const ops = Array.from({ length: 129 }, (_, i) => `put k${i} v`).join('\n');
    const many = await etcdctl(s.endpoint, ['txn'], `\n${ops}\n\n\n`);
    expect(errorLine(many.stderr)).toBe('Error: etcdserver: too many operations in txn request');
    expect((await ctl('put', 'after', 'ok')).stdout).toBe('OK\n');
  });

  it('txn from stdin: compare, then, else', async () => {
    const first = await etcdctl(s.endpoint, ['txn'], 'mod("t") = "0"\n\nput t yes\n\nget t\n\n');
    expect(first).toMatchObject({ code: 0, stdout: 'SUCCESS\n\nOK\n' });
    const again = await etcdctl(s.endpoint, ['txn'], 'mod("t") = "0"\n\nput t yes\n\nget t\n\n');
    expect(again).toMatchObject({ code: 0, stdout: 'FAILURE\n\nt\nyes\n' });
    const json = JSON.parse((await etcdctl(s.endpoint, ['txn', '-w', 'json'], 'value("a") = "zz"\n\nput a 1\n\nput b 2\nget b\n\n')).stdout);
    const rev = s.kv.mvcc.currentRevision;
    expect(json.responses).toEqual([
      { Response: { ResponsePut: { header: { revision: rev } } } },
      {
        Response: {
          ResponseRange: { header: { revision: rev }, kvs: [{ key: 'Yg==', create_revision: rev, mod_revision: rev, version: 1, value: 'Mg==' }], count: 1 },
        },
      },
    ]);
  });

  it('watch --prefix --prev-kv streams puts and deletes as etcd prints them', async () => {
    const w = spawnEtcdctl(s.endpoint, ['watch', 'w', '--prefix', '--prev-kv']);
    try {
      await waitFor('the watch to be created', () => s.listener.api.watcherCount === 1, 10_000);
      await ctl('put', 'w1', 'a');
      await ctl('put', 'w1', 'b');
      await ctl('del', 'w1');
      await waitFor('13 lines', () => w.lines.length >= 13);
      expect(w.lines.join('\n')).toBe('PUT\nw1\na\nPUT\nw1\na\nw1\nb\nDELETE\nw1\nb\nw1\n');
    } finally {
      w.stop();
    }
    await waitFor('the watcher to be closed', () => s.listener.api.watcherCount === 0);
  });

  it('lease grant, keep-alive --once, timetolive, list, revoke', async () => {
    const grant = await ctl('lease', 'grant', '100');
    const m = /^lease ([0-9a-f]{16}) granted with TTL\(100s\)\n$/.exec(grant.stdout);
    expect(m, grant.stdout + grant.stderr).not.toBeNull();
    const id = m![1];
    expect((await ctl('put', '--lease=' + id, 'lk', 'v')).stdout).toBe('OK\n');
    expect(await ctl('lease', 'keep-alive', '--once', id)).toMatchObject({ code: 0, stdout: `lease ${id} keepalived with TTL(100)\n` });
    expect((await ctl('lease', 'timetolive', id)).stdout).toMatch(new RegExp(`^lease ${id} granted with TTL\\(100s\\), remaining\\((99|100)s\\)\\n$`));
    expect((await ctl('lease', 'timetolive', id, '--keys')).stdout).toMatch(/remaining\((99|100)s\), attached keys\(\[lk\]\)\n$/);
    expect((await ctl('lease', 'list')).stdout).toBe(`found 1 leases\n${id}\n`);
    expect(await ctl('lease', 'revoke', id)).toMatchObject({ code: 0, stdout: `lease ${id} revoked\n` });
    expect((await ctl('get', 'lk')).stdout).toBe('');
    const again = await ctl('lease', 'revoke', id);
    expect(again.code).toBe(1);
    expect(errorLine(again.stderr)).toBe('Error: failed to revoke lease (etcdserver: requested lease not found)');
    const keepGone = await ctl('lease', 'keep-alive', '--once', id);
    expect(keepGone.code).toBe(2);
    expect(errorLine(keepGone.stderr)).toBe('Error: etcdserver: requested lease not found');
    expect((await ctl('lease', 'timetolive', id)).stdout).toBe(`lease ${id} already expired\n`);
  });

  it('lease ids are shaped like etcd\'s: the member id\'s low 16 bits on top, then a spread-out counter', async () => {
    const ids: bigint[] = [];
    for (let i = 0; i < 2; i++) {
      const m = /^lease ([0-9a-f]{16}) granted with TTL\(100s\)\n$/.exec((await ctl('lease', 'grant', '100')).stdout);
      expect(m).not.toBeNull();
      ids.push(BigInt('0x' + m![1]));
    }
    expect(ids[0]! >> 48n).toBe(BigInt(s.kv.id & 0xffff));
    expect(ids[1]).toBe(ids[0]! + 1n);
    for (const id of ids) await ctl('lease', 'revoke', id.toString(16));
  });

  it('lease keep-alive keeps renewing over one stream until stopped', async () => {
    const id = /^lease ([0-9a-f]{16}) /.exec((await ctl('lease', 'grant', '3')).stdout)![1];
    const k = spawnEtcdctl(s.endpoint, ['lease', 'keep-alive', id]);
    try {
      await waitFor('two renewals', () => k.lines.length >= 2, 10_000);
      expect(k.lines.slice(0, 2)).toEqual([`lease ${id} keepalived with TTL(3)`, `lease ${id} keepalived with TTL(3)`]);
    } finally {
      k.stop();
    }
    await ctl('lease', 'revoke', id);
  });

  it('endpoint status, member list, hashkv, alarm list, defrag', async () => {
    const status = s.kv.member.status();
    const line = (await ctl('endpoint', 'status')).stdout;
    expect(line).toMatch(new RegExp(`^${s.endpoint}, ${s.kv.id.toString(16)}, 3\\.4\\.23, \\d+ B, true, false, ${status.term}, \\d+, \\d+, \\n$`));
    const json = JSON.parse((await ctl('endpoint', 'status', '-w', 'json')).stdout);
    expect(Object.keys(json[0].Status).sort()).toEqual(
      ['dbSize', 'dbSizeInUse', 'header', 'leader', 'raftAppliedIndex', 'raftIndex', 'raftTerm', 'version'].sort(),
    );
    expect(json[0].Status.leader).toBe(s.kv.id);
    expect((await ctl('member', 'list')).stdout).toBe(
      `${s.kv.id.toString(16)}, started, default, http://localhost:2380, http://${s.endpoint}, false\n`,
    );
    expect((await ctl('endpoint', 'hashkv')).stdout).toBe(`${s.endpoint}, ${s.kv.hashKV(0).hash}\n`);
    expect(await ctl('alarm', 'list')).toMatchObject({ code: 0, stdout: '' });
    // etcd 3.4 answers Alarm without a header.
    expect(await ctl('alarm', 'list', '-w', 'json')).toMatchObject({ code: 0, stdout: '{}\n' });
    expect((await ctl('defrag')).stdout).toBe(`Finished defragmenting etcd member[${s.endpoint}]\n`);
  });

  it('snapshot save writes etcd\'s format (a bbolt db) followed by its sha256, and it restores into meshkv', async () => {
    await ctl('put', 'snap', 'shot');
    // Enough data for many 32 KiB chunks.
    const bulk = new Uint8Array(64 * 1024).fill(7);
    for (let i = 0; i < 40; i++) await s.kv.put({ key: new TextEncoder().encode(`bulk/${i}`), value: bulk });
    const dir = mkdtempSync(join(tmpdir(), 'meshkv-snap-'));
    try {
      const path = join(dir, 'snap.db');
      const saved = await ctl('snapshot', 'save', path);
      expect(saved).toMatchObject({ code: 0, stdout: `Snapshot saved at ${path}\n` });
      const file = readFileSync(path);
      // etcd's rule: the stream is 512-byte pages and a trailing sha256 of them.
      expect(file.length % 512).toBe(32);
      expect(createHash('sha256').update(file.subarray(0, file.length - 32)).digest().equals(file.subarray(file.length - 32))).toBe(true);
      const restored = new MvccStateMachine();
      restored.restore(decodeSnapshotFile(file));
      expect(dec.decode(restored.range({ key: new TextEncoder().encode('snap') }).kvs[0].value)).toBe('shot');
      expect(restored.range({ key: new TextEncoder().encode('bulk/'), rangeEnd: new TextEncoder().encode('bulk0'), countOnly: true }).count).toBe(40);
      expect(restored.hash()).toBe(s.kv.mvcc.hash());
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
