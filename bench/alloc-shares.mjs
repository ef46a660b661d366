#!/usr/bin/env node
// alloc-shares.mjs FILE.heapprofile [OPS] [TOP] — where a sampled allocation profile's bytes
// (bench/alloc-sample.mjs) were allocated: by allocating function (self), and by the innermost
// frame in this repository's code (what our code asked for, library internals included), each
// with its share and, given OPS (operations in the sampled window), bytes per operation.
import { readFileSync } from 'node:fs';

const [file, opsText, topText = '25'] = process.argv.slice(2);
if (file === undefined) {
  process.stderr.write('usage: alloc-shares.mjs FILE.heapprofile [OPS] [TOP]\n');
  process.exit(2);
}
const profile = JSON.parse(readFileSync(file, 'utf8'));
const ops = opsText === undefined ? 0 : Number(opsText);
const top = Number(topText);
const ours = /\/(src|adapters)\//;

const bySelf = new Map();
const byOurs = new Map();
let total = 0;
const frameName = (cf) => `${cf.functionName || '(anonymous)'} ${cf.url.replace(/^.*\/(src|adapters|node_modules)\//, '$1/')}:${cf.lineNumber + 1}`;
const add = (map, key, bytes) => map.set(key, (map.get(key) ?? 0) + bytes);
// Sample sizes are per node (selfSize already sums that node's samples).
const walk = (node, ourFrame) => {
  const cf = node.callFrame;
  const here = ours.test(cf.url) && !cf.url.includes('node_modules') ? frameName(cf) : ourFrame;
  if (node.selfSize > 0) {
    total += node.selfSize;
    add(bySelf, frameName(cf), node.selfSize);
    add(byOurs, here ?? '(no frame of ours)', node.selfSize);
  }
  for (const child of node.children) walk(child, here);
};
walk(profile.head, undefined);

const print = (title, map) => {
  console.log(`\n${title}`);
  console.log(`| bytes | share |${ops > 0 ? ' B/op |' : ''} where |`);
  console.log(`|---:|---:|${ops > 0 ? '---:|' : ''}---|`);
  for (const [name, bytes] of [...map].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`| ${bytes} | ${((100 * bytes) / total).toFixed(1)} % |${ops > 0 ? ` ${(bytes / ops).toFixed(0)} |` : ''} ${name} |`);
  }
};
console.log(`sampled ${(total / 2 ** 20).toFixed(1)} MiB${ops > 0 ? `, ${(total / ops).toFixed(0)} B per op over ${ops} ops` : ''}`);
print('By allocating function (self)', bySelf);
print('By innermost frame in src/ or adapters/', byOurs);
