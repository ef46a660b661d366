import { TcpTransport } from '../../adapters/transport/tcp/index.ts';
import type { Transport } from '../../src/seams.ts';
import { transportCompliance } from './compliance.ts';

transportCompliance('tcp', async (ids) => {
  const byId = new Map<number, TcpTransport>();
  for (const id of ids) byId.set(id, await TcpTransport.listen({ id, clusterToken: 'compliance', port: 0 }));
  for (const [id, t] of byId) for (const [peer, p] of byId) if (peer !== id) t.addPeer(peer, p.addressString);
  return {
    transports: new Map<number, Transport>(byId),
    async close() {
      for (const t of byId.values()) await t.close();
    },
  };
});
