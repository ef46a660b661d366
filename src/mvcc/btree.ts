// An ordered map from strings as a B+tree with O(1) copy-on-write clones: the key index's tree and
// the backends' bucket trees. It has only the operations those use, with sorted-btree's names and
// meanings (which this replaced: a tab shipped its whole 19 KB class for these few methods).
// Keys are ordered by UTF-16 code unit, as `<` orders strings.
//
// A branch holds its children and, beside each, the largest key under it. A leaf holds its keys
// packed into one string, with where each ends, and its values: at 1 M keys a string per key was
// 7 in 10 of the heap's objects and a full collection's work on the index 3-5 times as much
// (docs/benchmarks.md, "gc18, session 14"). A clone shares every node; a node reachable from two
// trees is marked shared and is copied by whichever tree changes it first (the copy marks its
// children shared in turn).

/** The fewest and most keys a node may be given (a node of 2 could not split into two halves). */
const nodeKeysMaxFloor = 4;
const nodeKeysMaxCeiling = 256;
/** sorted-btree's default node size, which the key index was tuned with. */
const nodeKeysMaxDefault = 32;

/** What a visitor may return to stop a walk early; the walk then returns `break`. */
export type Break<R> = { break?: R } | void;

class Node<K extends string, V> {
  /** Set once two trees may reach this node; from then on it is never changed, only copied. */
  shared = false;
  constructor(
    /** A branch's keys: keys[i] is the largest key under children[i], ascending. Empty in a leaf. */
    readonly keys: K[],
    /**
     * A leaf's keys, ascending and without duplicates, concatenated: key i is
     * text.slice(ends[i - 1] ?? 0, ends[i]). Always a flat string of its own, never a view of
     * another (see `joined`). '' in a branch.
     */
    public text: string,
    /** A leaf's key ends in `text`, ascending; one per value. Empty in a branch. */
    readonly ends: number[],
    /** A leaf's values, key i → values[i]; null in a branch. */
    readonly values: V[] | null,
    /** A branch's children (never empty); null in a leaf. */
    readonly children: Node<K, V>[] | null,
  ) {}

  /** How many keys (a leaf) or children (a branch). */
  get count(): number {
    return this.children === null ? this.ends.length : this.keys.length;
  }

  /** A private copy to change; its children become reachable from two nodes. */
  copy(): Node<K, V> {
    const children = this.children && this.children.slice();
    if (children) for (const child of children) child.shared = true;
    return new Node(this.keys.slice(), this.text, this.ends.slice(), this.values && this.values.slice(), children);
  }
}

function leafNode<K extends string, V>(text: string, ends: number[], values: V[]): Node<K, V> {
  return new Node<K, V>([], text, ends, values, null);
}

function branchNode<K extends string, V>(keys: K[], children: Node<K, V>[]): Node<K, V> {
  return new Node<K, V>(keys, '', [], null, children);
}

/** Where key i of a leaf starts in its text. */
function startOf(ends: number[], i: number): number {
  return i === 0 ? 0 : ends[i - 1];
}

/** Key i of a leaf: a slice of its text (V8 makes a slice of 13 or more characters a view of it). */
function keyAt<K extends string>(leaf: Node<K, unknown>, i: number): K {
  return leaf.text.slice(startOf(leaf.ends, i), leaf.ends[i]) as K;
}

/**
 * `parts` joined into one flat string of its own. A slice or a one-part join of 13 or more
 * characters is a view that keeps the whole string it came from alive, which for a branch key or a
 * leaf's text would hold every text it was ever cut from; a join of two or more parts copies.
 */
function joined(parts: string[]): string {
  const nonEmpty = parts.filter((part) => part.length > 0);
  if (nonEmpty.length === 0) return '';
  if (nonEmpty.length > 1) return nonEmpty.join('');
  const only = nonEmpty[0];
  const mid = only.length >> 1;
  return mid === 0 ? only : [only.slice(0, mid), only.slice(mid)].join('');
}

