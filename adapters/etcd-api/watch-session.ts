// One client watch stream over the store's watch hub: the watchers it created and the handling
// of its requests (create, cancel, progress).

import type { WatchStream } from '../../src/mvcc/watch-hub.ts';
import type { EtcdApi } from './api.ts';
import { bytes, int, type Wire } from './server-wire.ts';
import { authorizeWatchCreate, type Caller } from './auth-gate.ts';
import { AuthErrors } from '../../src/server/auth-store.ts';

/** One watch stream's state: its watchers in the hub, and the request handling. */
export class WatchSession {
  private readonly stream: WatchStream;
  private closed = false;
  private readonly send: (w: Wire) => boolean;

  constructor(
    private readonly api: EtcdApi,
    send: (w: Wire) => boolean,
    /** Who opened the stream; each create request is checked against this caller's permissions. */
    private readonly caller: Caller,
  ) {
    this.send = send;
    this.stream = api.kv.openWatchStream({
      send: (r) => {
        if (this.closed) return false;
        if (r.created && !r.canceled) api.countWatchers(1);
        if (r.canceled && r.watchId >= 0 && !r.created) api.countWatchers(-1);
        return send(api.watchResponse(r));
      },
    });
  }

  /** Handles one WatchRequest (create, cancel or progress). */
  handle(w: Wire): void {
    if (this.closed) return;
    if (w.create_request) {
      const c = w.create_request;
      try {
        authorizeWatchCreate(this.api.kv, this.caller, c);
      } catch {
        // etcd answers a refused watch with a created-and-canceled response, not a stream error.
        this.send({
          header: this.api.header(),
          watch_id: int(c.watch_id),
          created: true,
          canceled: true,
          compact_revision: 0,
          cancel_reason: AuthErrors.permissionDenied().message,
          events: [],
        });
        return;
      }
      this.stream.watch({
        key: bytes(c.key),
        rangeEnd: bytes(c.range_end),
        startRevision: int(c.start_revision),
        progressNotify: c.progress_notify === true,
        filters: c.filters ?? [],
        prevKv: c.prev_kv === true,
        watchId: int(c.watch_id),
      });
    } else if (w.cancel_request) {
      // etcd sends nothing for an unknown watch id.
      this.stream.cancel(int(w.cancel_request.watch_id));
    } else if (w.progress_request) {
      this.stream.requestProgress();
    }
  }

  close(): void {
    if (this.closed) return;
    this.api.countWatchers(-this.stream.watchIds.length);
    this.closed = true;
    this.stream.close();
  }
}
