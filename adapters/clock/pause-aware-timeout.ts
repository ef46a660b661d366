// A deadline that a paused process does not turn against its peers. A timer that fires
// timerLateMsPaused or more after its due time says this process did not run (stopped by
// SIGSTOP or a debugger, blocked in Atomics.wait, starved), not that the peer was slow: the
// peer's bytes may be waiting unread in the socket, since timers run before pending input is
// read. The peer then gets its whole time again, counted from when this process runs again.
// Node's own socket deadlines (tls.Server's handshakeTimeout) fire at once after a pause and
// drop a healthy connection; the TCP transport and the client listener use this instead.

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