/** Key i of a leaf as a string of its own, for a branch to keep. */
function keyCopyAt<K extends string>(leaf: Node<K, unknown>, i: number): K {
  return joined([keyAt(leaf, i)]) as K;
}

/** The largest key under `node`; a leaf's as a string of its own. */
function lastKey<K extends string>(node: Node<K, unknown>): K {
  return node.children === null ? keyCopyAt(node, node.ends.length - 1) : node.keys[node.keys.length - 1];
}

/** text[start, end) against `key` by code unit: negative, zero or positive, as for a sort. */
function compareAt(text: string, start: number, end: number, key: string): number {
  const length = end - start;
  const common = Math.min(length, key.length);
  for (let i = 0; i < common; i++) {
    const difference = text.charCodeAt(start + i) - key.charCodeAt(i);
    if (difference !== 0) return difference;
  }
  return length - key.length;
}

export class BTree<K extends string, V> {
  private root: Node<K, V> = leafNode<K, V>('', [], []);
  private count = 0;
  private readonly nodeKeysMax: number;
  /** Set by insert: whether the last set added a key (rather than replaced a value). */
  private added = false;

  constructor(entries?: Iterable<[K, V]>, nodeKeysMax = nodeKeysMaxDefault) {
    if (!Number.isInteger(nodeKeysMax) || nodeKeysMax < nodeKeysMaxFloor || nodeKeysMax > nodeKeysMaxCeiling) {
      throw new RangeError(`bTree: nodeKeysMax ${nodeKeysMax} is not an integer in [${nodeKeysMaxFloor}, ${nodeKeysMaxCeiling}]`);
    }
    this.nodeKeysMax = nodeKeysMax;
    if (entries) for (const [k, v] of entries) this.set(k, v);
  }

  /** The number of keys. O(1). */
  get size(): number {
    return this.count;
  }

  /** O(1): the clone and this tree share every node until one of them changes it. */
  clone(): BTree<K, V> {
    const tree = new BTree<K, V>(undefined, this.nodeKeysMax);
    this.root.shared = true;
    tree.root = this.root;
    tree.count = this.count;
    return tree;
  }

  clear(): void {
    this.root = leafNode<K, V>('', [], []);
    this.count = 0;
  }

  get(key: K): V | undefined {
    const leaf = this.leafFor(key);
    if (leaf === null) return undefined;
    const i = searchLeaf(leaf, key);
    return i < 0 ? undefined : leaf.values![i];
  }

  /** The pair with the smallest key at or above `key`. O(log n). */
  getPairOrNextHigher(key: K): [K, V] | undefined {
    const leaf = this.leafFor(key);
    if (leaf === null) return undefined;
    const found = searchLeaf(leaf, key);
    const i = found < 0 ? ~found : found;
    return i < leaf.ends.length ? [keyAt(leaf, i), leaf.values![i]] : undefined;
  }

  maxKey(): K | undefined {
    const root = this.root;
    if (root.children !== null) return root.keys[root.keys.length - 1];
    return root.ends.length === 0 ? undefined : keyAt(root, root.ends.length - 1);
  }

  /** Sets `key` to `value`; true when the key is new. O(log n). */
  set(key: K, value: V): boolean {
    const right = this.insert(this.writableRoot(), key, value);
    if (right !== null) {
      const left = this.root;
      this.root = branchNode([lastKey(left), lastKey(right)], [left, right]);
    }
    if (this.added) this.count++;
    return this.added;
  }

  /** True when `key` was present. O(log n). */
  delete(key: K): boolean {
    if (!this.remove(this.writableRoot(), key)) return false;
    this.count--;
    // A branch left with one child hands the root to it.
    while (this.root.children !== null && this.root.children.length === 1) this.root = this.root.children[0];
    return true;
  }

  /** Deletes each of `keys`; returns how many were present. */
  deleteKeys(keys: Iterable<K>): number {
    let deleted = 0;
    for (const key of keys) if (this.delete(key)) deleted++;
    return deleted;
  }

