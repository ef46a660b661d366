// The TCP transport's part in membership: how long a peer link has been up (for etcd's strict
// reconfiguration check), and refusing a removed member until it is told for good.

import { afterEach, describe, expect, it } from 'vitest';
import { TcpTransport } from '../../adapters/transport/tcp/index.ts';
import { removalConfirmMs } from '../../adapters/transport/tcp/peer-link.ts';
import { waitFor } from '../helpers/wait.ts';

const open: TcpTransport[] = [];
afterEach(async () => {
  for (const t of open.splice(0)) await t.close();
});

async function pair(onRemoved: () => void) {
  const a = await TcpTransport.listen({ id: 1, clusterToken: 'removed-test', admissionSecret: 'removed-test-secret', port: 0 });
  const b = await TcpTransport.listen({ id: 2, clusterToken: 'removed-test', admissionSecret: 'removed-test-secret', port: 0, onRemoved });
  open.push(a, b);
  a.start(() => {});
  b.start(() => {});
  a.addPeer(2, b.addressString);
  b.addPeer(1, a.addressString);
  return { a, b };
}

describe('tcp transport and membership', () => {
  it('reports since when a link is up, and null once the peer is gone', async () => {
    const before = Date.now();
    const { a, b } = await pair(() => {});
    expect(a.activeSince(3)).toBeNull();
    const since = await waitFor('the link to 2 to be accepted', () => a.activeSince(2));
    expect(since).toBeGreaterThanOrEqual(before);
    expect(since).toBeLessThanOrEqual(Date.now());
    await b.close();
    await waitFor('the link to report the peer down', () => a.activeSince(2) === null);
  });

  it('a member refused as removed hears it only after the refusal lasted removalConfirmMs, and never while accepted', async () => {
    let removedAt: number | null = null;
    const { a, b } = await pair(() => (removedAt ??= Date.now()));
    await waitFor('b connected to a', () => b.activeSince(1));
    await new Promise((r) => setTimeout(r, 300));
    expect(removedAt).toBeNull();
    const refusedFrom = Date.now();
    // a's member table no longer has 2: its open connection is cut and every new one refused.
    a.setRemoved([2]);
    await waitFor('b to learn it was removed', () => removedAt, removalConfirmMs + 5000);
    expect(removedAt! - refusedFrom).toBeGreaterThanOrEqual(removalConfirmMs);
    expect(b.activeSince(1)).toBeNull();
  }, 15_000);

  it('a member re-added within removalConfirmMs is not told it was removed', async () => {
    let removed = false;
    const { a, b } = await pair(() => (removed = true));
    await waitFor('b connected to a', () => b.activeSince(1));
    a.setRemoved([2]);
    await new Promise((r) => setTimeout(r, removalConfirmMs / 4));
    a.setRemoved([]);
    await waitFor('b accepted again', () => b.activeSince(1), 5000);
    await new Promise((r) => setTimeout(r, removalConfirmMs));
    expect(removed).toBe(false);
  }, 15_000);
});
