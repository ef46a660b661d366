// The transaction builder: client.if(key, target, op, value).and(...).then(...ops).else(...ops).commit().

import { CompareResult, CompareTarget, type Compare, type RequestOp, type TxnResponse } from '../mvcc/types.ts';
import { prefixRange, toBytes, type Bytes } from './bytes.ts';
import type { Connection } from './connection.ts';
import type { Operation } from './kv.ts';

/** What a compare looks at: one key, every key with a prefix, or the keys in [start, end). */
export type CompareKey = Bytes | { prefix: Bytes } | { start: Bytes; end: Bytes };

export type CompareTargetName = 'Version' | 'Create' | 'Mod' | 'Value' | 'Lease';
export type Comparator = '==' | '===' | '!=' | '!==' | '>' | '<';

const comparators: Record<Comparator, CompareResult> = {
  '==': CompareResult.EQUAL,
  '===': CompareResult.EQUAL,
  '!=': CompareResult.NOT_EQUAL,
  '!==': CompareResult.NOT_EQUAL,
  '>': CompareResult.GREATER,
  '<': CompareResult.LESS,
};

/** Builds one etcd Compare. 'Value' takes bytes or a string; the others take numbers (Lease: an id). */
export function compare(key: CompareKey, target: CompareTargetName, comparator: Comparator, value: Bytes | number | bigint): Compare {
  const result = comparators[comparator];
  if (result === undefined) throw new TypeError(`txn: unknown comparator ${JSON.stringify(comparator)}`);
  let k: Uint8Array;
  let rangeEnd: Uint8Array | undefined;
  if (typeof key === 'string' || key instanceof Uint8Array) k = toBytes(key);
  else if ('prefix' in key) {
    ({ key: k, rangeEnd } = prefixRange(toBytes(key.prefix)));
  } else {
    k = toBytes(key.start);
    rangeEnd = toBytes(key.end);
  }
  const c: Compare = { key: k, result, target: CompareTarget.VERSION };
  if (rangeEnd !== undefined) c.rangeEnd = rangeEnd;
  const asNumber = (): number => {
    if (typeof value === 'number') return value;
    if (typeof value === 'bigint') return Number(value);
    throw new TypeError(`txn: a ${target} compare takes a number, not ${typeof value}`);
  };
  switch (target) {
    case 'Version':
      c.target = CompareTarget.VERSION;
      c.version = asNumber();
      break;
    case 'Create':
      c.target = CompareTarget.CREATE;
      c.createRevision = asNumber();
      break;
    case 'Mod':
      c.target = CompareTarget.MOD;
      c.modRevision = asNumber();
      break;
    case 'Value':
      c.target = CompareTarget.VALUE;
      c.value = toBytes(typeof value === 'number' || typeof value === 'bigint' ? String(value) : value);
      break;
    case 'Lease':
      c.target = CompareTarget.LEASE;
      c.lease = typeof value === 'bigint' ? value : BigInt(asNumber());
      break;
    default:
      throw new TypeError(`txn: unknown compare target ${JSON.stringify(target)}`);
  }
  return c;
}

/** An operation for a txn branch: a builder (client.put(...), client.get(...), ...) or a raw RequestOp. */
export type TxnOperation = Operation | RequestOp;

function isOperation(x: unknown): x is Operation {
  return typeof x === 'object' && x !== null && typeof (x as Operation).op === 'function';
}

function isRequestOp(x: unknown): x is RequestOp {
  return typeof x === 'object' && x !== null && ('requestRange' in x || 'requestPut' in x || 'requestDeleteRange' in x || 'requestTxn' in x);
}

/**
 * Compare-then-else, atomic, one revision. Note: `then` here adds operations; it is not a
 * promise's then — finish with commit(). Awaiting the builder itself is refused with a TypeError.
 */
export class TxnBuilder implements Operation {
  private readonly compares: Compare[] = [];
  private readonly success: TxnOperation[] = [];
  private readonly failure: TxnOperation[] = [];

  constructor(private readonly connection: Connection) {}

  and(key: CompareKey, target: CompareTargetName, comparator: Comparator, value: Bytes | number | bigint): this {
    this.compares.push(compare(key, target, comparator, value));
    return this;
  }

  /** Operations run when every compare holds. */
  then(...ops: TxnOperation[]): this {
    this.success.push(...TxnBuilder.checked(ops));
    return this;
  }

  /** Operations run otherwise. */
  else(...ops: TxnOperation[]): this {
    this.failure.push(...TxnBuilder.checked(ops));
    return this;
  }

  async commit(): Promise<TxnResponse> {
    return this.connection.txn(await this.request());
  }

  /** A nested transaction, for use inside another one's branch. */
  async op(): Promise<RequestOp> {
    return { requestTxn: await this.request() };
  }

  private async request() {
    const resolve = (ops: TxnOperation[]) => Promise.all(ops.map((o) => (isOperation(o) ? o.op() : o)));
    return { compare: [...this.compares], success: await resolve(this.success), failure: await resolve(this.failure) };
  }

  private static checked(ops: unknown[]): TxnOperation[] {
    for (const op of ops) {
      if (typeof op === 'function') {
        throw new TypeError('txn: a transaction builder is not a promise; call commit() to run it');
      }
      if (!isOperation(op) && !isRequestOp(op)) throw new TypeError('txn: an operation must be a builder (client.put(...), ...) or a RequestOp');
    }
    return ops as TxnOperation[];
  }
}
