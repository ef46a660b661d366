// An in-memory WalFs that knows what a crash keeps: file contents as of their last
// fsync/fdatasync and directory entries as of the directory's last fsync. crash() drops the
// rest, optionally landing part of the unsynced writes (a torn write). Single directory tree,
// paths compared as strings.

import type { WalFile, WalFs } from '../../adapters/storage/fs-wal/fs.ts';

interface Inode {
  /** What reads see. */
  data: Uint8Array;
  /** What survives a crash. */
  durable: Uint8Array;
  /** Writes since the last sync, in order: a crash may land a prefix of them, the last one torn. */
  pending: Array<{ position: number; bytes: Uint8Array }>;
}

function errno(code: string, path: string): Error {
  return Object.assign(new Error(`${code}: ${path}`), { code });
}

function dirOf(path: string): string {
  return path.slice(0, path.lastIndexOf('/'));
}

export class SimFs implements WalFs {
  /** Directory entries as seen now, and as of each directory's last fsync. */
  private names = new Map<string, Inode>();
  private durableNames = new Map<string, Inode>();
  private dirs = new Set<string>();
  /** Bumped by crash(): handles from before it fail, like file descriptors of a dead process. */
  private generation = 0;
  syncs = 0;
  /**
   * Awaited before every unlink and directory fsync when set: a test holds a background
   * deletion at a chosen step (a never-resolving promise holds it for good).
   */
  beforeDirOp: ((op: 'unlink' | 'syncDir', path: string) => Promise<void>) | null = null;

  /**
   * This disk as one process sees it: once crash() runs, every call through the view fails, as
   * a dead process does nothing more (a storage's background work must not reach the disk that
   * the next process opens).
   */
  process(): WalFs {
    const generation = this.generation;
    // Each call checks, as it reaches the disk (after a held unlink or directory fsync), that no
    // crash came in between.
    const guard =
      <A extends [string, ...unknown[]], R>(call: (...args: A) => Promise<R>, held?: 'unlink' | 'syncDir') =>
      async (...args: A): Promise<R> => {
        if (held !== undefined && this.beforeDirOp) await this.beforeDirOp(held, args[0]);
        if (generation !== this.generation) throw errno('EBADF', args[0]);
        return call.apply(this, args);
      };
    return {
      open: guard(this.open),
      readFile: guard(this.readFile),
      writeNewFile: guard(this.writeNewFile),
      readdir: guard(this.readdir),
      mkdirp: guard(this.mkdirp),
      rename: guard(this.rename),
      link: guard(this.link),
      unlink: guard(this.unlink, 'unlink'),
      syncDir: guard(this.syncDir, 'syncDir'),
    };
  }

  /**
   * Forgets everything not synced. `random` decides, per file, how many unsynced writes land
   * and how much of the next one (sector-sized pieces, in any order).
   */
  crash(random: () => number): void {
    this.generation++;
    const inodes = new Set(this.durableNames.values());
    for (const inode of inodes) {
      let data: Uint8Array = inode.durable.slice();
      const landed = Math.floor(random() * (inode.pending.length + 1));
      inode.pending.forEach((w, i) => {
        if (i < landed) data = writeInto(data, w.position, w.bytes);
        else if (i === landed) {
          for (let s = 0; s < w.bytes.length; s += 512) {
            if (random() < 0.5) data = writeInto(data, w.position + s, w.bytes.subarray(s, s + 512));
          }
        }
      });
      inode.data = data;
      inode.durable = data.slice();
      inode.pending = [];
    }
    this.names = new Map(this.durableNames);
  }

  async open(path: string, mode: 'create' | 'update'): Promise<WalFile> {
    let inode = this.names.get(path);
    if (mode === 'create') {
      if (inode) throw errno('EEXIST', path);
      this.requireDir(path);
      inode = { data: new Uint8Array(0), durable: new Uint8Array(0), pending: [] };
      this.names.set(path, inode);
    } else if (!inode) throw errno('ENOENT', path);
    const node = inode;
    const generation = this.generation;
    const alive = () => {
      if (generation !== this.generation) throw errno('EBADF', path);
    };
    const sync = async () => {
      alive();
      this.syncs++;
      node.durable = node.data.slice();
      node.pending = [];
    };
    return {
      path,
      write: async (data, position) => {
        alive();
        const bytes = data.slice();
        node.data = writeInto(node.data, position, bytes);
        node.pending.push({ position, bytes });
      },
      datasync: sync,
      sync,
      close: async () => {},
    };
  }

  async readFile(path: string): Promise<Uint8Array> {
    const inode = this.names.get(path);
    if (!inode) throw errno('ENOENT', path);
    return inode.data.slice();
  }

  async writeNewFile(path: string, data: Uint8Array): Promise<void> {
    const file = await this.open(path, 'create');
    await file.write(data, 0);
  }

  async readdir(dir: string): Promise<string[]> {
    if (!this.dirs.has(dir)) throw errno('ENOENT', dir);
    return [...this.names.keys()].filter((p) => dirOf(p) === dir).map((p) => p.slice(dir.length + 1));
  }

  async mkdirp(dir: string): Promise<void> {
    this.dirs.add(dir);
  }

  async rename(from: string, to: string): Promise<void> {
    const inode = this.names.get(from);
    if (!inode) throw errno('ENOENT', from);
    this.names.delete(from);
    this.names.set(to, inode);
  }

  async link(from: string, to: string): Promise<void> {
    const inode = this.names.get(from);
    if (!inode) throw errno('ENOENT', from);
    if (this.names.has(to)) throw errno('EEXIST', to);
    this.names.set(to, inode);
  }

  async unlink(path: string): Promise<void> {
    if (!this.names.delete(path)) throw errno('ENOENT', path);
  }

  async syncDir(dir: string): Promise<void> {
    for (const [p] of this.durableNames) if (dirOf(p) === dir) this.durableNames.delete(p);
    for (const [p, inode] of this.names) if (dirOf(p) === dir) this.durableNames.set(p, inode);
  }

  private requireDir(path: string): void {
    if (!this.dirs.has(dirOf(path))) throw errno('ENOENT', path);
  }
}

/** Writes `bytes` at `position`, growing (a copy of) `data` if needed; returns the result. */
function writeInto(data: Uint8Array, position: number, bytes: Uint8Array): Uint8Array {
  let out = data;
  if (position + bytes.length > data.length) {
    out = new Uint8Array(position + bytes.length);
    out.set(data);
  }
  out.set(bytes, position);
  return out;
}
