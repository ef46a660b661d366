// Shared parts of the lock and election recipes, exactly as etcd's clientv3/concurrency does
// them so that meshkv and etcdctl lock/elect interoperate: each contender owns the key
// `<prefix><leaseIdHex>` (lease-bound), the smallest create revision wins, and everyone else
// waits for the key created just before their own to be deleted.

import type { KeyValue, ResponseHeader } from '../mvcc/types.ts';
import type { Client } from './client.ts';
import { ClientClosedError } from './errors.ts';

/** Session TTL when none is given (etcd's concurrency.defaultSessionTTL). */
export const SESSION_TTL_SECONDS_DEFAULT = 60;

/** The contender key for a session lease: etcd formats the id with %x. */
export function contenderKey(prefix: string, leaseId: bigint): string {
  return `${prefix}${leaseId.toString(16)}`;
}

/** The key under `prefix` with the smallest create revision (clientv3's WithFirstCreate). */
export async function firstCreated(client: Client, prefix: string): Promise<{ kv: KeyValue | undefined; header: ResponseHeader }> {
  const res = await client.getAll().prefix(prefix).sort('create', 'asc').limit(1).exec();
  return { kv: res.kvs[0], header: res.header };
}

/**
 * Waits until no key under `prefix` has a create revision <= `maxCreateRevision` (etcd's
 * waitDeletes): repeatedly finds the newest such key and waits for its deletion.
 */
export async function waitDeletes(client: Client, prefix: string, maxCreateRevision: number, signal: AbortSignal): Promise<ResponseHeader> {
  for (;;) {
    signal.throwIfAborted();
    const res = await client.getAll().prefix(prefix).sort('create', 'desc').limit(1).maxCreateRevision(maxCreateRevision).exec();
    if (res.kvs.length === 0) return res.header;
    await waitDelete(client, res.kvs[0].key, res.header.revision, signal);
  }
}

/** Resolves once `key` is deleted at or after `revision`. */
async function waitDelete(client: Client, key: Uint8Array, revision: number, signal: AbortSignal): Promise<void> {
  const watcher = await client.watch().key(key).startRevision(revision).ignore('put').create();
  const onAbort = (): void => void watcher.cancel();
  signal.addEventListener('abort', onAbort);
  try {
    for await (const event of watcher) if (event.type === 'delete') return;
    signal.throwIfAborted();
    throw new ClientClosedError('watch');
  } finally {
    signal.removeEventListener('abort', onAbort);
    await watcher.cancel();
  }
}
