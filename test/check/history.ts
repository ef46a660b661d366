// The shape of a recorded client history, shared by every place that records one (the
// simulator, the torture run against real processes, the browser e2e tests) and every
// checker that reads one. Plain data: it serializes to JSON, so a failing run can be saved
// and checked again offline.

/** What a client asked for. Keys and values are strings (the workloads use printable ones). */
export type OpInput =
  | { f: 'get'; key: string }
  | { f: 'put'; key: string; value: string }
  | { f: 'delete'; key: string }
  /** A txn: if the key's value equals `expected` (null: the key does not exist) put `value`, else get the key. */
  | { f: 'cas'; key: string; expected: string | null; value: string }
  /** A range over every key that starts with `prefix`. */
  | { f: 'range'; prefix: string };

/** What the cluster answered. `revision` is the response header's revision. */
export type OpOutput =
  | { f: 'get'; value: string | null; revision: number }
  | { f: 'put'; revision: number }
  | { f: 'delete'; deleted: number; revision: number }
  /** `value` is the key's value read by the else branch when the compare failed. */
  | { f: 'cas'; succeeded: boolean; value: string | null; revision: number }
  | { f: 'range'; kvs: Record<string, string>; revision: number };

/**
 * One operation from invocation to completion. Times are milliseconds from one monotonic
 * clock shared by every client of the run. An operation whose outcome is unknown (timed out,
 * connection lost mid-request) has `ret: Infinity` and `output: null`: it may have taken
 * effect at any point after `call`, or never. An operation that certainly failed (refused
 * before it could take effect) is left out of the history.
 */
export interface HistoryOp {
  id: number;
  client: number;
  call: number;
  ret: number;
  input: OpInput;
  output: OpOutput | null;
}

/** One event as a watcher received it. */
export interface WatchEvent {
  type: 'put' | 'delete';
  key: string;
  /** The new value for a put; null for a delete. */
  value: string | null;
  modRevision: number;
}

/**
 * Everything one watcher received, in delivery order, across reconnects. A watcher that
 * reconnects resumes from the revision after the last one it received; each reconnect
 * starts a new element of `responses` (a response is never split across reconnects).
 */
export interface WatchRecord {
  client: number;
  prefix: string;
  /** The revision the watch started from (etcd's start_revision). */
  startRevision: number;
  responses: { events: WatchEvent[] }[];
  /** True when the watcher was cancelled by compaction: the checker then skips the gap it reports. */
  compactedAt?: number;
}

/** The whole store's state read at the end of a run, from one member. */
export interface FinalState {
  member: string;
  revision: number;
  kvs: Record<string, string>;
}

/** Every checker answers the same way: ok, a violation with a witness, or gave up (search cap). */
export type CheckResult =
  | { ok: true; checked: number }
  | { ok: false; checked: number; anomaly: string; witness: unknown }
  | { ok: 'unknown'; checked: number; reason: string };
