#!/usr/bin/env node
// request-entry-ab.mjs A_ROOT B_ROOT [ROUNDS] — CPU time of a KV request's way from the gRPC wire
// into a replicated Raft entry, in two builds (each a checkout with dist/ built), alternated A, B,
// A, B… in fresh processes so both see the same machine load. The requests are the ones
// ../shared/bench-etcd sends: put-c64's PutRequest and txn-cas's compare-and-swap TxnRequest
// (compare mod_revision, put on success, range on failure; 16-byte key, 256-byte value). Per
// request: the wire decode (adapters/etcd-api/proto-codec.ts, on the member the client talks
// to), the entry's encode (src/codec/request.ts, by the proposer) and its decode (every member
// applies it). Prints µs of process CPU per call (the best of 3 passes of 100,000 calls), the
// entry's bytes, and the sum over a 3-member cluster (wire decode + encode + 3 decodes).
import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { abMain, cpuPerCall, distUrl } from './lib/ab-children.mjs';

const here = dirname(fileURLToPath(import.meta.url));

async function measure(root) {
  const url = (p) => distUrl(root, p);
  const proto = await import(url('adapters/etcd-api/proto-codec.js'));
  const { encodeRequest, decodeRequest } = await import(url('src/codec/request.js'));
  const pb = await import(pathToFileURL(resolve(here, '../../shared/bench-etcd/lib/pb.mjs')).href);
  const key = Buffer.from('bench/c/0000042!');
  const value = Buffer.alloc(256, 7);
  const kinds = {
    put: { wire: pb.encPut(key, value), decodeWire: proto.decodePutRequest },
    'txn-cas': { wire: pb.encTxnCasMod(key, 123456, value), decodeWire: proto.decodeTxnRequest },
  };
  const out = {};
  for (const [kind, { wire, decodeWire }] of Object.entries(kinds)) {
    const req = { kind: kind === 'put' ? 'put' : 'txn', request: decodeWire(wire) };
    const entry = encodeRequest(req);
    const cases = { wire: () => decodeWire(wire), encode: () => encodeRequest(req), decode: () => decodeRequest(entry) };
    const r = { bytes: entry.length };
    for (const [name, fn] of Object.entries(cases)) r[name] = cpuPerCall(fn);
    r.cluster = r.wire + r.encode + 3 * r.decode;
    out[kind] = r;
  }
  return out;
}

await abMain(fileURLToPath(import.meta.url), 'request-entry-ab.mjs A_ROOT B_ROOT [ROUNDS]', measure, (res) =>
  Object.entries(res)
    .map(([kind, x]) => `${kind}: wire ${x.wire.toFixed(2)}, encode ${x.encode.toFixed(2)}, decode ${x.decode.toFixed(2)}, cluster ${x.cluster.toFixed(1)} µs, entry ${x.bytes} B`)
    .join('; '),
);
