// Disk faults for fault-injection runs: a WalFs that passes every call to another one, except
// that, while told to, its syncs wait first (a slow disk) or its writes fail as on a full disk.
// The same switch drives the state-machine backend's wrapper (adapters/backend/faulty-backend.ts);
// `target` says which of the two a fault hits. A member uses them only when started with
// --experimental-fault-injection; without the flag the WAL writes through nodeWalFs and the
// backend commits to LMDB directly, so production behaviour is unchanged.

import type { WalFile, WalFs } from './fs.ts';

/** Which store a disk fault hits: the Raft log (fs-wal), the state-machine backend (LMDB), or both. */
export type DiskFaultTarget = 'wal' | 'backend' | 'both';

export const diskFaultTargets: readonly DiskFaultTarget[] = ['wal', 'backend', 'both'];

/** What the fault endpoint may set. A stalled sync still syncs: the delay comes first. */
export interface DiskFaultState {
  /**
   * WAL: every fdatasync/fsync of a WAL file or directory waits this long first. Backend: commits
   * wait this long before they reach LMDB (those arriving meanwhile go together). 0: none.
   */
  syncDelayMs: number;
  /** WAL: writes and file creations fail with ENOSPC. Backend: commits and staged writes do. As on a full disk. */
  full: boolean;
  /** Which store the two faults above hit. */
  target: DiskFaultTarget;
}

/** The WAL's and the backend's window into the disk faults; the endpoint changes `state`. */
export class DiskFaults {
  state: DiskFaultState = { syncDelayMs: 0, full: false, target: 'wal' };
  /** WAL writes refused with ENOSPC so far, and WAL syncs delayed (for the endpoint's report). */
  refusedWrites = 0;
  delayedSyncs = 0;
  /** Backend commits (and staged writes) refused with ENOSPC so far, and commit rounds delayed. */
  refusedCommits = 0;
  delayedCommits = 0;

  /** Sets the faults; a field left out keeps its value. Throws on a bad value. */
  set(change: Partial<DiskFaultState>): void {
    const next = { ...this.state, ...change };
    if (!Number.isSafeInteger(next.syncDelayMs) || next.syncDelayMs < 0 || next.syncDelayMs > syncDelayMsMax) {
      throw new RangeError(`a sync delay must be an integer from 0 to ${syncDelayMsMax} ms, not ${next.syncDelayMs}`);
    }
    if (typeof next.full !== 'boolean') throw new TypeError(`"full" must be true or false, not ${JSON.stringify(next.full)}`);
    if (!diskFaultTargets.includes(next.target)) throw new TypeError(`"target" must be "wal", "backend" or "both", not ${JSON.stringify(next.target)}`);
    this.state = next;
  }

  /** Whether the faults set now hit `store`. */
  hits(store: 'wal' | 'backend'): boolean {
    return this.state.target === 'both' || this.state.target === store;
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

  /** Whether WAL writes fail now. */
  get walRefuses(): boolean {
    return this.state.full && this.hits('wal');
  }

  async beforeSync(): Promise<void> {
    const ms = this.hits('wal') ? this.state.syncDelayMs : 0;
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
      if (faults.walRefuses) return Promise.reject(faults.noSpace('write', inner.path));
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
      if (faults.walRefuses && mode === 'create') throw faults.noSpace('open', path);
      return faultyFile(await inner.open(path, mode), faults);
    },
    readFile: (path) => inner.readFile(path),
    writeNewFile(path, data) {
      if (faults.walRefuses) return Promise.reject(faults.noSpace('write', path));
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
