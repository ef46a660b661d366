// The B+tree against a naive sorted-array model under a seeded PRNG: random sets, deletes,
// range walks and clones, with small nodes so that splits, merges and root changes happen
// often. Every clone is then changed on its own, and each tree must still read as its model.

import { describe, expect, it } from 'vitest';
import { BTree } from '../../src/mvcc/btree.ts';
import { Prng } from './prng.ts';

type Model = Map<string, number>;

function sortedPairs(model: Model): [string, number][] {
  return [...model].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

function pairsOf(tree: BTree<string, number>): [string, number][] {
  const pairs: [string, number][] = [];
  tree.forEachPair((k, v) => {
    pairs.push([k, v]);
  });
  return pairs;
}

function expectSame(tree: BTree<string, number>, model: Model, seed: number): void {
  const pairs = sortedPairs(model);
  expect(pairsOf(tree), `seed ${seed}`).toEqual(pairs);
  expect(tree.size, `seed ${seed}`).toBe(model.size);
  expect(tree.maxKey(), `seed ${seed}`).toBe(pairs.at(-1)?.[0]);
}

const keyOf = (rng: Prng): string => `k${rng.int(0, 400).toString(36)}`;

describe('BTree', () => {
  it.each([1, 2, 3, 4, 5, 6, 7, 8])('reads as a sorted map through sets, deletes, range walks and clones (seed %i)', (seed) => {
    const rng = new Prng(seed);
    const trees: { tree: BTree<string, number>; model: Model }[] = [{ tree: new BTree<string, number>(undefined, undefined, 4 + (seed % 3)), model: new Map() }];
    for (let step = 0; step < 4000; step++) {
      const t = rng.pick(trees);
      const key = keyOf(rng);
      const roll = rng.next();
      if (roll < 0.45) {
        const value = rng.int(0, 1e6);
        expect(t.tree.set(key, value), `seed ${seed} step ${step}`).toBe(!t.model.has(key));
        t.model.set(key, value);
      } else if (roll < 0.8) {
        expect(t.tree.delete(key), `seed ${seed} step ${step}`).toBe(t.model.delete(key));
      } else if (roll < 0.9) {
        expect(t.tree.get(key)).toBe(t.model.get(key));
        const next = sortedPairs(t.model).find(([k]) => k >= key);
        expect(t.tree.getPairOrNextHigher(key)).toEqual(next);
      } else if (roll < 0.97) {
        const [low, high] = [key, keyOf(rng)].sort();
        const includeHigh = rng.chance(0.5);
        const want = sortedPairs(t.model).filter(([k]) => k >= low && (k < high || (includeHigh && k === high)));
        const seen: [string, number][] = [];
        const visited = t.tree.forRange(low, high, includeHigh, (k, v) => {
          seen.push([k, v]);
        });
        expect(seen, `seed ${seed} step ${step}`).toEqual(want);
        expect(visited).toBe(want.length);
        if (want.length > 1) {
          // A visitor's break ends the walk and is what the walk returns.
          const stopAt = rng.int(0, want.length - 1);
          const walked: string[] = [];
          const result = t.tree.forRange(low, high, includeHigh, (k, _v, counter) => (walked.push(k), counter === stopAt ? { break: `stopped at ${k}` } : undefined));
          expect(result).toBe(`stopped at ${want[stopAt][0]}`);
          expect(walked).toEqual(want.slice(0, stopAt + 1).map(([k]) => k));
        }
      } else if (trees.length < 6) {
        trees.push({ tree: t.tree.clone(), model: new Map(t.model) });
      }
    }
    for (const t of trees) expectSame(t.tree, t.model, seed);
  });

  it('deletes a list of keys, clears, and keeps a clone untouched by either', () => {
    const tree = new BTree<string, number>(
      Array.from({ length: 500 }, (_, i): [string, number] => [`k${String(i).padStart(3, '0')}`, i]),
      undefined,
      8,
    );
    const clone = tree.clone();
    expect(tree.deleteKeys(['k000', 'k250', 'k499', 'missing'])).toBe(3);
    expect(tree.size).toBe(497);
    expect(tree.get('k250')).toBeUndefined();
    tree.clear();
    expect(tree.size).toBe(0);
    expect(tree.maxKey()).toBeUndefined();
    expect(tree.getPairOrNextHigher('')).toBeUndefined();
    expect(clone.size).toBe(500);
    expect(clone.get('k250')).toBe(250);
    expect(pairsOf(clone).map(([, v]) => v)).toEqual(Array.from({ length: 500 }, (_, i) => i));
  });

  it('keeps a clone whole while the other tree merges branches the clone still holds', () => {
    const keys = Array.from({ length: 2000 }, (_, i) => `k${String(i).padStart(4, '0')}`);
    for (const order of [keys, [...keys].reverse()]) {
      const tree = new BTree<string, number>(keys.map((k, i): [string, number] => [k, i]), undefined, 4);
      const clone = tree.clone();
      // Deleting most keys merges nodes at every level; each merge takes children the clone shares.
      for (const [i, key] of order.entries()) if (i % 10 !== 0) tree.delete(key);
      for (const key of keys) if (tree.get(key) !== undefined) tree.set(key, -1);
      expect(pairsOf(clone)).toEqual(keys.map((k, i) => [k, i]));
      expect(pairsOf(tree)).toEqual(order.filter((_, i) => i % 10 === 0).sort().map((k) => [k, -1]));
    }
  });

  it('refuses a node size it cannot split', () => {
    expect(() => new BTree<string, number>(undefined, undefined, 3)).toThrow('bTree: nodeKeysMax 3 is not an integer in [4, 256]');
  });
});
