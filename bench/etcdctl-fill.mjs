// Fills an etcd-compatible endpoint with keys through etcdctl itself (issue 16 asks for memory
// measured under etcdctl-driven loads): `etcdctl txn` runs of `batch` puts each (etcd's default
// --max-txn-ops is 128), `procs` of them at a time. Keys are `<prefix><10-digit number>`,
// values `valueBytes` of 'v'.
//
//   node bench/etcdctl-fill.mjs ENDPOINT FROM TO [prefix=bench/fill/] [valueBytes=256] [batch=128] [procs=4]
//
// Prints the keys/s it reached. Exits non-zero on the first failed etcdctl run.
import { spawn } from 'node:child_process';

const [endpoint, fromText, toText, prefix = 'bench/fill/', valueText = '256', batchText = '128', procsText = '4'] = process.argv.slice(2);
if (endpoint === undefined || toText === undefined) {
  process.stderr.write('usage: node bench/etcdctl-fill.mjs ENDPOINT FROM TO [prefix] [valueBytes] [batch] [procs]\n');
  process.exit(2);
}
const from = Number(fromText);
const to = Number(toText);
const batch = Number(batchText);
const procs = Number(procsText);
const value = 'v'.repeat(Number(valueText));

function txn(start, end) {
  let input = '\n';
  for (let i = start; i < end; i++) input += `put ${prefix}${String(i).padStart(10, '0')} ${value}\n`;
  input += '\n\n';
  return new Promise((resolve, reject) => {
    const child = spawn('etcdctl', [`--endpoints=${endpoint}`, '--command-timeout=60s', 'txn'], {
      env: { ...process.env, ETCDCTL_API: '3' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 && out.startsWith('SUCCESS') ? resolve() : reject(new Error(`etcdctl txn [${start}, ${end}) exited ${code}: ${out.slice(0, 300)}`))));
    child.stdin.end(input);
  });
}

const started = performance.now();
let next = from;
async function worker() {
  while (next < to) {
    const start = next;
    next = Math.min(to, next + batch);
    await txn(start, next);
  }
}
await Promise.all(Array.from({ length: procs }, worker));
const seconds = (performance.now() - started) / 1000;
console.log(`filled ${to - from} keys in ${seconds.toFixed(1)} s (${Math.round((to - from) / seconds)} keys/s)`);
