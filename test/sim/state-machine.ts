// The simulated application: a key/value map fed by committed entries, so snapshots carry
// real data. A rolling hash over every applied entry (index, term, payload) lets the checker
// compare two members' states at the same index in O(1), across snapshots and restarts.
// Client operations of the recorded history (`op <json>` payloads) go through the real MVCC
// store as etcd's put, delete-range and txn requests; reads are answered from it.

import { prefixRange } from '../../src/client/bytes.ts';
import { MvccStateMachine } from '../../src/mvcc/state-machine.ts';
import { CompareResult, CompareTarget, type TxnRequest } from '../../src/mvcc/types.ts';
import type { OpInput, OpOutput } from '../check/history.ts';
import { hashString32 } from './prng.ts';

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();

export function encodeText(text: string): Uint8Array {
  return textEncoder.encode(text);
}

export function decodeText(data: Uint8Array): string {
  return textDecoder.decode(data);
}

interface SnapshotImage {
  index: number;
  chainHash: number;
  kv: [string, string][];
  /** Ids of the client operations applied so far (each is applied at most once). */
  appliedOps: number[];
}

/** A client write of the recorded history, as a log entry carries it. */
export interface OpProposal {
  id: number;
  input: Extract<OpInput, { f: 'put' | 'delete' | 'cas' }>;
}

const opPrefix = 'op ';

export function encodeOpProposal(proposal: OpProposal): string {
  return opPrefix + JSON.stringify(proposal);
}

/** The proposal in a payload, or null for anything else (including a corrupted one). */
function decodeOpProposal(payload: string): OpProposal | null {
  if (!payload.startsWith(opPrefix)) return null;
  try {
    return JSON.parse(payload.slice(opPrefix.length)) as OpProposal;
  } catch {
    return null;
  }
}

/** What applying one entry did for a client operation: its id and etcd's answer. */
export interface AppliedOp {
  id: number;
  output: OpOutput;
}

export class KvStateMachine {
  private kv = new Map<string, string>();
  /**
   * The real MVCC store, fed the same puts: replicas that applied the same entries must report
   * the same HashKV (checked when the run ends), across snapshots, restores and restarts.
   */
  mvcc = new MvccStateMachine();
  /** Index of the last applied entry (or the restored snapshot's index). */
  appliedIndex = 0;
  /** Rolling hash of every entry applied up to appliedIndex; equal states have equal hashes. */
  chainHash = 0;
  /**
   * Client operations already applied. The simulated network duplicates messages (TCP would
   * not), so a forwarded proposal can be appended twice; the application applies an operation
   * once, as a client session would, so the history sees one effect per operation.
   */
  private appliedOps = new Set<number>();

  /**
   * Apply a committed entry's payload. `index` must be appliedIndex + 1. Returns the answer
   * when the entry is a client operation applied for the first time.
   */
  apply(index: number, term: number, payload: string): AppliedOp | null {
    if (index !== this.appliedIndex + 1) {
      throw new Error(`state machine: apply of index ${index} after ${this.appliedIndex} (must be contiguous)`);
    }
    // "put <key> <value>" writes; anything else (no-ops, markers, conf changes) only advances.
    if (payload.startsWith('put ')) {
      const [, key, value] = payload.split(' ');
      this.kv.set(key, value);
      const r = this.mvcc.apply({ kind: 'put', request: { key: textEncoder.encode(key), value: textEncoder.encode(value) } }, { nowMs: 0 });
      if (!r.ok) throw new Error(`state machine: mvcc put of ${key} at ${index} failed: ${r.error.message}`);
    }
    const op = decodeOpProposal(payload);
    const applied = op !== null && !this.appliedOps.has(op.id) ? { id: op.id, output: this.applyOp(op, index) } : null;
    if (applied !== null) this.appliedOps.add(applied.id);
    this.chainHash = hashString32(`${index}/${term}/${payload}`, this.chainHash);
    this.appliedIndex = index;
    return applied;
  }

