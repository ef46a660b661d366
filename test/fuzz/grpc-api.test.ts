// Fuzzing the etcd v3 gRPC API: random bytes and mutated valid requests sent as raw protobuf to
// every KV, Watch, Lease, Cluster and Maintenance method, interleaved with known valid writes.
// Every answer must be a gRPC status with a clear message (no stack), a call that fails must
// change nothing, a call that succeeds must have been a decodable request, every valid write
// must land exactly, and the member must keep serving.

import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packageDefinition } from '../../adapters/etcd-api/proto.ts';
import { serve, type Served } from '../etcd-api/harness.ts';
import { fuzzParams, fuzzTimeoutMs } from './fuzz-config.ts';
import { mutateAll, mutationArb } from './mutations.ts';

type Wire = Record<string, unknown>;

interface Method {
  name: string;
  def: grpc.MethodDefinition<Wire, Wire>;
  /** Valid requests whose encodings are mutated. */
  seeds: Wire[];
}

const services = ['KV', 'Watch', 'Lease', 'Cluster', 'Maintenance'];
const b = (text: string) => Buffer.from(text);

/** Valid requests per method; keys under junk/ so that valid writes under valid/ stay apart. */
function seedsOf(name: string, memberId: string): Wire[] {
  switch (name) {
    case 'Range':
      return [{ key: b('junk/a') }, { key: b('junk/'), range_end: b('junk0'), limit: 3, keys_only: true }];
    case 'Put':
      return [{ key: b('junk/a'), value: b('x') }, { key: b('junk/b'), value: b('y'), prev_kv: true }];
    case 'DeleteRange':
      return [{ key: b('junk/a') }, { key: b('junk/'), range_end: b('junk0'), prev_kv: true }];
    case 'Txn':
      return [
        {
          compare: [{ key: b('junk/a'), target: 3, result: 0, value: b('x') }],
          success: [{ request_put: { key: b('junk/c'), value: b('z') } }],
          failure: [{ request_range: { key: b('junk/a') } }, { request_delete_range: { key: b('junk/c') } }],
        },
      ];
    case 'Compact':
      return [{ revision: '1' }];
    case 'Watch':
      return [{ create_request: { key: b('junk/'), range_end: b('junk0'), start_revision: '1' } }, { progress_request: {} }];
    case 'LeaseGrant':
      return [{ TTL: '600', ID: '0' }];
    case 'LeaseRevoke':
    case 'LeaseKeepAlive':
      return [{ ID: '7' }];
    case 'LeaseTimeToLive':
      return [{ ID: '7', keys: true }];
    case 'MemberAdd':
      return [{ peerURLs: ['http://127.0.0.1:2380'] }];
    case 'MemberRemove':
    case 'MemberPromote':
      return [{ ID: '5' }];
    case 'MemberUpdate':
      return [{ ID: memberId, peerURLs: ['http://127.0.0.1:2380'] }];
    case 'Alarm':
      return [{ action: 0, memberID: memberId, alarm: 1 }];
    case 'HashKV':
      return [{ revision: '0' }];
    case 'MoveLeader':
      return [{ targetID: '5' }];
    default:
      return [{}];
  }
}

interface Outcome {
  /** gRPC status code; 0 is OK. */
  code: number;
  details: string;
  responses: Buffer[];
}

const identity = (x: Buffer) => x;
/** The slowest call: a snapshot stream, or a watch that waits for its end. */
const callTimeoutMs = 5000;

