// Storage errors are values with a code a caller can branch on and a message an operator can act on.

export type StorageErrorCode =
  /** A snapshot at or below the stored snapshot's index (etcd: ErrSnapOutOfDate). */
  | 'snapshot-out-of-date'
  /** A batch that would leave a gap or break index order: a bug in the caller. */
  | 'invalid-batch'
  /** Stored data failed a checksum or a structural check. */
  | 'corrupt'
  /** Another live process (fs-wal) or tab/worker of the origin (IndexedDB) holds the member's storage. */
  | 'locked'
  /** The runtime lacks what the adapter needs (IndexedDB, or Web Locks outside a secure context). */
  | 'unavailable'
  /** The stored data has a schema version this build does not know: written by a newer meshkv. */
  | 'unsupported-version'
  /** The storage was used after close() or after a failed write. */
  | 'closed'
  /** A call while another was still running: the member must await each one. */
  | 'concurrent-call';

export class StorageError extends Error {
  readonly code: StorageErrorCode;

  constructor(code: StorageErrorCode, message: string) {
    super(message);
    this.name = 'StorageError';
    this.code = code;
  }
}