  private applyOp({ input }: OpProposal, index: number): OpOutput {
    const key = textEncoder.encode(input.key);
    const fail = (what: string): never => {
      throw new Error(`state machine: mvcc ${what} of ${input.key} at ${index} failed`);
    };
    switch (input.f) {
      case 'put': {
        const r = this.mvcc.apply({ kind: 'put', request: { key, value: textEncoder.encode(input.value) } }, { nowMs: 0 });
        return r.ok ? { f: 'put', revision: r.response.header.revision } : fail('put');
      }
      case 'delete': {
        const r = this.mvcc.apply({ kind: 'deleteRange', request: { key } }, { nowMs: 0 });
        return r.ok ? { f: 'delete', deleted: r.response.deleted, revision: r.response.header.revision } : fail('delete');
      }
      case 'cas': {
        // etcd's idiom: compare the value (or, for "absent", version 0), put on success, get on failure.
        const compare =
          input.expected === null
            ? { result: CompareResult.EQUAL, target: CompareTarget.VERSION, key, version: 0 }
            : { result: CompareResult.EQUAL, target: CompareTarget.VALUE, key, value: textEncoder.encode(input.expected) };
        const txn: TxnRequest = { compare: [compare], success: [{ requestPut: { key, value: textEncoder.encode(input.value) } }], failure: [{ requestRange: { key } }] };
        const r = this.mvcc.apply({ kind: 'txn', request: txn }, { nowMs: 0 });
        if (!r.ok) return fail('txn');
        const { succeeded, responses, header } = r.response;
        const read = !succeeded && 'responseRange' in responses[0] ? responses[0].responseRange.kvs[0] : undefined;
        return { f: 'cas', succeeded, value: read === undefined ? null : textDecoder.decode(read.value), revision: header.revision };
      }
    }
  }

  /** A read of the MVCC store as it is now (the caller decides whether that is linearizable). */
  read(input: Extract<OpInput, { f: 'get' | 'range' }>): OpOutput {
    if (input.f === 'get') {
      const r = this.mvcc.range({ key: textEncoder.encode(input.key) });
      const kv = r.kvs[0];
      return { f: 'get', value: kv === undefined ? null : textDecoder.decode(kv.value), revision: r.header.revision };
    }
    const r = this.mvcc.range(prefixRange(textEncoder.encode(input.prefix)));
    const kvs: Record<string, string> = {};
    for (const kv of r.kvs) kvs[textDecoder.decode(kv.key)] = textDecoder.decode(kv.value);
    return { f: 'range', kvs, revision: r.header.revision };
  }

  /** The state's image for a snapshot at appliedIndex. */
  snapshotData(): Uint8Array {
    const image: SnapshotImage = { index: this.appliedIndex, chainHash: this.chainHash, kv: [...this.kv], appliedOps: [...this.appliedOps] };
    const json = textEncoder.encode(JSON.stringify(image));
    const mvcc = this.mvcc.snapshot().encode();
    // [u32 JSON bytes][JSON image][MVCC snapshot]
    const out = new Uint8Array(4 + json.length + mvcc.length);
    new DataView(out.buffer).setUint32(0, json.length);
    out.set(json, 4);
    out.set(mvcc, 4 + json.length);
    return out;
  }

  /** Replace the whole state with a snapshot image taken at `index`. */
  restore(data: Uint8Array, index: number): void {
    let image: SnapshotImage = { index, chainHash: 0, kv: [], appliedOps: [] };
    const mvcc = new MvccStateMachine();
    if (data.byteLength > 0) {
      const jsonBytes = new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(0);
      image = JSON.parse(textDecoder.decode(data.subarray(4, 4 + jsonBytes))) as SnapshotImage;
      mvcc.restore(data.subarray(4 + jsonBytes));
    }
    if (image.index !== index) {
      throw new Error(`state machine: snapshot image is at index ${image.index} but its metadata says ${index}`);
    }
    this.kv = new Map(image.kv);
    this.appliedOps = new Set(image.appliedOps);
    this.mvcc = mvcc;
    this.chainHash = image.chainHash;
    this.appliedIndex = image.index;
  }

  get(key: string): string | undefined {
    return this.kv.get(key);
  }
}
