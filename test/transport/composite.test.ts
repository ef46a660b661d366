import { describe, expect, it } from 'vitest';
import { CompositeTransport } from '../../adapters/transport/composite.ts';
import { MemoryHub } from '../../adapters/transport/memory.ts';
import { MessageType, newMessage, type Message } from '../../src/raft/types.ts';
import type { Transport } from '../../src/seams.ts';
import { waitFor } from '../helpers/wait.ts';
import { transportCompliance } from './compliance.ts';

/** Member i's composite: peers with odd ids through hub A (`a://`), even ones through hub B. */
function composites(ids: readonly number[]) {
  const hubA = new MemoryHub();
  const hubB = new MemoryHub();
  const transports = new Map<number, CompositeTransport>();
  for (const id of ids) transports.set(id, new CompositeTransport([{ schemes: ['a'], transport: hubA.connect(id) }], hubB.connect(id)));
  for (const [id, t] of transports) for (const peer of ids) if (peer !== id) t.addPeer(peer, peer % 2 === 1 ? `a://peer-${peer}` : `127.0.0.1:${peer}`);
  return transports;
}

transportCompliance('composite (two memory hubs)', async (ids) => {
  const transports = composites(ids) as Map<number, Transport>;
  return {
    transports,
    async close() {
      for (const t of transports.values()) await t.close();
    },
  };
});

describe('CompositeTransport', () => {
  it('routes by address scheme, and drops messages to peers it has no address for', async () => {
    const hubA = new MemoryHub();
    const hubB = new MemoryHub();
    const one = new CompositeTransport([{ schemes: ['webrtc'], transport: hubA.connect(1) }], hubB.connect(1));
    const viaA: Message[] = [];
    const viaB: Message[] = [];
    hubA.connect(2).start((m) => viaA.push(m));
    hubB.connect(3).start((m) => viaB.push(m));
    one.start(() => {});
    one.addPeer(2, 'webrtc://2');
    one.addPeer(3, '127.0.0.1:2380');
    one.send([newMessage(MessageType.Heartbeat, 2, 1, 1), newMessage(MessageType.Heartbeat, 3, 1, 1), newMessage(MessageType.Heartbeat, 4, 1, 1)]);
    await waitFor('both messages', () => viaA.length === 1 && viaB.length === 1);
    expect(viaA[0].to).toBe(2);
    expect(viaB[0].to).toBe(3);
    await one.close();
  });

  it('moves a peer to another part when its address changes scheme', async () => {
    const hubA = new MemoryHub();
    const hubB = new MemoryHub();
    const one = new CompositeTransport([{ schemes: ['webrtc'], transport: hubA.connect(1) }], hubB.connect(1));
    const viaA: Message[] = [];
    const viaB: Message[] = [];
    hubA.connect(2).start((m) => viaA.push(m));
    hubB.connect(2).start((m) => viaB.push(m));
    one.start(() => {});
    one.addPeer(2, '127.0.0.1:2380');
    one.addPeer(2, 'WebRTC://2');
    one.send([newMessage(MessageType.Heartbeat, 2, 1, 1)]);
    await waitFor('the message', () => viaA.length === 1);
    expect(viaB).toEqual([]);
    await one.close();
  });

  it('has one fault switch that cuts a peer on every part', () => {
    const hubA = new MemoryHub();
    const hubB = new MemoryHub();
    const a = hubA.connect(1);
    const b = hubB.connect(1);
    const one = new CompositeTransport([{ schemes: ['webrtc'], transport: a }], b);
    one.faults.block(7, 'out');
    expect(a.faults.isBlocked(7, 'out') && b.faults.isBlocked(7, 'out')).toBe(true);
    expect(one.faults.isBlocked(7, 'in')).toBe(false);
    one.faults.heal();
    expect(one.faults.isBlocked(7, 'out')).toBe(false);
  });
});

describe('CompositeTransport capabilities of its parts', () => {
  it('passes removals to every part that takes them, and link ages from the part that reaches the peer', () => {
    const hubA = new MemoryHub();
    const hubB = new MemoryHub();
    const removedSeen: number[][] = [];
    const tcpLike = Object.assign(hubB.connect(1), {
      setRemoved: (ids: Iterable<number>) => removedSeen.push([...ids]),
      activeSince: (peer: number) => (peer === 3 ? 1234 : null),
    });
    const one = new CompositeTransport([{ schemes: ['webrtc'], transport: hubA.connect(1) }], tcpLike);
    one.addPeer(2, 'webrtc://2');
    one.addPeer(3, '127.0.0.1:2380');
    one.setRemoved(new Set([9]));
    expect(removedSeen).toEqual([[9]]);
    expect(one.activeSince(3)).toBe(1234);
    // The WebRTC part keeps no link ages: unknown reads as down.
    expect(one.activeSince(2)).toBeNull();
    expect(one.activeSince(4)).toBeNull();
  });
});
