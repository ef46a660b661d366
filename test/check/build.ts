// Test helpers: terse constructors for hand-written histories.

import type { HistoryOp, OpInput, OpOutput } from './history.ts';

let nextId = 1;

/** An acknowledged operation by `client` over [call, ret]. */
export function op(client: number, call: number, ret: number, input: OpInput, output: OpOutput): HistoryOp {
  return { id: nextId++, client, call, ret, input, output };
}

/** An operation with unknown outcome, called at `call`. */
export function lost(client: number, call: number, input: OpInput): HistoryOp {
  return { id: nextId++, client, call, ret: Infinity, input, output: null };
}

export const put = (key: string, value: string): OpInput => ({ f: 'put', key, value });
export const get = (key: string): OpInput => ({ f: 'get', key });
export const del = (key: string): OpInput => ({ f: 'delete', key });
export const cas = (key: string, expected: string | null, value: string): OpInput => ({ f: 'cas', key, expected, value });
export const range = (prefix: string): OpInput => ({ f: 'range', prefix });

export const wrote = (revision: number): OpOutput => ({ f: 'put', revision });
export const read = (value: string | null, revision: number): OpOutput => ({ f: 'get', value, revision });
export const deleted = (count: number, revision: number): OpOutput => ({ f: 'delete', deleted: count, revision });
export const swapped = (succeeded: boolean, value: string | null, revision: number): OpOutput => ({ f: 'cas', succeeded, value, revision });
export const ranged = (kvs: Record<string, string>, revision: number): OpOutput => ({ f: 'range', kvs, revision });
