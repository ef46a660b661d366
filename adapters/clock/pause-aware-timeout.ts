// A deadline that a paused process does not turn against its peers. A timer that fires
// timerLateMsPaused or more after its due time says this process did not run (stopped by
// SIGSTOP or a debugger, blocked in Atomics.wait, starved), not that the peer was slow: the
// peer's bytes may be waiting unread in the socket, since timers run before pending input is
// read. The peer then gets its whole time again, counted from when this process runs again.
// Node's own socket deadlines (tls.Server's handshakeTimeout) fire at once after a pause and
// drop a healthy connection; the TCP transport and the client listener use this instead.

import type net from 'node:net';

/** How late a timer must fire to say the process was paused rather than the peer slow. */
export const timerLateMsPaused = 500;

/**
 * Calls `expire` once `ms` passed while this process ran. A firing timerLateMsPaused or more
 * late calls `paused(lateMs)` and waits the whole `ms` again. Returns the cancel function
 * (repeatable; after `expire` it does nothing).
 */
export function pauseAwareTimeout(ms: number, expire: () => void, paused: (lateMs: number) => void = () => {}): () => void {
  let timer: ReturnType<typeof setTimeout>;
  const arm = () => {
    const dueMs = performance.now() + ms;
    timer = setTimeout(() => {
      const lateMs = performance.now() - dueMs;
      if (lateMs < timerLateMsPaused) return expire();
      paused(lateMs);
      arm();
    }, ms);
  };
  arm();
  return () => clearTimeout(timer);
}

/**
 * tls.Server's handshakeTimeout that turns Node's own handshake timer off: 0 would mean its
 * 120 s default, any negative value none. TlsHandshakeDeadlines replaces it.
 */
export const nodeHandshakeTimerOff = -1;

/**
 * Pause-aware deadlines for the TLS handshakes of a tls.Server made with
 * `handshakeTimeout: nodeHandshakeTimerOff`: `arm` each accepted raw socket before the server
 * takes it, `settle` the TLS socket the server hands over once its handshake is done. The two
 * are paired by the peer's `address:port`, the same on both sockets.
 */
export class TlsHandshakeDeadlines {
  private readonly byRemote = new Map<string, () => void>();

  constructor(
    private readonly ms: number,
    private readonly expire: (socket: net.Socket, remote: string) => void,
    private readonly paused: (remote: string, lateMs: number) => void = () => {},
  ) {}

  arm(socket: net.Socket): void {
    const remote = remoteOf(socket);
    const cancel = pauseAwareTimeout(this.ms, () => this.expire(socket, remote), (lateMs) => this.paused(remote, lateMs));
    this.byRemote.set(remote, cancel);
    socket.once('close', () => {
      cancel();
      if (this.byRemote.get(remote) === cancel) this.byRemote.delete(remote);
    });
  }

  settle(secure: net.Socket): void {
    const remote = remoteOf(secure);
    this.byRemote.get(remote)?.();
    this.byRemote.delete(remote);
  }
}

function remoteOf(socket: net.Socket): string {
  return `${socket.remoteAddress}:${socket.remotePort}`;
}