  /**
   * Visits the pairs with keys in [low, high) (or [low, high] with includeHigh) in key order;
   * returns how many it visited, or the `break` value a visitor returned. The visitor must not
   * change the tree.
   */
  forRange<R = number>(low: K, high: K, includeHigh: boolean, visit: (k: K, v: V, counter: number) => Break<R>): R | number {
    return this.walk(low, high, includeHigh, visit);
  }

  /** Visits every pair in key order, as forRange does. */
  forEachPair<R = number>(visit: (k: K, v: V, counter: number) => Break<R>): R | number {
    return this.walk(undefined, undefined, true, visit);
  }

  private walk<R>(low: K | undefined, high: K | undefined, includeHigh: boolean, visit: (k: K, v: V, counter: number) => Break<R>): R | number {
    // The branches above the current leaf and the child taken in each.
    const path: Node<K, V>[] = [];
    const taken: number[] = [];
    let node = this.root;
    while (node.children !== null) {
      const i = low === undefined ? 0 : lowerBound(node.keys, low);
      if (i === node.keys.length) return 0;
      path.push(node);
      taken.push(i);
      node = node.children[i];
    }
    let i = low === undefined ? 0 : leafLowerBound(node, low);
    let counter = 0;
    for (;;) {
      const ends = node.ends;
      const values = node.values!;
      // The leaf's part of the range ends at `end`; an end inside the leaf ends the walk.
      let end = ends.length;
      if (high !== undefined && end > 0 && compareAt(node.text, startOf(ends, end - 1), ends[end - 1], high) >= 0) {
        const found = searchLeaf(node, high);
        end = found < 0 ? ~found : includeHigh ? found + 1 : found;
      }
      for (; i < end; i++) {
        const result = visit(keyAt(node, i), values[i], counter++);
        if (result && result.break !== undefined) return result.break;
      }
      if (end < ends.length) return counter;
      // On to the next leaf: up to the nearest branch with a child to the right, then down its leftmost path.
      let depth = path.length - 1;
      while (depth >= 0 && taken[depth] === path[depth].keys.length - 1) depth--;
      if (depth < 0) return counter;
      node = path[depth].children![++taken[depth]];
      path.length = taken.length = depth + 1;
      while (node.children !== null) {
        path.push(node);
        taken.push(0);
        node = node.children[0];
      }
      i = 0;
    }
  }

  /** The leaf that holds `key` if any key does, or null when `key` is above every key. */
  private leafFor(key: K): Node<K, V> | null {
    let node = this.root;
    while (node.children !== null) {
      const i = lowerBound(node.keys, key);
      if (i === node.keys.length) return null;
      node = node.children[i];
    }
    return node;
  }

  private writableRoot(): Node<K, V> {
    if (this.root.shared) this.root = this.root.copy();
    return this.root;
  }

  /** children[i] of a writable branch, copied first if shared. */
  private writableChild(branch: Node<K, V>, i: number): Node<K, V> {
    let child = branch.children![i];
    if (child.shared) branch.children![i] = child = child.copy();
    return child;
  }

  /** Inserts into a writable node; returns the new right half when the node split. */
  private insert(node: Node<K, V>, key: K, value: V): Node<K, V> | null {
    if (node.children === null) {
      const found = searchLeaf(node, key);
      this.added = found < 0;
      if (!this.added) {
        node.values![found] = value;
        return null;
      }
      const i = ~found;
      const ends = node.ends;
      const at = startOf(ends, i);
      node.text = joined([node.text.slice(0, at), key, node.text.slice(at)]);
      ends.splice(i, 0, at + key.length);
      for (let j = i + 1; j < ends.length; j++) ends[j] += key.length;
      node.values!.splice(i, 0, value);
      if (ends.length <= this.nodeKeysMax) return null;
      const half = ends.length >> 1;
      const cut = ends[half - 1];
      const rightEnds = ends.splice(half).map((e) => e - cut);
      const right = leafNode<K, V>(joined([node.text.slice(cut)]), rightEnds, node.values!.splice(half));
      node.text = joined([node.text.slice(0, cut)]);
      return right;
    }
    const keys = node.keys;
    const found = search(keys, key);
    // A key above every key goes to the last child, whose largest key it becomes.
    const i = found >= 0 ? found : Math.min(~found, keys.length - 1);
    const child = this.writableChild(node, i);
    const right = this.insert(child, key, value);
    if (found < 0 && ~found === keys.length) keys[i] = key;
    if (right === null) return null;
    keys[i] = lastKey(child);
    keys.splice(i + 1, 0, lastKey(right));
    node.children.splice(i + 1, 0, right);
    if (keys.length <= this.nodeKeysMax) return null;
    const half = keys.length >> 1;
    return branchNode(keys.splice(half), node.children.splice(half));
  }

