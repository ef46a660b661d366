// The encoding of replicated MVCC requests in Raft entries: msgpack, with int64 lease ids as
// BigInt and byte strings as Uint8Array. Entries are written once and decoded on every member.

import { Packr } from 'msgpackr';
import type { ApplyRequest } from '../mvcc/types.ts';

const packr = new Packr({ int64AsType: 'bigint', useRecords: false, moreTypes: true });

/** The first byte of every encoded request: lets a later format be told apart. */
export const requestFormatVersion = 1;

export function encodeRequest(req: ApplyRequest): Uint8Array {
  const body = packr.pack(req);
  const out = new Uint8Array(body.length + 1);
  out[0] = requestFormatVersion;
  out.set(body, 1);
  return out;
}

export class RequestDecodeError extends Error {}

export function decodeRequest(data: Uint8Array): ApplyRequest {
  if (data.length < 2 || data[0] !== requestFormatVersion) {
    throw new RequestDecodeError(`request format ${data[0]} is not ${requestFormatVersion}`);
  }
  let req: unknown;
  try {
    req = packr.unpack(data.subarray(1));
  } catch (err) {
    throw new RequestDecodeError(`undecodable request: ${(err as Error).message}`);
  }
  if (!req || typeof req !== 'object' || typeof (req as ApplyRequest).kind !== 'string' || typeof (req as ApplyRequest).request !== 'object') {
    throw new RequestDecodeError('request without kind');
  }
  return req as ApplyRequest;
}