function call(client: grpc.Client, m: Method, requests: Buffer[]): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${m.name}: no answer within ${callTimeoutMs} ms`)), callTimeoutMs);
    const done = (o: Outcome) => {
      clearTimeout(timer);
      resolve(o);
    };
    const { path, requestStream, responseStream } = m.def;
    if (!requestStream && !responseStream) {
      client.makeUnaryRequest(path, identity, identity, requests[0], (err, value) =>
        done(err ? { code: err.code, details: err.details, responses: [] } : { code: 0, details: '', responses: [value!] }),
      );
      return;
    }
    const responses: Buffer[] = [];
    const stream = requestStream ? client.makeBidiStreamRequest(path, identity, identity) : client.makeServerStreamRequest(path, identity, identity, requests[0]);
    stream.on('data', (r: Buffer) => responses.push(r));
    stream.on('error', () => {});
    stream.on('status', (s: grpc.StatusObject) => done({ code: s.code, details: s.details, responses }));
    if (requestStream) {
      const duplex = stream as grpc.ClientDuplexStream<Buffer, Buffer>;
      for (const r of requests) duplex.write(r);
      duplex.end();
    }
  });
}

/** What a failed call must leave alone: revision, compaction, every record (hashKV) and the lease ids. */
function state(s: Served): unknown {
  const m = s.kv.mvcc;
  return {
    revision: m.currentRevision,
    compactRevision: m.compactRevision,
    hash: m.hashKV(0).hash,
    leases: m.leaseLeases().leases.map((l) => String(l.ID)),
  };
}

/** gRPC's own statuses for bytes that are not a request, and etcd's for requests it refuses. */
const refusalCodes = new Set([
  grpc.status.INVALID_ARGUMENT,
  grpc.status.NOT_FOUND,
  grpc.status.FAILED_PRECONDITION,
  grpc.status.OUT_OF_RANGE,
  grpc.status.RESOURCE_EXHAUSTED,
  grpc.status.INTERNAL,
]);

describe('fuzz: etcd gRPC API', () => {
  let s: Served;
  let client: grpc.Client;
  let methods: Method[];
  const put = () => methods.find((m) => m.name === 'Put')!;

  beforeAll(async () => {
    // Long leases: no key may expire between two looks at the store.
    s = await serve({ minTtlSeconds: 3600 });
    client = new grpc.Client(s.endpoint, grpc.credentials.createInsecure(), { 'grpc.max_send_message_length': -1, 'grpc.max_receive_message_length': -1 });
    methods = services.flatMap((service) =>
      Object.entries(packageDefinition[`etcdserverpb.${service}`] as grpc.ServiceDefinition).map(([name, def]) => ({
        name,
        def: def as grpc.MethodDefinition<Wire, Wire>,
        seeds: seedsOf(name, String(s.kv.id)),
      })),
    );
  });

  afterAll(async () => {
    client?.close();
    await s?.stop();
  });

  it('covers every method of the five services', () => {
    expect(methods.map((m) => m.name).sort()).toEqual(
      [
        'Range', 'Put', 'DeleteRange', 'Txn', 'Compact',
        'Watch',
        'LeaseGrant', 'LeaseRevoke', 'LeaseKeepAlive', 'LeaseTimeToLive', 'LeaseLeases',
        'MemberAdd', 'MemberRemove', 'MemberUpdate', 'MemberList', 'MemberPromote',
        'Alarm', 'Status', 'Defragment', 'Hash', 'HashKV', 'Snapshot', 'MoveLeader',
      ].sort(),
    );
  });

  /** A garbage call: checks the answer, and that a failure changed nothing. Returns whether it succeeded. */
  async function garbage(m: Method, requests: Buffer[]): Promise<boolean> {
    const before = state(s);
    const o = await call(client, m, requests);
    if (o.code === grpc.status.OK) {
      for (const r of requests) expect(() => m.def.requestDeserialize(r), `${m.name} accepted bytes that are not a request`).not.toThrow();
      for (const r of o.responses) expect(() => m.def.responseDeserialize(r)).not.toThrow();
      return true;
    }
    expect(refusalCodes, `${m.name}: status ${grpc.status[o.code]} "${o.details}"`).toContain(o.code);
    expect(o.details).toMatch(/\S/);
    expect(o.details, 'a stack trace in an answer').not.toMatch(/\n\s+at /);
    if (o.code === grpc.status.INTERNAL) expect(o.details).toMatch(/^grpc: error unmarshalling request: /);
    expect(state(s), `${m.name} failed with "${o.details}" but changed the store`).toEqual(before);
    return false;
  }

  let validWrites = 0;
  /** A known valid write lands exactly: one revision, the value readable. */
  async function validWrite(value: Uint8Array): Promise<void> {
    const key = `valid/${validWrites++}`;
    const revision = s.kv.mvcc.currentRevision;
    const o = await call(client, put(), [put().def.requestSerialize({ key: b(key), value: Buffer.from(value) })]);
    expect([o.code, o.details]).toEqual([grpc.status.OK, '']);
    expect(s.kv.mvcc.currentRevision).toBe(revision + 1);
    const got = s.kv.mvcc.range({ key: b(key) }).kvs;
    expect(got.map((kv) => [Buffer.from(kv.value).toString('hex'), kv.modRevision])).toEqual([[Buffer.from(value).toString('hex'), revision + 1]]);
  }

  const step = fc.oneof(
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('valid' as const), value: fc.uint8Array({ maxLength: 64 }) }) },
    {
      weight: 4,
      arbitrary: fc.record({
        kind: fc.constant('garbage' as const),
        method: fc.nat(),
        seed: fc.nat(),
        // Random bytes, or a valid request with damage.
        random: fc.option(fc.uint8Array({ maxLength: 96 }), { nil: null, freq: 3 }),
        mutations: fc.array(mutationArb, { minLength: 1, maxLength: 3 }),
        // Streams get several requests.
        copies: fc.integer({ min: 1, max: 3 }),
      }),
    },
  );
  const runs = 60;

  it(
    'garbage gets a clear status and changes nothing; valid writes in between land exactly; the member keeps serving',
    async () => {
      const counts = { accepted: 0, refused: 0 };
      await fc.assert(
        fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 12 }), async (steps) => {
          for (const st of steps) {
            if (st.kind === 'valid') {
              await validWrite(st.value);
              continue;
            }
            const m = methods[st.method % methods.length];
            const seed = m.seeds[st.seed % m.seeds.length];
            const bytes = st.random ?? mutateAll(m.def.requestSerialize(seed), st.mutations);
            const ok = await garbage(m, Array.from({ length: m.def.requestStream ? st.copies : 1 }, () => Buffer.from(bytes)));
            counts[ok ? 'accepted' : 'refused']++;
          }
          s.kv.mvcc.checkValid();
          await validWrite(new Uint8Array([1]));
        }),
        fuzzParams(runs),
      );
      expect(counts.refused).toBeGreaterThan(0);
    },
    fuzzTimeoutMs(runs, 300),
  );

  it("oversize and invalid requests get etcd's errors and change nothing", async () => {
    const m = (name: string) => methods.find((x) => x.name === name)!;
    const cases: Array<[string, Wire, number, string]> = [
      ['Put', { key: b('big'), value: Buffer.alloc(1.5 * 1024 * 1024 + 1) }, grpc.status.INVALID_ARGUMENT, 'etcdserver: request is too large'],
      [
        'Txn',
        { success: Array.from({ length: 129 }, (_, i) => ({ request_put: { key: b(`t${i}`), value: b('v') } })) },
        grpc.status.INVALID_ARGUMENT,
        'etcdserver: too many operations in txn request',
      ],
      [
        'Txn',
        { success: [{ request_put: { key: b('d'), value: b('1') } }, { request_put: { key: b('d'), value: b('2') } }] },
        grpc.status.INVALID_ARGUMENT,
        'etcdserver: duplicate key given in txn request',
      ],
      ['Range', { key: Buffer.alloc(0) }, grpc.status.INVALID_ARGUMENT, 'etcdserver: key is not provided'],
      ['Range', { key: b('a'), revision: '1000000' }, grpc.status.OUT_OF_RANGE, 'etcdserver: mvcc: required revision is a future revision'],
      ['DeleteRange', { key: Buffer.alloc(0) }, grpc.status.INVALID_ARGUMENT, 'etcdserver: key is not provided'],
      ['Compact', { revision: '1000000' }, grpc.status.OUT_OF_RANGE, 'etcdserver: mvcc: required revision is a future revision'],
      ['LeaseRevoke', { ID: '123456789' }, grpc.status.NOT_FOUND, 'etcdserver: requested lease not found'],
    ];
    for (const [name, request, code, details] of cases) {
      const before = state(s);
      const o = await call(client, m(name), [m(name).def.requestSerialize(request)]);
      expect([name, o.code, o.details]).toEqual([name, code, details]);
      expect(state(s)).toEqual(before);
    }
    await validWrite(new Uint8Array([2]));
  });
});
