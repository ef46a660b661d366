// Measures storage engines for the state-machine backend (docs/architecture.md, "Why LMDB").
// Not a dependency of the project: run in a scratch directory after
// `npm i --no-save lmdb better-sqlite3@12`, then `node bench/backend-engines.cjs lmdb|sqlite [records]`.
const { open } = require('lmdb');
const Database = require('better-sqlite3');
const fs = require('fs');
const N = +process.argv[3] || 1_000_000, BATCH = 1000, VALUE = 300;
const which = process.argv[2];
const dir = require('path').join(require('os').tmpdir(), `meshkv-engine-${which}`); fs.rmSync(dir, { recursive: true, force: true }); fs.mkdirSync(dir);
function key(i) { const b = Buffer.alloc(17); b.writeBigUInt64BE(BigInt(i), 0); b[8] = 95; b.writeBigUInt64BE(0n, 9); return b; }
const val = Buffer.alloc(VALUE, 7);
let t = performance.now();
const lap = (what, n) => { const now = performance.now(); console.log(`${which} ${what}: ${((now - t)).toFixed(0)} ms${n ? `, ${(n / ((now - t) / 1000)).toFixed(0)}/s` : ''}`); t = now; };
if (which === 'lmdb') {
  const env = open({ path: dir, keyEncoding: 'binary', encoding: 'binary', mapSize: 8 * 2 ** 30, noMemInit: true });
  const db = env.openDB('key', { keyEncoding: 'binary', encoding: 'binary' });
  const meta = env.openDB('meta', { keyEncoding: 'binary', encoding: 'binary' });
  (async () => {
    for (let b = 0; b < N / BATCH; b++) {
      env.transactionSync(() => { for (let i = b * BATCH; i < (b + 1) * BATCH; i++) db.putSync(key(i), val); meta.putSync(Buffer.from('consistent_index'), key(b)); });
    }
    lap('write sync-commit txns of 1000', N);
    for (let i = 0; i < 200000; i++) db.getBinary(key((i * 7919) % N));
    lap('random get', 200000);
    let n = 0; for (const { value } of db.getRange({ start: key(0) })) n += value.length;
    lap('full scan', N);
    console.log('file MB', (fs.statSync(dir + '/data.mdb').size / 2 ** 20).toFixed(0), 'rss MB', (process.memoryUsage().rss / 2 ** 20).toFixed(0));
  })();
} else {
  const db = new Database(dir + '/db.sqlite');
  db.pragma('journal_mode = WAL'); db.pragma('synchronous = FULL');
  db.exec('create table key (k blob primary key, v blob) without rowid; create table meta (k text primary key, v blob)');
  const put = db.prepare('insert or replace into key values (?, ?)'), pm = db.prepare('insert or replace into meta values (?, ?)');
  const get = db.prepare('select v from key where k = ?').pluck();
  const tx = db.transaction((b) => { for (let i = b * BATCH; i < (b + 1) * BATCH; i++) put.run(key(i), val); pm.run('consistent_index', key(b)); });
  for (let b = 0; b < N / BATCH; b++) tx(b);
  lap('write sync-commit txns of 1000', N);
  for (let i = 0; i < 200000; i++) get.get(key((i * 7919) % N));
  lap('random get', 200000);
  let n = 0; for (const v of db.prepare('select v from key order by k').pluck().iterate()) n += v.length;
  lap('full scan', N);
  console.log('file MB', (fs.statSync(dir + '/db.sqlite').size / 2 ** 20).toFixed(0), 'rss MB', (process.memoryUsage().rss / 2 ** 20).toFixed(0));
}
