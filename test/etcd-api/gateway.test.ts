// etcd's JSON gateway on the client port, driven with fetch. Expected bodies follow etcd
// 3.4.23's gateway answers to the same requests (recorded once; only ids and revisions differ).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JsonObjectSplitter } from '../../adapters/etcd-api/gateway.ts';
import { serve, waitFor, type Served } from './harness.ts';

let s: Served;
let base: string;
const b64 = (text: string) => Buffer.from(text).toString('base64');

beforeAll(async () => {
  s = await serve();
  base = `http://${s.endpoint}`;
});
afterAll(async () => {
  await s?.stop();
});

async function post(path: string, body: unknown): Promise<{ status: number; json: any; headers: Headers }> {
  const res = await fetch(base + path, { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, json: text.startsWith('{') ? JSON.parse(text) : text, headers: res.headers };
}

function header(revision?: number) {
  const h: Record<string, string> = { cluster_id: '324952591200643719', member_id: String(s.kv.id) };
  if (revision !== undefined) h.revision = String(revision);
  h.raft_term = String(s.kv.member.status().term);
  return h;
}

describe('JSON gateway', () => {
  it('put and range: int64 as strings, bytes as base64, zero values left out', async () => {
    const put = await post('/v3/kv/put', { key: b64('foo'), value: b64('bar') });
    expect(put.status).toBe(200);
    expect(put.headers.get('content-type')).toBe('application/json');
    const rev = s.kv.mvcc.currentRevision;
    expect(put.json).toEqual({ header: header(rev) });
    const range = await post('/v3/kv/range', { key: b64('foo') });
    expect(range.json).toEqual({
      header: header(rev),
      kvs: [{ key: 'Zm9v', create_revision: String(rev), mod_revision: String(rev), version: '1', value: 'YmFy' }],
      count: '1',
    });
    const keysOnly = await post('/v3/kv/range', { key: b64('foo'), range_end: b64('fop'), keys_only: true });
    expect(keysOnly.json.kvs).toEqual([{ key: 'Zm9v', create_revision: String(rev), mod_revision: String(rev), version: '1' }]);
    expect((await post('/v3/kv/range', { key: b64('none') })).json).toEqual({ header: header(rev) });
  });

  it('deleterange with prev_kv, txn with enum names, compaction', async () => {
    await post('/v3/kv/put', { key: b64('d'), value: b64('v') });
    const del = await post('/v3/kv/deleterange', { key: b64('d'), prev_kv: true });
    const rev = s.kv.mvcc.currentRevision;
    expect(del.json).toEqual({
      header: header(rev),
      deleted: '1',
      prev_kvs: [{ key: b64('d'), create_revision: String(rev - 1), mod_revision: String(rev - 1), version: '1', value: b64('v') }],
    });
    const txn = await post('/v3/kv/txn', {
      compare: [{ key: b64('d'), target: 'VERSION', result: 'EQUAL', version: '0' }],
      success: [{ request_put: { key: b64('d'), value: b64('again') } }],
    });
    expect(txn.json).toEqual({ header: header(rev + 1), succeeded: true, responses: [{ response_put: { header: { revision: String(rev + 1) } } }] });
    expect((await post('/v3/kv/compaction', { revision: String(rev) })).json).toEqual({ header: header(rev + 1) });
  });

  it('errors: etcd\'s message and code, with grpc-gateway\'s HTTP status', async () => {
    const empty = await post('/v3/kv/range', { key: '' });
    expect(empty.status).toBe(400);
    expect(empty.json).toEqual({ error: 'etcdserver: key is not provided', message: 'etcdserver: key is not provided', code: 3 });
    const compacted = await post('/v3/kv/range', { key: b64('foo'), revision: '1' });
    expect(compacted.json.code).toBe(11);
    const notFound = await post('/v3/lease/revoke', { ID: '1' });
    expect(notFound.status).toBe(404);
    expect(notFound.json).toEqual({ error: 'etcdserver: requested lease not found', message: 'etcdserver: requested lease not found', code: 5 });
  });

  it('malformed requests get a 400 with a clear error, and the server keeps serving', async () => {
    const bad = await post('/v3/kv/range', '{bad json');
    expect(bad.status).toBe(400);
    expect(bad.json.code).toBe(3);
    expect(bad.json.error).toMatch(/^malformed JSON body: /);
    const wrongType = await post('/v3/kv/range', { key: b64('foo'), limit: 'abc' });
    expect(wrongType.status).toBe(400);
    expect(wrongType.json.error).toBe('request.limit: expected an integer, got "abc"');
    const overflow = await post('/v3/kv/range', '{"key":"Zm9v","revision":"99999999999999999999"}');
    expect(overflow.status).toBe(400);
    expect(overflow.json.error).toBe('request.revision: 99999999999999999999 does not fit in int64');
    const emptyOp = await post('/v3/kv/txn', { success: [{}] });
    expect(emptyOp.json).toEqual({ error: 'etcdserver: key not found', message: 'etcdserver: key not found', code: 3 });
    const unknown = await post('/v3/kv/put', { key: b64('k'), valu: b64('v') });
    expect(unknown.json.error).toBe('request: unknown field "valu"');
    expect((await fetch(base + '/v3/kv/nope', { method: 'POST', body: '{}' })).status).toBe(404);
    expect((await fetch(base + '/v3/kv/range')).status).toBe(405);
    expect((await post('/v3/kv/range', { key: b64('foo') })).status).toBe(200);
  });

  it('oversized requests: etcd\'s "request is too large" above 1.5 MiB, a 413 above the body limit', async () => {
    const large = await post('/v3/kv/put', { key: b64('big'), value: Buffer.alloc(1.6 * 1024 * 1024).toString('base64') });
    expect(large.status).toBe(400);
    expect(large.json.error).toBe('etcdserver: request is too large');
    const huge = await post('/v3/kv/put', { key: b64('big'), value: Buffer.alloc(4 * 1024 * 1024).toString('base64') });
    expect(huge.status).toBe(413);
    expect(huge.json.error).toBe('request body larger than 4194304 bytes');
    expect((await post('/v3/kv/range', { key: b64('foo') })).status).toBe(200);
  });

  it('lease grant, timetolive, revoke; int64 ids exact beyond 2^53', async () => {
    const id = '9007199254740993'; // 2^53 + 1
    const grant = await post('/v3/lease/grant', { TTL: '30', ID: id });
    expect(grant.json).toEqual({ header: header(s.kv.mvcc.currentRevision), ID: id, TTL: '30' });
    const ttl = await post('/v3/lease/timetolive', { ID: id, keys: true });
    expect(ttl.json.ID).toBe(id);
    expect(ttl.json.grantedTTL).toBe('30');
    expect(['29', '30']).toContain(ttl.json.TTL);
    expect((await post('/v3/lease/revoke', { ID: id })).status).toBe(200);
    expect((await post('/v3/lease/timetolive', { ID: id })).json).toEqual({ header: header(s.kv.mvcc.currentRevision), ID: id, TTL: '-1' });
  });

  it('maintenance status', async () => {
    const st = s.kv.member.status();
    const status = await post('/v3/maintenance/status', {});
    expect(status.json).toMatchObject({
      header: header(s.kv.mvcc.currentRevision),
      version: '3.4.23',
      leader: String(s.kv.id),
      raftTerm: String(st.term),
    });
    expect(Number(status.json.dbSize)).toBeGreaterThan(0);
    expect(Number(status.json.raftIndex)).toBeGreaterThan(0);
  });

  it('watch streams newline-delimited JSON results', async () => {
    const controller = new AbortController();
    const res = await fetch(base + '/v3/watch', {
      method: 'POST',
      body: JSON.stringify({ create_request: { key: b64('w1'), prev_kv: true } }),
      signal: controller.signal,
    });
    const lines: any[] = [];
    const reading = (async () => {
      const decoder = new TextDecoder();
      let partial = '';
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        const parts = (partial + decoder.decode(chunk)).split('\n');
        partial = parts.pop()!;
        lines.push(...parts.map((p) => JSON.parse(p)));
      }
    })().catch(() => {});
    await waitFor('created', () => lines.length === 1);
    expect(lines[0]).toEqual({ result: { header: header(s.kv.mvcc.currentRevision), created: true } });
    await post('/v3/kv/put', { key: b64('w1'), value: b64('x') });
    await post('/v3/kv/put', { key: b64('w1'), value: b64('y') });
    await post('/v3/kv/deleterange', { key: b64('w1') });
    await waitFor('three events', () => lines.length === 4);
    const rev = s.kv.mvcc.currentRevision;
    const x = { key: 'dzE=', create_revision: String(rev - 2), mod_revision: String(rev - 2), version: '1', value: 'eA==' };
    const y = { key: 'dzE=', create_revision: String(rev - 2), mod_revision: String(rev - 1), version: '2', value: 'eQ==' };
    expect(lines.slice(1)).toEqual([
      { result: { header: header(rev - 2), events: [{ kv: x }] } },
      { result: { header: header(rev - 1), events: [{ kv: y, prev_kv: x }] } },
      { result: { header: header(rev), events: [{ type: 'DELETE', kv: { key: 'dzE=', mod_revision: String(rev) }, prev_kv: y }] } },
    ]);
    controller.abort();
    await reading;
    await waitFor('the watcher to close', () => s.listener.api.watcherCount === 0);
  });

  it('watch reads further requests from the same streaming body: a second watch, then a cancel', async () => {
    const { request } = await import('node:http');
    const [host, port] = s.endpoint.split(':');
    const lines: any[] = [];
    const req = request({ host, port: Number(port), method: 'POST', path: '/v3/watch' });
    req.on('error', () => {});
    req.on('response', (res) => {
      let partial = '';
      res.on('data', (d: Buffer) => {
        const parts = (partial + d.toString()).split('\n');
        partial = parts.pop()!;
        lines.push(...parts.map((p) => JSON.parse(p).result));
      });
      res.on('error', () => {});
    });
    req.write(JSON.stringify({ create_request: { key: b64('s1') } }));
    await waitFor('the first watch', () => lines.length === 1);
    // Split mid-object on purpose: the gateway must reassemble it.
    const second = JSON.stringify({ create_request: { key: b64('s2'), watch_id: '5' } }) + '\n';
    req.write(second.slice(0, 10));
    await new Promise((r) => setTimeout(r, 20));
    req.write(second.slice(10));
    await waitFor('the second watch', () => lines.length === 2);
    expect(lines[1]).toMatchObject({ watch_id: '5', created: true });
    await post('/v3/kv/put', { key: b64('s2'), value: b64('v') });
    await waitFor('the event', () => lines.length === 3);
    expect(lines[2]).toMatchObject({ watch_id: '5', events: [{ kv: { key: b64('s2') } }] });
    req.write(JSON.stringify({ cancel_request: { watch_id: '5' } }));
    await waitFor('the cancel', () => lines.length === 4);
    expect(lines[3]).toMatchObject({ watch_id: '5', canceled: true });
    expect(s.listener.api.watcherCount).toBe(1);
    req.destroy();
    await waitFor('the watchers to close', () => s.listener.api.watcherCount === 0);
  });

  it('a malformed watch body gets a 400', async () => {
    const bad = await post('/v3/watch', '{"create_request": {"key": 5}}');
    expect(bad.status).toBe(400);
    expect(bad.json.error).toBe('request.create_request.key: expected base64 bytes, got 5');
    const truncated = await post('/v3/watch', '{"create_request": {');
    expect(truncated.json.error).toBe('malformed JSON body: unexpected end of input');
  });

  it('the JSON object splitter handles strings with braces, escapes and chunk boundaries', () => {
    const splitter = new JsonObjectSplitter();
    expect(splitter.push('{"a":"}{\\"x"')).toEqual([]);
    expect(splitter.push('}\n{"b":{"c":1}}{')).toEqual(['{"a":"}{\\"x"}', '{"b":{"c":1}}']);
    expect(splitter.incomplete).toBe(true);
    expect(splitter.push('}')).toEqual(['{}']);
    expect(() => new JsonObjectSplitter().push('x{}')).toThrow('unexpected "x" between JSON objects');
  });

  it('GET /version answers what etcd 3.4.23 answers', async () => {
    const res = await fetch(base + '/version');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(await res.text()).toBe('{"etcdserver":"3.4.23","etcdcluster":"3.4.0"}');
    expect((await fetch(base + '/version', { method: 'POST' })).status).toBe(405);
  });

  it('GET /health and /metrics', async () => {
    const health = await fetch(base + '/health');
    expect(health.status).toBe(200);
    expect(await health.text()).toBe('{"health":"true","reason":""}');
    const metrics = await (await fetch(base + '/metrics')).text();
    expect(metrics).toContain('etcd_server_has_leader 1\n');
    expect(metrics).toContain('etcd_server_is_leader 1\n');
    expect(metrics).toMatch(/^etcd_server_leader_changes_seen_total 1$/m);
    expect(metrics).toMatch(new RegExp(`^meshkv_raft_term ${s.kv.member.status().term}$`, 'm'));
    expect(metrics).toMatch(/^etcd_server_proposals_committed_total \d+$/m);
    expect(metrics).toMatch(/^etcd_debugging_mvcc_keys_total \d+$/m);
    expect(metrics).toMatch(/^etcd_debugging_mvcc_watcher_total 0$/m);
    // The member has synced and applied entries by now: both histograms have observations,
    // and the +Inf bucket holds every one of them.
    for (const name of ['etcd_disk_wal_fsync_duration_seconds', 'meshkv_server_apply_duration_seconds']) {
      const count = Number(new RegExp(`^${name}_count (\\d+)$`, 'm').exec(metrics)?.[1]);
      expect(count).toBeGreaterThan(0);
      expect(metrics).toMatch(new RegExp(`^${name}_bucket\\{le="\\+Inf"\\} ${count}$`, 'm'));
      expect(metrics).toMatch(new RegExp(`^${name}_bucket\\{le="0.001"\\} \\d+$`, 'm'));
    }
  });
});
