/**
 * Polls `fn` (which may be async) every `intervalMs` until it gives something truthy; fails
 * after `timeoutMs`. Checks that cost a request or a process want a longer interval.
 */
export async function waitFor<T>(
  what: string,
  fn: () => T | undefined | false | null | Promise<T | undefined | false | null>,
  timeoutMs = 5000,
  intervalMs = 5,
): Promise<T> {
  const start = Date.now();
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
