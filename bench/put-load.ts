// The write load of the browser and mixed-cluster benchmarks, shared by the tab page (which
// bundles it) and the bench process (Node writers over gRPC): `concurrency` loops put values
// for `durationMs`, each waiting for its put's acknowledgement before the next.

import type { Client } from '../src/client/index.ts';

export interface PutLoadResult {
  /** Each acknowledged put's latency, ms. */
  latenciesMs: number[];
  failures: number;
}

export async function putLoad(client: Client, durationMs: number, concurrency: number, prefix: string, valueBytes = 128): Promise<PutLoadResult> {
  const value = 'x'.repeat(valueBytes);
  const latenciesMs: number[] = [];
  let failures = 0;
  const end = performance.now() + durationMs;
  const writer = async (w: number) => {
    for (let i = 0; performance.now() < end; i++) {
      const started = performance.now();
      try {
        await client.put(`${prefix}${w}-${i % 1000}`).value(value).exec();
        latenciesMs.push(performance.now() - started);
      } catch {
        failures++;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, w) => writer(w)));
  return { latenciesMs, failures };
}
