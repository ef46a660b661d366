// sorted-btree is CommonJS with only `exports.default`. Bundlers and vitest unwrap it; Node's
// ESM loader hands over the whole exports object. This picks the class either way.
import BTreeImport from 'sorted-btree';

type BTreeClass = typeof BTreeImport;

export const BTree: BTreeClass = (BTreeImport as unknown as { default?: BTreeClass }).default ?? BTreeImport;
export type BTree<K, V> = BTreeImport<K, V>;
