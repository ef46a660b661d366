// src/mvcc/btree.ts against sorted-btree (which it replaced), on the key index's operations,
// interleaved in one process so both see the same load. Prints the median CPU nanoseconds per
// operation over the rounds.
//   SORTED_BTREE=/work/main/node_modules/sorted-btree/b+tree.js npx tsx bench/btree-ab.ts [keys] [rounds]
// (sorted-btree is no longer a dependency: point SORTED_BTREE at any copy of 2.1.0.)

import { createRequire } from 'node:module';
import { BTree } from '../src/mvcc/btree.ts';
import { compareKeyStrings } from '../src/mvcc/bytes.ts';


interface Tree {
  set(k: string, v: number): unknown;
  get(k: string): number | undefined;
  delete(k: string): unknown;
  getPairOrNextHigher(k: string): [string, number] | undefined;
  forRange(low: string, high: string, includeHigh: boolean, f: (k: string, v: number) => unknown): unknown;
  forEachPair(f: (k: string, v: number) => unknown): unknown;
  clone(): Tree;
}
type Make = () => Tree;

const path = process.env.SORTED_BTREE;
if (!path) throw new Error('set SORTED_BTREE to sorted-btree/b+tree.js');
const SortedBTree = (createRequire(import.meta.url)(path) as { default: new (e: undefined, c: typeof compareKeyStrings, n: number) => Tree }).default;
const impls: Record<string, Make> = {
  'sorted-btree': () => new SortedBTree(undefined, compareKeyStrings, 32),
  'mvcc/btree': () => new BTree<string, number>(undefined, compareKeyStrings, 32) as unknown as Tree,
};

const keys = Number(process.argv[2] ?? 200_000);
const rounds = Number(process.argv[3] ?? 5);
const ascending = Array.from({ length: keys }, (_, i) => `key/${i.toString().padStart(8, '0')}`);
// A fixed shuffle (mulberry32), the same for both trees.
let state = 12345;
const rand = (): number => {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = Math.imul(state ^ (state >>> 15), state | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const shuffled = [...ascending];
for (let i = shuffled.length - 1; i > 0; i--) {
  const j = Math.floor(rand() * (i + 1));
  [shuffled[i], shuffled[j]] = [shuffled[j], shuffled[i]];
}

const samples = new Map<string, number[]>();
function cpu(impl: string, op: string, ops: number, body: () => void): void {
  const t0 = process.cpuUsage();
  body();
  const used = process.cpuUsage(t0);
  const key = `${op}\t${impl}`;
  if (!samples.has(key)) samples.set(key, []);
  samples.get(key)!.push(((used.user + used.system) * 1000) / ops);
}

let sink = 0;
for (let round = 0; round < rounds; round++) {
  const order = round % 2 === 0 ? Object.keys(impls) : Object.keys(impls).reverse();
  for (const name of order) {
    const make = impls[name];
    const asc = make();
    cpu(name, 'set, ascending keys', keys, () => {
      for (let i = 0; i < keys; i++) asc.set(ascending[i], i);
    });
    const rnd = make();
    cpu(name, 'set, shuffled keys', keys, () => {
      for (let i = 0; i < keys; i++) rnd.set(shuffled[i], i);
    });
    cpu(name, 'get, shuffled', keys, () => {
      for (let i = 0; i < keys; i++) sink += rnd.get(shuffled[i])!;
    });
    cpu(name, 'getPairOrNextHigher', keys, () => {
      for (let i = 0; i < keys; i++) sink += rnd.getPairOrNextHigher(shuffled[i])![1];
    });
    const scans = Math.floor(keys / 5);
    cpu(name, 'forRange, 100 keys (per key)', scans * 100, () => {
      for (let i = 0; i < scans; i++) {
        const start = (i * 7919) % (keys - 100);
        rnd.forRange(ascending[start], ascending[start + 100], false, (_k, v) => void (sink += v));
      }
    });
    cpu(name, 'forEachPair (per key)', keys, () => {
      rnd.forEachPair((_k, v) => void (sink += v));
    });
    cpu(name, 'clone + 1000 sets (per set)', 1000, () => {
      const c = rnd.clone();
      for (let i = 0; i < 1000; i++) c.set(shuffled[i], -i);
    });
    cpu(name, 'delete, shuffled', keys, () => {
      for (let i = 0; i < keys; i++) rnd.delete(shuffled[i]);
    });
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(`${keys} keys, ${rounds} rounds interleaved; median CPU ns per operation (sink ${sink % 10})`);
console.log('| operation | sorted-btree | mvcc/btree | ratio |');
console.log('|---|---:|---:|---:|');
const ops = [...new Set([...samples.keys()].map((k) => k.split('\t')[0]))];
for (const op of ops) {
  const a = median(samples.get(`${op}\tsorted-btree`)!);
  const b = median(samples.get(`${op}\tmvcc/btree`)!);
  console.log(`| ${op} | ${a.toFixed(0)} | ${b.toFixed(0)} | ${(b / a).toFixed(2)} |`);
}
