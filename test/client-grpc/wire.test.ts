// What the gRPC client puts on the wire where etcd reads more into it than proto3 says: etcd
// (gogo protobuf) turns an encoded empty range_end into a non-nil empty slice, which its index
// takes as "every key >= key". A single-key request must leave the field out.

import { describe, expect, it } from 'vitest';
import * as wire from '../../adapters/etcd-api/client-wire.ts';
import { packageDefinition } from '../../adapters/etcd-api/proto.ts';

type Serialize = { requestSerialize: (w: wire.Wire) => Buffer };

function serialize(service: string, method: string, w: wire.Wire): Buffer {
  return (packageDefinition[`etcdserverpb.${service}`] as unknown as Record<string, Serialize>)[method].requestSerialize(w);
}

/** The field numbers present at the top level of a protobuf message. */
function fieldNumbers(bytes: Uint8Array): number[] {
  const fields: number[] = [];
  let i = 0;
  const varint = () => {
    let v = 0;
    for (let shift = 0; ; shift += 7) {
      const b = bytes[i++];
      v += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return v;
    }
  };
  while (i < bytes.length) {
    const tag = varint();
    fields.push(Math.floor(tag / 8));
    const type = tag & 7;
    if (type === 0) varint();
    else if (type === 2) {
      const length = varint();
      i += length;
    }
    else throw new Error(`unexpected wire type ${type}`);
  }
  return fields;
}

const key = new TextEncoder().encode('k');
const RANGE_END = 2; // range_end's field number in RangeRequest, DeleteRangeRequest, WatchCreateRequest

describe('single-key requests carry no range_end', () => {
  it('Range and DeleteRange', () => {
    expect(fieldNumbers(serialize('KV', 'Range', wire.rangeRequest({ key })))).not.toContain(RANGE_END);
    expect(fieldNumbers(serialize('KV', 'DeleteRange', wire.deleteRangeRequest({ key })))).not.toContain(RANGE_END);
    expect(fieldNumbers(serialize('KV', 'Range', wire.rangeRequest({ key, rangeEnd: new Uint8Array([0]) })))).toContain(RANGE_END);
  });

  it('a Txn compare on one key', () => {
    const txn = serialize('KV', 'Txn', wire.txnRequest({ compare: [{ result: 0, target: 2, key, modRevision: 0 }], success: [], failure: [] }));
    // Txn field 1 is the compare; inside it, range_end is field 64.
    const compare = txn.subarray(2, 2 + txn[1]);
    expect(txn[0]).toBe(0x0a);
    expect(fieldNumbers(compare)).not.toContain(64);
  });
});
