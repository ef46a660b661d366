// Fills an etcd-compatible endpoint with keys fast: the TxnRequest `etcdctl txn` sends (no
// compares, `batch` puts; etcd's default --max-txn-ops is 128), but over the bench-etcd
// harness's HTTP/2 client with `inflight` requests outstanding, since one etcdctl process per
// txn reaches only ~700 keys/s on this loaded 2-core machine (bench/etcdctl-fill.mjs is that path).
// Keys are `<prefix><10-digit number>`, values `valueBytes` of 'v'.
//
//   node bench/txn-fill.mjs HARNESS_DIR ENDPOINT FROM TO [prefix=bench/fill/] [valueBytes=256] [batch=128] [inflight=8]
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [harness, endpoint, fromText, toText, prefix = 'bench/fill/', valueText = '256', batchText = '128', inflightText = '8'] = process.argv.slice(2);
if (harness === undefined || toText === undefined) {
  process.stderr.write('usage: node bench/txn-fill.mjs HARNESS_DIR ENDPOINT FROM TO [prefix] [valueBytes] [batch] [inflight]\n');
  process.exit(2);
}
const { Conn } = await import(pathToFileURL(join(harness, 'lib/client.mjs')).href);
const { encode, encPut } = await import(pathToFileURL(join(harness, 'lib/pb.mjs')).href);
const from = Number(fromText);
const to = Number(toText);
const batch = Number(batchText);
const inflight = Number(inflightText);
const value = Buffer.alloc(Number(valueText), 'v');

// TxnRequest { repeated RequestOp success = 2 }, RequestOp { PutRequest request_put = 2 }.
function txn(start, end) {
  const ops = [];
  for (let i = start; i < end; i++) ops.push([2, 'b', encode([[2, 'b', encPut(`${prefix}${String(i).padStart(10, '0')}`, value)]])]);
  return encode(ops);
}

const conn = new Conn(endpoint, 'h2');
await conn.ready(10_000);
const started = performance.now();
let next = from;
async function worker() {
  while (next < to) {
    const start = next;
    next = Math.min(to, next + batch);
    await new Promise((resolve, reject) =>
      conn.unaryRaw('/etcdserverpb.KV/Txn', txn(start, next), (err) => (err ? reject(new Error(`txn [${start}, ${next}): ${err.message}`)) : resolve())),
    );
  }
}
await Promise.all(Array.from({ length: inflight }, worker));
conn.close();
const seconds = (performance.now() - started) / 1000;
console.log(`filled ${to - from} keys in ${seconds.toFixed(1)} s (${Math.round((to - from) / seconds)} keys/s)`);
