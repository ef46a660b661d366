/** An invariant the core relies on. A failure is a bug in meshkv, never a user error. */
export function assert(condition: boolean, message: string): asserts condition {
  if (!condition) throw new Error(`raft invariant violated: ${message}`);
}