  /** Removes from a writable node; true when `key` was there. Merges a child left under half full into a neighbour it fits in. */
  private remove(node: Node<K, V>, key: K): boolean {
    if (node.children === null) {
      const found = searchLeaf(node, key);
      if (found < 0) return false;
      const ends = node.ends;
      const from = startOf(ends, found);
      const length = ends[found] - from;
      node.text = joined([node.text.slice(0, from), node.text.slice(ends[found])]);
      ends.splice(found, 1);
      for (let j = found; j < ends.length; j++) ends[j] -= length;
      node.values!.splice(found, 1);
      return true;
    }
    const keys = node.keys;
    const found = search(keys, key);
    const i = found < 0 ? ~found : found;
    if (i === keys.length) return false;
    const child = this.writableChild(node, i);
    if (!this.remove(child, key)) return false;
    if (child.count === 0) {
      keys.splice(i, 1);
      node.children.splice(i, 1);
      return true;
    }
    // Only the removal of the child's largest key changes what the branch holds for it.
    if (found >= 0) keys[i] = lastKey(child);
    if (child.count >= this.nodeKeysMax >> 1 || keys.length === 1) return true;
    const j = i === keys.length - 1 ? i - 1 : i;
    const left = node.children[j];
    const right = node.children[j + 1];
    if (left.count + right.count > this.nodeKeysMax) return true;
    const into = this.writableChild(node, j);
    if (into.children === null) {
      const shift = into.text.length;
      into.text = joined([into.text, right.text]);
      for (const e of right.ends) into.ends.push(e + shift);
      into.values!.push(...right.values!);
    } else {
      into.keys.push(...right.keys);
      // A shared `right` stays in another tree, so the children it gives `into` are then reachable from both.
      if (right.shared) for (const child of right.children!) child.shared = true;
      into.children.push(...right.children!);
    }
    // `into` now ends with right's keys, whose largest the branch already holds.
    keys[j] = keys[j + 1];
    keys.splice(j + 1, 1);
    node.children.splice(j + 1, 1);
    return true;
  }
}

/** The index of `key` in a branch's `keys`, or ~(the index it would be inserted at). */
function search(keys: readonly string[], key: string): number {
  let lo = 0;
  let hi = keys.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const k = keys[mid];
    if (k < key) lo = mid + 1;
    else if (k > key) hi = mid - 1;
    else return mid;
  }
  return ~lo;
}

/** The first index in a branch's `keys` at or above `key` (keys.length when none is). */
function lowerBound(keys: readonly string[], key: string): number {
  const i = search(keys, key);
  return i < 0 ? ~i : i;
}

/** The index of `key` in a leaf, or ~(the index it would be inserted at). */
function searchLeaf(leaf: Node<string, unknown>, key: string): number {
  const { text, ends } = leaf;
  let lo = 0;
  let hi = ends.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const c = compareAt(text, startOf(ends, mid), ends[mid], key);
    if (c < 0) lo = mid + 1;
    else if (c > 0) hi = mid - 1;
    else return mid;
  }
  return ~lo;
}

/** The first index in a leaf whose key is at or above `key`. */
function leafLowerBound(leaf: Node<string, unknown>, key: string): number {
  const i = searchLeaf(leaf, key);
  return i < 0 ? ~i : i;
}
