// Storage errors are values with a code a caller can branch on and a message an operator can act on.

export type StorageErrorCode =
  /** A snapshot at or below the stored snapshot's index (etcd: ErrSnapOutOfDate). */
  | 'snapshot-out-of-date'
  /** A batch that would leave a gap or break index order: a bug in the caller. */
  | 'invalid-batch'
  /** Stored data failed a checksum or a structural check. */
  | 'corrupt'
  /** Another live process holds the data directory. */
  | 'locked'
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
