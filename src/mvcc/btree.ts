// An ordered map as a B+tree with O(1) copy-on-write clones: the key index's tree and the
// backends' bucket trees. It has only the operations those use, with sorted-btree's names and
// meanings (which this replaced: a tab shipped its whole 19 KB class for these few methods).
//
// Leaves hold keys and values; a branch holds its children and, beside each, the largest key
// under it. A clone shares every node; a node reachable from two trees is marked shared and is
// copied by whichever tree changes it first (the copy marks its children shared in turn).

/** The fewest and most keys a node may be given (a node of 2 could not split into two halves). */
const nodeKeysMaxFloor = 4;
const nodeKeysMaxCeiling = 256;
/** sorted-btree's default node size, which the key index was tuned with. */
const nodeKeysMaxDefault = 32;

/** What a visitor may return to stop a walk early; the walk then returns `break`. */
export type Break<R> = { break?: R } | void;

class Node<K, V> {
  /** Set once two trees may reach this node; from then on it is never changed, only copied. */
  shared = false;
  constructor(
    /** Invariant: ascending by the tree's compare, no duplicates; in a branch, keys[i] is the largest key under children[i]. */
    readonly keys: K[],
    /** A leaf's values, keys[i] → values[i]; null in a branch. */
    readonly values: V[] | null,
    /** A branch's children (never empty); null in a leaf. */
    readonly children: Node<K, V>[] | null,
  ) {}

  /** A private copy to change; its children become reachable from two nodes. */
  copy(): Node<K, V> {
    const children = this.children && this.children.slice();
    if (children) for (const child of children) child.shared = true;
    return new Node(this.keys.slice(), this.values && this.values.slice(), children);
  }
}

