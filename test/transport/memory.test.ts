import { MemoryHub } from '../../adapters/transport/memory.ts';
import type { Transport } from '../../src/seams.ts';
import { transportCompliance } from './compliance.ts';

transportCompliance('memory', async (ids) => {
  const hub = new MemoryHub();
  const transports = new Map<number, Transport>(ids.map((id) => [id, hub.connect(id)]));
  return {
    transports,
    async close() {
      for (const t of transports.values()) await t.close();
    },
  };
});
