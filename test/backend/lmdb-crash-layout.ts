/** Keys each crash-test batch writes (and deletes three batches later). */
export const crashBatchOps = 2_000;

export function crashKey(batch: number, op: number): Uint8Array {
  return new TextEncoder().encode(`b${String(batch).padStart(8, '0')}-${String(op).padStart(5, '0')}`);
}
