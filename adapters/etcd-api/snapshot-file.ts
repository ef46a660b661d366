// The file `etcdctl snapshot save` writes from meshkv. etcdctl accepts a snapshot stream only if
// its length is a multiple of 512 bytes (a bolt db's page size) plus a 32-byte sha256 of the
// rest, so meshkv's store image is framed and padded:
//
//   magic (16 bytes) | image length (uint64 BE) | image | zero padding to 512n bytes | sha256 (32)

import { createHash } from 'node:crypto';

export const snapshotFileMagic = Buffer.from('meshkv.snapshot1', 'ascii');
const pageBytes = 512;
const digestBytes = 32;
const headerBytes = snapshotFileMagic.length + 8;

export class SnapshotFileError extends Error {}

/** Frames a store image (MvccStateMachine.snapshot().encode()) as the snapshot stream's bytes. */
export function encodeSnapshotFile(image: Uint8Array): Buffer {
  const bodyBytes = Math.ceil((headerBytes + image.length) / pageBytes) * pageBytes;
  const out = Buffer.alloc(bodyBytes + digestBytes);
  snapshotFileMagic.copy(out, 0);
  out.writeBigUInt64BE(BigInt(image.length), snapshotFileMagic.length);
  out.set(image, headerBytes);
  createHash('sha256').update(out.subarray(0, bodyBytes)).digest().copy(out, bodyBytes);
  return out;
}

/** The store image inside a saved snapshot file, after checking its digest and framing. */
export function decodeSnapshotFile(file: Uint8Array): Uint8Array {
  const buf = Buffer.from(file.buffer, file.byteOffset, file.byteLength);
  if (buf.length < headerBytes + digestBytes || (buf.length - digestBytes) % pageBytes !== 0) {
    throw new SnapshotFileError(`snapshot file of ${buf.length} bytes is not a meshkv snapshot (wrong size)`);
  }
  const body = buf.subarray(0, buf.length - digestBytes);
  if (!createHash('sha256').update(body).digest().equals(buf.subarray(body.length))) {
    throw new SnapshotFileError('snapshot file: sha256 mismatch (the file is damaged or truncated)');
  }
  if (!body.subarray(0, snapshotFileMagic.length).equals(snapshotFileMagic)) {
    throw new SnapshotFileError('snapshot file: not a meshkv snapshot (an etcd bolt db snapshot cannot be restored into meshkv)');
  }
  const imageBytes = Number(body.readBigUInt64BE(snapshotFileMagic.length));
  if (headerBytes + imageBytes > body.length) throw new SnapshotFileError(`snapshot file: image length ${imageBytes} exceeds the file`);
  return body.subarray(headerBytes, headerBytes + imageBytes);
}
