// Values and history live in the backend's `key` bucket (revision → mvccpb.KeyValue); only the
// key index stays in memory. Writes reach the backend in batches that commit later, so reads go
// through an overlay: the write buffer holds what was applied but is not committed yet (etcd's
// txReadBuffer) and the compaction deletes not committed yet. Buffered revisions are always
// newer than every committed one (batches commit in order), so history is the backend below the
// first buffered revision, then the buffer.

import { toBinaryString, type BinaryString } from './bytes.ts';
import type { Record } from './key-index.ts';
import { decodeKeyValue, parseRevisionKey, revisionKey } from '../backend/layout.ts';
import type { BackendOp, BackendReader } from '../seams.ts';

/** A record with its value, as history reads return it (the value is the reader's own copy). */
export interface StoredRecord extends Record {
  readonly value: Uint8Array;
}

interface BufferedRevision {
  /** In sub order; grows only while its write transaction is open. */
  readonly records: Record[];
  /**
   * By sub revision (a restored revision whose compaction kept only some subs leaves holes): the
   * `key`-bucket put of each record, as the backend batch holds it. Values are read out of its
   * KeyValue, so a buffered value is held once (in the op) until the backend commits it.
   */
  readonly ops: BackendOp[];
}

/** A buffered record's value: a view of its op's KeyValue. */
function bufferedValue(buffered: BufferedRevision, sub: number): Uint8Array {
  return decodeKeyValue(buffered.ops[sub].value!).value;
}

export class WriteBuffer {
  /** Main revision → its records and their backend ops. Insertion order is ascending main. */
  readonly revisions = new Map<number, BufferedRevision>();
  /** Revisions (revisionId) a compaction dropped whose delete is not committed yet. */
  readonly deleted = new Set<string>();
  /** True while a batch that clears the backend (a restore) is not committed: its contents are stale. */
  clearing = false;

  /** A copy for a read view: ended transactions' arrays are never mutated, so they are shared. */
  copy(): WriteBuffer {
    const copy = new WriteBuffer();
    for (const [main, revision] of this.revisions) copy.revisions.set(main, revision);
    for (const id of this.deleted) copy.deleted.add(id);
    copy.clearing = this.clearing;
    return copy;
  }
}

export function revisionId(main: number, sub: number): string {
  return `${main}.${sub}`;
}

/** Decodes one entry of the `key` bucket. */
export function decodeStoredRecord(key: Uint8Array, value: Uint8Array): StoredRecord {
  const { main, sub, tombstone } = parseRevisionKey(key);
  const kv = decodeKeyValue(value);
  if (kv.modRevision !== main) throw new Error(`backend: KeyValue at ${main}.${sub} says mod revision ${kv.modRevision}`);
  if (tombstone !== (kv.version === 0)) throw new Error(`backend: record at ${main}.${sub} is ${tombstone ? '' : 'not '}marked a tombstone but has version ${kv.version}`);
  return {
    key: toBinaryString(kv.key),
    main,
    sub,
    createRevision: kv.createRevision,
    version: kv.version,
    // A copy: the backend may reuse the buffer it handed out once the read moves on.
    value: kv.value.length === 0 ? emptyValue : new Uint8Array(kv.value),
    lease: kv.lease,
  };
}

const emptyValue = new Uint8Array(0);

/** Reads values and history through the overlay. */
export class History {
  constructor(
    private readonly reader: BackendReader,
    readonly buffer: WriteBuffer,
  ) {}

  /** The value of a record the index holds. O(log records) in the backend, O(1) if buffered. */
  value(record: Record): BinaryString {
    if (record.version === 0) return '';
    const buffered = this.buffer.revisions.get(record.main);
    if (buffered !== undefined) return toBinaryString(bufferedValue(buffered, record.sub));
    return toBinaryString(decodeKeyValue(this.stored(record)).value);
  }

  /** The value as fresh bytes (what the API returns). */
  valueBytes(record: Record): Uint8Array {
    if (record.version === 0) return new Uint8Array(0);
    // Plain Uint8Array copies: the caller owns them, and the backend may hand out its own
    // subclass (Node's Buffer).
    const buffered = this.buffer.revisions.get(record.main);
    if (buffered !== undefined) return new Uint8Array(bufferedValue(buffered, record.sub));
    return new Uint8Array(decodeKeyValue(this.stored(record)).value);
  }

  private stored(record: Record): Uint8Array {
    if (this.buffer.clearing) throw new Error(`history: ${record.main}.${record.sub} is not buffered while the backend is being replaced`);
    const bytes = this.reader.get('key', revisionKey(record.main, record.sub));
    if (bytes === undefined) throw new Error(`history: the backend lost the value of revision ${record.main}.${record.sub}`);
    return bytes;
  }

  /**
   * Visits every stored record with main revision in [from, to], in revision order, until
   * `visit` returns false. O(records visited) plus one backend seek.
   */
  forEach(from: number, to: number, visit: (record: StoredRecord) => boolean | void): void {
    if (from > to) return;
    const { revisions, deleted, clearing } = this.buffer;
    let firstBuffered = Infinity;
    for (const main of revisions.keys()) {
      firstBuffered = main;
      break;
    }
    const backendTo = Math.min(to, firstBuffered - 1);
    if (!clearing && from <= backendTo) {
      let stopped = false;
      this.reader.range('key', revisionKey(Math.max(from, 0), 0), revisionKey(backendTo + 1, 0), (k, v) => {
        const record = decodeStoredRecord(k, v);
        if (deleted.size > 0 && deleted.has(revisionId(record.main, record.sub))) return true;
        if (visit(record) === false) stopped = true;
        return !stopped;
      });
      if (stopped) return;
    }
    for (const [main, buffered] of revisions) {
      if (main < from) continue;
      if (main > to) return;
      for (const record of buffered.records) {
        if (deleted.size > 0 && deleted.has(revisionId(main, record.sub))) continue;
        if (visit({ ...record, value: record.version === 0 ? new Uint8Array(0) : new Uint8Array(bufferedValue(buffered, record.sub)) }) === false) return;
      }
    }
  }
}
