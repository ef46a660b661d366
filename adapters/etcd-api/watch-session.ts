// One client watch stream over the store's watch hub: the watchers it created and the handling
// of its requests (create, cancel, progress). Requests and responses are the core's forms: the
// gRPC server encodes responses with proto-codec.ts (each event once, however many watchers get
// it), the JSON gateway maps them to JSON.

import type { WatchStream } from '../../src/mvcc/watch-hub.ts';
import type { WatchResponse } from '../../src/mvcc/types.ts';
import type { EtcdApi } from './api.ts';
import type { WatchRequest } from './proto-codec.ts';
import { authorizeWatchCreate, type Caller } from './auth-gate.ts';
import { AuthErrors } from '../../src/server/auth-store.ts';

/** One watch stream's state: its watchers in the hub, and the request handling. */
export class WatchSession {
  private readonly stream: WatchStream;
  private closed = false;
  private readonly send: (r: WatchResponse) => boolean;

  constructor(
    private readonly api: EtcdApi,
    send: (r: WatchResponse) => boolean,
    /** Who opened the stream; each create request is checked against this caller's permissions. */
    private readonly caller: Caller,
  ) {
    this.send = send;
    this.stream = api.kv.openWatchStream({
      send: (r) => {
        if (this.closed) return false;
        if (r.created && !r.canceled) api.countWatchers(1);
        if (r.canceled && r.watchId >= 0 && !r.created) api.countWatchers(-1);
        return send(r);
      },
    });
  }

  /** Handles one WatchRequest (create, cancel or progress). */
  handle(w: WatchRequest): void {
    if (this.closed) return;
    if ('create' in w) {
      const c = w.create;
      try {
        authorizeWatchCreate(this.api.kv, this.caller, c.key, c.rangeEnd);
      } catch {
        // etcd answers a refused watch with a created-and-canceled response, not a stream error.
        this.send({
          header: { revision: this.api.kv.currentRevision },
          watchId: c.watchId,
          created: true,
          canceled: true,
          compactRevision: 0,
          cancelReason: AuthErrors.permissionDenied().message,
          events: [],
        });
        return;
      }
      this.stream.watch(c);
    } else if ('cancel' in w) {
      // etcd sends nothing for an unknown watch id.
      this.stream.cancel(w.cancel);
    } else if ('progress' in w) {
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
