// The simulated application: a key/value map fed by committed entries, so snapshots carry
// real data. A rolling hash over every applied entry (index, term, payload) lets the checker
// compare two members' states at the same index in O(1), across snapshots and restarts.

import { MvccStateMachine } from '../../src/mvcc/state-machine.ts';
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

  /** Apply a committed entry's payload. `index` must be appliedIndex + 1. */
  apply(index: number, term: number, payload: string): void {
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
    this.chainHash = hashString32(`${index}/${term}/${payload}`, this.chainHash);
    this.appliedIndex = index;
  }

  /** The state's image for a snapshot at appliedIndex. */
  snapshotData(): Uint8Array {
    const image: SnapshotImage = { index: this.appliedIndex, chainHash: this.chainHash, kv: [...this.kv] };
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
    let image: SnapshotImage = { index, chainHash: 0, kv: [] };
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
    this.mvcc = mvcc;
    this.chainHash = image.chainHash;
    this.appliedIndex = image.index;
  }

  get(key: string): string | undefined {
    return this.kv.get(key);
  }
}
