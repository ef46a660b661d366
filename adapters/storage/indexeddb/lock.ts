// One holder per member storage across every tab and worker of an origin: an exclusive Web
// Lock held for the storage's lifetime. The browser releases it when the holding context dies
// (tab closed or crashed, worker terminated), so a dead tab never leaves a stale lock behind.

/** Releases a held lock; resolves once another context can take it. */
export type ReleaseLock = () => Promise<void>;

/**
 * Takes the exclusive lock `name` if it is free right now, without waiting. Returns its
 * release function, or null if another context holds it. `onLost` runs if the lock is taken
 * away before release (another context requested it with `steal: true`).
 */
export async function tryAcquireWebLock(locks: LockManager, name: string, onLost: (reason: unknown) => void): Promise<ReleaseLock | null> {
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  let decide!: (granted: boolean) => void;
  const decided = new Promise<boolean>((resolve) => (decide = resolve));
  let released = false;
  const finished = locks.request(name, { mode: 'exclusive', ifAvailable: true }, async (lock) => {
    decide(lock !== null);
    // The lock stays held while this callback's promise is pending.
    if (lock !== null) await held;
  });
  // request() rejects without calling back on a bad name or an aborted document.
  const granted = await Promise.race([decided, finished.then(() => false)]);
  if (!granted) {
    await finished;
    return null;
  }
  const settled = finished.then(
    () => undefined,
    (reason: unknown) => void (released || onLost(reason)),
  );
  return async () => {
    released = true;
    release();
    await settled;
  };
}
