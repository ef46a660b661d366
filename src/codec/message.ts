// The wire encoding of Raft messages: one format-version byte, then a msgpack array of the
// message's fields in a fixed order. Decoding checks every field's type and range and builds
// a fresh Message, so a peer's bytes reach Raft only as a well-formed message or not at all.
// Byte payloads (entry data, snapshot data, context) are views into the input, not copies:
// the caller must not reuse the input buffer while the message is alive.

import { Packr } from 'msgpackr';
import type { ConfState, Entry, Message, Snapshot } from '../raft/types.ts';
import { EntryType, MessageType, isLocalMessage } from '../raft/types.ts';

/** The first byte of every encoded message: lets a later format be told apart. */
export const messageFormatVersion = 1;

const packr = new Packr({ useRecords: false, mapsAsObjects: true });

/** Why bytes are not a message; `reason` is fit for a log line. */
export class MessageDecodeError extends Error {
  constructor(readonly reason: string) {
    super(`undecodable raft message: ${reason}`);
  }
}

const messageFieldsCount = 12;
const entryFieldsCount = 4;
const snapshotFieldsCount = 4;
const confStateFieldsCount = 5;

const networkMessageTypes: ReadonlySet<number> = new Set(
  Object.values(MessageType).filter((v): v is number => typeof v === 'number' && !isLocalMessage(v)),
);
const entryTypes: ReadonlySet<number> = new Set(Object.values(EntryType).filter((v): v is number => typeof v === 'number'));

/** Encodes a network message. Throws on a local message type: those never leave a member. */
export function encodeMessage(m: Message): Uint8Array {
  if (isLocalMessage(m.type)) throw new Error(`raft message type ${m.type} is local and is never sent over a network`);
  const entries = m.entries.map((e) => [e.term, e.index, e.type, e.data]);
  const s = m.snapshot;
  const snapshot =
    s === null
      ? null
      : [
          s.metadata.index,
          s.metadata.term,
          [s.metadata.confState.voters, s.metadata.confState.learners, s.metadata.confState.votersOutgoing, s.metadata.confState.learnersNext, s.metadata.confState.autoLeave],
          s.data,
        ];
  const body = packr.pack([m.type, m.to, m.from, m.term, m.logTerm, m.index, entries, m.commit, m.reject, m.rejectHint, snapshot, m.context]);
  const out = new Uint8Array(body.length + 1);
  out[0] = messageFormatVersion;
  out.set(body, 1);
  return out;
}

/** Decodes and validates a message; throws MessageDecodeError (and nothing else) on bad input. */
export function decodeMessage(bytes: Uint8Array): Message {
  if (bytes.length < 2) throw new MessageDecodeError(`${bytes.length} bytes is too short`);
  if (bytes[0] !== messageFormatVersion) throw new MessageDecodeError(`format version ${bytes[0]} is not ${messageFormatVersion}`);
  let raw: unknown;
  try {
    raw = packr.unpack(bytes.subarray(1));
  } catch (err) {
    throw new MessageDecodeError(`bad msgpack: ${err instanceof Error ? err.message : String(err)}`);
  }
  return toMessage(raw);
}

function toMessage(raw: unknown): Message {
  const f = tuple(raw, messageFieldsCount, 'message');
  const type = f[0];
  if (typeof type !== 'number' || !networkMessageTypes.has(type)) {
    throw new MessageDecodeError(typeof type === 'number' && Number.isInteger(type) && isLocalMessage(type) ? `message type ${type} is local` : `unknown message type ${describeDecoded(type)}`);
  }
  const to = id(f[1], 'to');
  const from = id(f[2], 'from');
  const term = uint(f[3], 'term');
  const logTerm = uint(f[4], 'logTerm');
  const index = uint(f[5], 'index');
  const rawEntries = f[6];
  if (!Array.isArray(rawEntries)) throw new MessageDecodeError(`entries is ${describeDecoded(rawEntries)}, not an array`);
  const entries = rawEntries.map((e, i) => toEntry(e, i));
  const commit = uint(f[7], 'commit');
  if (typeof f[8] !== 'boolean') throw new MessageDecodeError(`reject is ${describeDecoded(f[8])}, not a boolean`);
  const reject = f[8];
  const rejectHint = uint(f[9], 'rejectHint');
  const snapshot = f[10] === null ? null : toSnapshot(f[10]);
  if ((snapshot !== null) !== (type === MessageType.Snap)) {
    throw new MessageDecodeError(snapshot === null ? 'snapshot message without a snapshot' : `message type ${type} carries a snapshot`);
  }
  const context = f[11] === null ? null : bytesOf(f[11], 'context');
  return { type, to, from, term, logTerm, index, entries, commit, reject, rejectHint, snapshot, context };
}