function defaultCompare<K>(a: K, b: K): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export class BTree<K, V> {
  private root: Node<K, V> = new Node<K, V>([], [], null);
  private count = 0;
  private readonly compare: (a: K, b: K) => number;
  private readonly nodeKeysMax: number;
  /** Set by insert: whether the last set added a key (rather than replaced a value). */
  private added = false;

  constructor(entries?: Iterable<[K, V]>, compare?: (a: K, b: K) => number, nodeKeysMax = nodeKeysMaxDefault) {
    if (!Number.isInteger(nodeKeysMax) || nodeKeysMax < nodeKeysMaxFloor || nodeKeysMax > nodeKeysMaxCeiling) {
      throw new RangeError(`bTree: nodeKeysMax ${nodeKeysMax} is not an integer in [${nodeKeysMaxFloor}, ${nodeKeysMaxCeiling}]`);
    }
    this.compare = compare ?? defaultCompare;
    this.nodeKeysMax = nodeKeysMax;
    if (entries) for (const [k, v] of entries) this.set(k, v);
  }

  /** The number of keys. O(1). */
  get size(): number {
    return this.count;
  }

  /** O(1): the clone and this tree share every node until one of them changes it. */
  clone(): BTree<K, V> {
    const tree = new BTree<K, V>(undefined, this.compare, this.nodeKeysMax);
    this.root.shared = true;
    tree.root = this.root;
    tree.count = this.count;
    return tree;
  }

  clear(): void {
    this.root = new Node<K, V>([], [], null);
    this.count = 0;
  }

  get(key: K): V | undefined {
    const leaf = this.leafFor(key);
    if (leaf === null) return undefined;
    const i = this.search(leaf.keys, key);
    return i < 0 ? undefined : leaf.values![i];
  }

  /** The pair with the smallest key at or above `key`. O(log n). */
  getPairOrNextHigher(key: K): [K, V] | undefined {
    const leaf = this.leafFor(key);
    if (leaf === null) return undefined;
    const i = this.lowerBound(leaf.keys, key);
    return i < leaf.keys.length ? [leaf.keys[i], leaf.values![i]] : undefined;
  }

  maxKey(): K | undefined {
    const keys = this.root.keys;
    return keys.length === 0 ? undefined : keys[keys.length - 1];
  }

  /** Sets `key` to `value` (replacing the key too when present); true when the key is new. O(log n). */
  set(key: K, value: V): boolean {
    const right = this.insert(this.writableRoot(), key, value);
    if (right !== null) {
      const left = this.root;
      this.root = new Node([last(left.keys), last(right.keys)], null, [left, right]);
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
    let i = low === undefined ? 0 : this.lowerBound(node.keys, low);
    while (node.children !== null) {
      if (i === node.keys.length) return 0;
      path.push(node);
      taken.push(i);
      node = node.children[i];
      i = low === undefined ? 0 : this.lowerBound(node.keys, low);
    }
    let counter = 0;
    for (;;) {
      const keys = node.keys;
      const values = node.values!;
      // The leaf's part of the range ends at `end`; an end inside the leaf ends the walk.
      let end = keys.length;
      if (high !== undefined && end > 0 && this.compare(keys[end - 1], high) >= 0) {
        end = this.lowerBound(keys, high);
        if (includeHigh && end < keys.length && this.compare(keys[end], high) === 0) end++;
      }
      for (; i < end; i++) {
        const result = visit(keys[i], values[i], counter++);
        if (result && result.break !== undefined) return result.break;
      }
      if (end < keys.length) return counter;
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
      const i = this.lowerBound(node.keys, key);
      if (i === node.keys.length) return null;
      node = node.children[i];
    }
    return node;
  }

  /** The index of `key` in `keys`, or ~(the index it would be inserted at). */
  private search(keys: K[], key: K): number {
    let lo = 0;
    let hi = keys.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const c = this.compare(keys[mid], key);
      if (c < 0) lo = mid + 1;
      else if (c > 0) hi = mid - 1;
      else return mid;
    }
    return ~lo;
  }

  /** The first index whose key is at or above `key` (keys.length when none is). */
  private lowerBound(keys: K[], key: K): number {
    const i = this.search(keys, key);
    return i < 0 ? ~i : i;
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
    const keys = node.keys;
    let i = this.search(keys, key);
    if (node.children === null) {
      this.added = i < 0;
      if (!this.added) {
        keys[i] = key;
        node.values![i] = value;
        return null;
      }
      i = ~i;
      keys.splice(i, 0, key);
      node.values!.splice(i, 0, value);
    } else {
      // A key above every key goes to the last child, whose largest key it becomes.
      if (i < 0) i = Math.min(~i, keys.length - 1);
      const child = this.writableChild(node, i);
      const right = this.insert(child, key, value);
      keys[i] = last(child.keys);
      if (right === null) return null;
      keys.splice(i + 1, 0, last(right.keys));
      node.children.splice(i + 1, 0, right);
    }
    if (keys.length <= this.nodeKeysMax) return null;
    const half = keys.length >> 1;
    return new Node(keys.splice(half), node.values && node.values.splice(half), node.children && node.children.splice(half));
  }

  /** Removes from a writable node; true when `key` was there. Merges a child left under half full into a neighbour it fits in. */
  private remove(node: Node<K, V>, key: K): boolean {
    const keys = node.keys;
    const found = this.search(keys, key);
    const i = found < 0 ? ~found : found;
    if (i === keys.length) return false;
    if (node.children === null) {
      if (found < 0) return false;
      keys.splice(i, 1);
      node.values!.splice(i, 1);
      return true;
    }
    const child = this.writableChild(node, i);
    if (!this.remove(child, key)) return false;
    if (child.keys.length === 0) {
      keys.splice(i, 1);
      node.children.splice(i, 1);
      return true;
    }
    keys[i] = last(child.keys);
    if (child.keys.length >= this.nodeKeysMax >> 1 || keys.length === 1) return true;
    const j = i === keys.length - 1 ? i - 1 : i;
    const left = node.children[j];
    const right = node.children[j + 1];
    if (left.keys.length + right.keys.length > this.nodeKeysMax) return true;
    const into = this.writableChild(node, j);
    into.keys.push(...right.keys);
    if (into.values) into.values.push(...right.values!);
    else {
      // A shared `right` stays in another tree, so the children it gives `into` are then reachable from both.
      if (right.shared) for (const child of right.children!) child.shared = true;
      into.children!.push(...right.children!);
    }
    keys[j] = last(into.keys);
    keys.splice(j + 1, 1);
    node.children.splice(j + 1, 1);
    return true;
  }
}

function last<K>(keys: K[]): K {
  return keys[keys.length - 1];
}
