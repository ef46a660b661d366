// What a V8 heap snapshot holds, by kind of object: count and self size of each (type, name)
// pair, largest first, and the totals. For issue 18's question of how many objects a full GC
// must visit at a given key count (a snapshot from `node --heapsnapshot-signal=SIGUSR2` or
// v8.writeHeapSnapshot()).
//   node bench/heap-census.mjs FILE.heapsnapshot [rows=25]

import { readFileSync } from 'node:fs';

const [file, rowsArg] = process.argv.slice(2);
if (file === undefined) throw new Error('usage: node bench/heap-census.mjs FILE.heapsnapshot [rows=25]');
const rows = Number(rowsArg ?? 25);
const snapshot = JSON.parse(readFileSync(file, 'utf8'));
const meta = snapshot.snapshot.meta;
const fields = meta.node_fields;
const stride = fields.length;
const typeAt = fields.indexOf('type');
const nameAt = fields.indexOf('name');
const sizeAt = fields.indexOf('self_size');
const typeNames = meta.node_types[typeAt];
const { nodes, strings } = snapshot;

/** Strings are grouped by type only: their names are their contents. */
const byNameTypes = new Set(['object', 'closure', 'native', 'hidden', 'code']);
const groups = new Map();
let count = 0;
let bytes = 0;
for (let n = 0; n < nodes.length; n += stride) {
  const type = typeNames[nodes[n + typeAt]];
  const name = byNameTypes.has(type) ? strings[nodes[n + nameAt]] : '';
  const label = `${type}${name === '' ? '' : ` ${name.slice(0, 60)}`}`;
  const group = groups.get(label) ?? { count: 0, bytes: 0 };
  group.count++;
  group.bytes += nodes[n + sizeAt];
  groups.set(label, group);
  count++;
  bytes += nodes[n + sizeAt];
}
const mb = (b) => (b / 2 ** 20).toFixed(1);
console.log(`${file}: ${count} objects, ${mb(bytes)} MB self size`);
console.log('| kind | objects | share | MB |');
console.log('|---|---:|---:|---:|');
for (const [label, g] of [...groups].sort((a, b) => b[1].count - a[1].count).slice(0, rows)) {
  console.log(`| ${label.replaceAll('|', '\\|')} | ${g.count} | ${((100 * g.count) / count).toFixed(1)} % | ${mb(g.bytes)} |`);
}