function toEntry(raw: unknown, i: number): Entry {
  const f = tuple(raw, entryFieldsCount, `entry ${i}`);
  const type = f[2];
  if (typeof type !== 'number' || !entryTypes.has(type)) throw new MessageDecodeError(`entry ${i} has unknown type ${describeDecoded(type)}`);
  return { term: uint(f[0], `entry ${i} term`), index: uint(f[1], `entry ${i} index`), type, data: bytesOf(f[3], `entry ${i} data`) };
}

function toSnapshot(raw: unknown): Snapshot {
  const f = tuple(raw, snapshotFieldsCount, 'snapshot');
  const cs = tuple(f[2], confStateFieldsCount, 'snapshot conf state');
  if (typeof cs[4] !== 'boolean') throw new MessageDecodeError(`snapshot conf state autoLeave is ${describeDecoded(cs[4])}, not a boolean`);
  const confState: ConfState = {
    voters: ids(cs[0], 'voters'),
    learners: ids(cs[1], 'learners'),
    votersOutgoing: ids(cs[2], 'votersOutgoing'),
    learnersNext: ids(cs[3], 'learnersNext'),
    autoLeave: cs[4],
  };
  return {
    metadata: { index: uint(f[0], 'snapshot index'), term: uint(f[1], 'snapshot term'), confState },
    data: bytesOf(f[3], 'snapshot data'),
  };
}

function tuple(raw: unknown, length: number, what: string): unknown[] {
  if (!Array.isArray(raw)) throw new MessageDecodeError(`${what} is ${describeDecoded(raw)}, not an array`);
  if (raw.length !== length) throw new MessageDecodeError(`${what} has ${raw.length} fields, expected ${length}`);
  return raw;
}

function uint(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new MessageDecodeError(`${what} is ${describeDecoded(v)}, not a safe non-negative integer`);
  return v;
}

function id(v: unknown, what: string): number {
  const n = uint(v, what);
  if (n === 0) throw new MessageDecodeError(`${what} is 0, not a member id`);
  return n;
}

function ids(v: unknown, what: string): number[] {
  if (!Array.isArray(v)) throw new MessageDecodeError(`snapshot ${what} is ${describeDecoded(v)}, not an array`);
  return v.map((x, i) => id(x, `snapshot ${what}[${i}]`));
}

/** A plain Uint8Array view of the same bytes (msgpackr hands out Buffers in Node). */
function bytesOf(v: unknown, what: string): Uint8Array {
  if (!(v instanceof Uint8Array)) throw new MessageDecodeError(`${what} is ${describeDecoded(v)}, not bytes`);
  return v.constructor === Uint8Array ? v : new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

/**
 * Describes a decoded value for an error message without calling anything on it: a peer's
 * map can carry keys such as `constructor` or `toString`.
 */
export function describeDecoded(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (v instanceof Uint8Array) return `${v.byteLength} bytes`;
  if (typeof v === 'object' || typeof v === 'function') {
    const tag = Object.prototype.toString.call(v).slice(8, -1);
    return `${/^[AEIOU]/.test(tag) ? 'an' : 'a'} ${tag}`;
  }
  if (typeof v === 'string') return `a string of ${v.length}`;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint' || v === undefined) return `${typeof v} ${String(v)}`;
  return typeof v;
}
