// The few filesystem operations fs-wal uses, behind an interface so tests can count syncs or
// inject faults. The default is real node:fs with fdatasync.

import { writeSync } from 'node:fs';
import * as fsp from 'node:fs/promises';

/** Writes up to this size go through on the calling thread (see NodeWalFile.write); larger ones through the thread pool. */
export const syncWriteBytesMax = 256 * 1024;

export interface WalFile {
  readonly path: string;
  /** Writes all of `data` at `position`. */
  write(data: Uint8Array, position: number): Promise<void>;
  /** fdatasync: the data and the metadata needed to read it back are on stable storage. */
  datasync(): Promise<void>;
  /** fsync: like datasync, plus all metadata. */
  sync(): Promise<void>;
  close(): Promise<void>;
}

export interface WalFs {
  /** 'create' fails if the file exists (O_EXCL); 'update' opens an existing file for writing. */
  open(path: string, mode: 'create' | 'update'): Promise<WalFile>;
  readFile(path: string): Promise<Uint8Array>;
  /** Creates `path` holding `data`, failing with code EEXIST if it exists. Not synced. */
  writeNewFile(path: string, data: Uint8Array): Promise<void>;
  readdir(dir: string): Promise<string[]>;
  mkdirp(dir: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  /** Hard link; fails with code EEXIST if `to` exists. The atomic "create with content". */
  link(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  /** fsync a directory, making renames, creations and deletions in it durable. */
  syncDir(dir: string): Promise<void>;
}

class NodeWalFile implements WalFile {
  readonly path: string;
  private readonly handle: fsp.FileHandle;

  constructor(path: string, handle: fsp.FileHandle) {
    this.path = path;
    this.handle = handle;
  }

  async write(data: Uint8Array, position: number): Promise<void> {
    let done = 0;
    while (done < data.length) {
      // A small frame reaches the page cache in microseconds on this thread; the thread pool's
      // round trip (hand-off, wake-up, completion callback) costs more CPU than that, and a loop
      // turn before the fdatasync can start.
      const bytesWritten =
        data.length <= syncWriteBytesMax
          ? writeSync(this.handle.fd, data, done, data.length - done, position + done)
          : (await this.handle.write(data, done, data.length - done, position + done)).bytesWritten;
      if (bytesWritten <= 0) throw new Error(`write to ${this.path} at byte ${position + done} made no progress`);
      done += bytesWritten;
    }
  }

  datasync(): Promise<void> {
    return this.handle.datasync();
  }

  sync(): Promise<void> {
    return this.handle.sync();
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}

export const nodeWalFs: WalFs = {
  async open(path, mode) {
    return new NodeWalFile(path, await fsp.open(path, mode === 'create' ? 'wx' : 'r+'));
  },
  async readFile(path) {
    const b = await fsp.readFile(path);
    return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  },
  async writeNewFile(path, data) {
    await fsp.writeFile(path, data, { flag: 'wx' });
  },
  async readdir(dir) {
    return fsp.readdir(dir);
  },
  async mkdirp(dir) {
    await fsp.mkdir(dir, { recursive: true });
  },
  rename: (from, to) => fsp.rename(from, to),
  link: (from, to) => fsp.link(from, to),
  unlink: (path) => fsp.unlink(path),
  async syncDir(dir) {
    const handle = await fsp.open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  },
};
