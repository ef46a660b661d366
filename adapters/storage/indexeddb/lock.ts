// One holder per member storage across every tab and worker of an origin: an exclusive Web
// Lock held for the storage's lifetime. The browser releases it when the holding context dies
// (tab closed or crashed, worker terminated), so a dead tab never leaves a stale lock behind.

/** Releases a held lock; resolves once another context can take it. */
export type ReleaseLock = () => Promise<void>;

/**
 * Takes the exclusive lock `name` if it is free right now, without waiting. Returns its
 * release function, or null if another context holds it.
 */
export async function tryAcquireWebLock(locks: LockManager, name: string): Promise<ReleaseLock | null> {
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  let decide!: (granted: boolean) => void;
  const decided = new Promise<boolean>((resolve) => (decide = resolve));
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
  return async () => {
    release();
    await finished;
  };
}
