// Disk faults for fault-injection runs: a WalFs that passes every call to another one, except
// that, while told to, its syncs wait first (a slow disk) or its writes fail as on a full disk.
// A member uses it only when started with --experimental-fault-injection; without the flag
// the WAL writes through nodeWalFs directly, so production behaviour is unchanged.

import type { WalFile, WalFs } from './fs.ts';

/** What the fault endpoint may set. A stalled sync still syncs: the delay comes first. */
export interface DiskFaultState {
  /** Every fdatasync/fsync of a WAL file or directory waits this long first; 0: none. */
  syncDelayMs: number;
  /** Writes and file creations fail with ENOSPC, as on a full disk. */
  full: boolean;
}

/** The WAL's window into the disk faults; the endpoint changes `state`. */
export class DiskFaults {
  state: DiskFaultState = { syncDelayMs: 0, full: false };
  /** Writes refused with ENOSPC so far, and syncs delayed (for the endpoint's report). */
  refusedWrites = 0;
  delayedSyncs = 0;

  /** Sets the faults; a field left out keeps its value. Throws on a bad value. */
  set(change: Partial<DiskFaultState>): void {
    const next = { ...this.state, ...change };
    if (!Number.isSafeInteger(next.syncDelayMs) || next.syncDelayMs < 0 || next.syncDelayMs > syncDelayMsMax) {
      throw new RangeError(`a sync delay must be an integer from 0 to ${syncDelayMsMax} ms, not ${next.syncDelayMs}`);
    }
    if (typeof next.full !== 'boolean') throw new TypeError(`"full" must be true or false, not ${JSON.stringify(next.full)}`);
    this.state = next;
  }

  wrap(inner: WalFs): WalFs {
    return faultyFs(inner, this);
  }

  /** Node's error for a full disk, with its code. */
  noSpace(syscall: string, path: string): NodeJS.ErrnoException {
    this.refusedWrites++;
    const err: NodeJS.ErrnoException = new Error(`ENOSPC: no space left on device, ${syscall} '${path}' (injected by the fault endpoint)`);
    err.code = 'ENOSPC';
    err.syscall = syscall;
    err.path = path;
    return err;
  }

  async beforeSync(): Promise<void> {
    const ms = this.state.syncDelayMs;
    if (ms === 0) return;
    this.delayedSyncs++;
    await new Promise((r) => setTimeout(r, ms));
  }
}

/** The longest sync delay the endpoint accepts: a minute. */
export const syncDelayMsMax = 60_000;

function faultyFile(inner: WalFile, faults: DiskFaults): WalFile {
  return {
    path: inner.path,
    write(data, position) {
      if (faults.state.full) return Promise.reject(faults.noSpace('write', inner.path));
      return inner.write(data, position);
    },
    async datasync() {
      await faults.beforeSync();
      return inner.datasync();
    },
    async sync() {
      await faults.beforeSync();
      return inner.sync();
    },
    close: () => inner.close(),
  };
}

function faultyFs(inner: WalFs, faults: DiskFaults): WalFs {
  return {
    async open(path, mode) {
      if (faults.state.full && mode === 'create') throw faults.noSpace('open', path);
      return faultyFile(await inner.open(path, mode), faults);
    },
    readFile: (path) => inner.readFile(path),
    writeNewFile(path, data) {
      if (faults.state.full) return Promise.reject(faults.noSpace('write', path));
      return inner.writeNewFile(path, data);
    },
    readdir: (dir) => inner.readdir(dir),
    mkdirp: (dir) => inner.mkdirp(dir),
    rename: (from, to) => inner.rename(from, to),
    link: (from, to) => inner.link(from, to),
    unlink: (path) => inner.unlink(path),
    async syncDir(dir) {
      await faults.beforeSync();
      return inner.syncDir(dir);
    },
  };
}
