// The *plan* step of plan / fetch / execute (src/backend/prefetched.ts): reads, from the
// in-memory index, every stored value that applying a request can read, so that an
// asynchronous backend can fetch them before the request is applied synchronously. Run under
// PrefetchedBackend's planning mode, each value read here is recorded, not returned. It
// over-approximates (both branches of a txn, every written key's previous value when a watcher
// asks for prev_kv) and never changes the store. A value written by an earlier entry of the
// same batch is in the write buffer when the entry executes, so planning every entry of a batch
// against the store as the batch starts is complete.

import { applyRange } from './apply-kv.ts';
import { toBinaryString, toRangeEnd, type KeyString } from './bytes.ts';
import { MvccError } from './errors.ts';
import type { KvStore } from './kv-store.ts';
import type { Lessor } from './lessor.ts';
import { CompareTarget, type ApplyRequest, type DeleteRangeRequest, type PutRequest, type RequestOp, type TxnRequest } from './types.ts';

export interface PlanContext {
  store: KvStore;
  lessor: Lessor;
  /** Some watcher asked for prev_kv: every key a write changes needs its previous value. */
  prevKvWatched: boolean;
}

/** Reads every value applying `request` can read. */
export function planRequest(ctx: PlanContext, request: ApplyRequest): void {
  try {
    switch (request.kind) {
      case 'range':
        applyRange(ctx.store, request.request, ctx.store.currentRevision);
        return;
      case 'put':
        planPut(ctx, request.request);
        return;
      case 'deleteRange':
        planDelete(ctx, request.request);
        return;
      case 'txn':
        planTxn(ctx, request.request);
        return;
      case 'leaseRevoke':
        if (ctx.prevKvWatched) for (const key of ctx.lessor.lookup(request.request.ID)?.keys ?? []) touchLive(ctx.store, key);
        return;
      case 'compaction':
      case 'leaseGrant':
      case 'leaseCheckpoint':
        return;
    }
  } catch (err) {
    // The request fails the same way when it executes; what it read until then is planned.
    if (!(err instanceof MvccError)) throw err;
  }
}

function touchLive(store: KvStore, key: KeyString): void {
  const live = store.live(key);
  if (live !== undefined) store.value(live);
}

function touchRange(store: KvStore, key: Uint8Array, rangeEnd: Uint8Array | undefined): void {
  const { records } = store.rangeRecords(toBinaryString(key), toRangeEnd(rangeEnd), store.currentRevision, Infinity);
  for (const record of records) store.value(record);
}

function planPut(ctx: PlanContext, put: PutRequest): void {
  if (put.prevKv || put.ignoreValue || ctx.prevKvWatched) touchLive(ctx.store, toBinaryString(put.key));
}

function planDelete(ctx: PlanContext, del: DeleteRangeRequest): void {
  if (del.prevKv || ctx.prevKvWatched) touchRange(ctx.store, del.key, del.rangeEnd);
}

function planTxn(ctx: PlanContext, txn: TxnRequest): void {
  for (const compare of txn.compare ?? []) {
    if (compare.target === CompareTarget.VALUE) touchRange(ctx.store, compare.key, compare.rangeEnd);
  }
  // Which branch runs depends on values: plan both.
  for (const op of [...(txn.success ?? []), ...(txn.failure ?? [])]) planOp(ctx, op);
}

function planOp(ctx: PlanContext, op: RequestOp): void {
  try {
    if ('requestRange' in op) applyRange(ctx.store, op.requestRange, ctx.store.currentRevision);
    else if ('requestPut' in op) planPut(ctx, op.requestPut);
    else if ('requestDeleteRange' in op) planDelete(ctx, op.requestDeleteRange);
    else if ('requestTxn' in op) planTxn(ctx, op.requestTxn);
  } catch (err) {
    if (!(err instanceof MvccError)) throw err;
  }
}
