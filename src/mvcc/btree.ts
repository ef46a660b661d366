// sorted-btree is CommonJS with only `exports.default`. Bundlers and vitest unwrap it; Node's
// ESM loader hands over the whole exports object. This picks the class either way.
import BTreeImport from 'sorted-btree';

// The class's types as a CommonJS importer sees them, so that the published declarations mean
// the class under every resolution a consumer may use (Node16 ESM would see the exports object).
type BTreeClass = typeof import('sorted-btree', { with: { 'resolution-mode': 'require' } }).default;

export const BTree: BTreeClass = (BTreeImport as unknown as { default?: BTreeClass }).default ?? (BTreeImport as unknown as BTreeClass);
export type BTree<K, V> = import('sorted-btree', { with: { 'resolution-mode': 'require' } }).default<K, V>;
