// Following a range across offline periods (docs/offline.md): a snapshot of the keys under a
// prefix, then every change after it, in order, with no gap and no duplicate, resuming from the
// last revision delivered (the Watcher does that across broken streams; `fromRevision` does it
// across reloads, with a revision the app saved). When the history after that revision was
// compacted meanwhile (a tab that was away while the cluster compacted, then caught up from a
// snapshot), the app is told so with the EtcdCompactedError and given a fresh snapshot of the
// range, from which the following goes on.

import type { KeyValue } from '../mvcc/types.ts';
import { prefixEnd, toBytes, type Bytes } from './bytes.ts';
import type { Client } from './client.ts';
import { EtcdCompactedError, type EtcdError } from './errors.ts';
import type { Watcher, WatchEvent } from './watch.ts';

export interface FollowHandlers {
  /** The whole range at `revision`: first (unless resuming from `fromRevision`), and after every reset. */
  onSnapshot(kvs: KeyValue[], revision: number): void;
  /** Each change after the last snapshot or event, in revision order (event.revision is its mod_revision). */
  onEvent(event: WatchEvent): void;
  /** The history after `afterRevision` was compacted: a fresh onSnapshot follows at once. */
  onReset?(error: EtcdCompactedError, afterRevision: number): void;
  /** The following ended for good (a refused watch, the client closed). */
  onError?(error: EtcdError): void;
}

export interface FollowOptions {
  /** Resume after this revision (the last one the app applied) instead of starting with a snapshot. */
  fromRevision?: number;
}

export class Following {
  private watcher: Watcher | null = null;
  private closed = false;
  /** The last revision handed to the app (snapshot or events). */
  lastRevision = 0;

  constructor(
    private readonly client: Client,
    private readonly prefix: Uint8Array,
    private readonly handlers: FollowHandlers,
  ) {}

  /** @internal */
  async start(fromRevision: number | undefined): Promise<void> {
    if (fromRevision === undefined) await this.snapshot();
    else this.lastRevision = fromRevision;
    await this.watch();
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.watcher?.cancel();
  }

  private async snapshot(): Promise<void> {
    const res = await this.client.getAll().prefix(this.prefix).exec();
    this.lastRevision = res.header.revision;
    this.handlers.onSnapshot(res.kvs, res.header.revision);
  }

  /**
   * Watches from lastRevision + 1 through the watcher's async iterator, which buffers every
   * event from the watch's creation (so none is missed between creation and the loop), and ends
   * with the error that ended the watch.
   */
  private async watch(): Promise<void> {
    for (;;) {
      if (this.closed) return;
      try {
        const w = await this.client.watch().range(this.prefix, prefixEnd(this.prefix)).startRevision(this.lastRevision + 1).create();
        this.watcher = w;
        if (this.closed) await w.cancel();
        void this.deliver(w);
        return;
      } catch (err) {
        if (!(await this.maybeReset(err as EtcdError))) return;
      }
    }
  }

  private async deliver(w: Watcher): Promise<void> {
    try {
      for await (const e of w) {
        this.lastRevision = e.revision;
        this.handlers.onEvent(e);
      }
    } catch (err) {
      if (await this.maybeReset(err as EtcdError)) await this.watch();
    }
  }

  /** After a compacted watch: tells the app, takes a fresh snapshot; true to watch again. Other errors end the following. */
  private async maybeReset(error: EtcdError): Promise<boolean> {
    if (this.closed) return false;
    if (!(error instanceof EtcdCompactedError)) {
      this.handlers.onError?.(error);
      return false;
    }
    this.handlers.onReset?.(error, this.lastRevision);
    try {
      await this.snapshot();
      return true;
    } catch (err) {
      this.handlers.onError?.(err as EtcdError);
      return false;
    }
  }
}

/** Starts following the keys under `prefix`; resolves once the watch is created. */
export async function follow(client: Client, prefix: Bytes, handlers: FollowHandlers, options: FollowOptions = {}): Promise<Following> {
  if (options.fromRevision !== undefined && !(Number.isSafeInteger(options.fromRevision) && options.fromRevision >= 0)) {
    throw new TypeError(`follow: fromRevision ${options.fromRevision} is not a non-negative integer`);
  }
  const f = new Following(client, toBytes(prefix), handlers);
  await f.start(options.fromRevision);
  return f;
}
