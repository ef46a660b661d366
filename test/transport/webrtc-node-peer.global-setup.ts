// globalSetup of the browser tests: a Node member for tab <-> Node links. It hosts WebSocket
// signaling on 127.0.0.1 and runs a WebRTC transport over node-datachannel as member 1, which
// answers every message from a tab with a copy addressed back to it. Its URL, cluster and
// token reach the tests through `inject`.

import type { TestProject } from 'vitest/node';
import { WebSocket } from 'ws';
import { WebSocketSignaling } from '../../adapters/signaling/ws-client.ts';
import { SignalingServer } from '../../adapters/signaling/ws-server.ts';
import { WebRtcTransport } from '../../adapters/transport/webrtc/index.ts';
import { nodeWrtc } from '../../adapters/transport/webrtc/node-wrtc.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    nodePeer: { url: string; cluster: string; secret: string; id: number };
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const who = { cluster: 'tab-node', secret: 'tab-node-secret', id: 1 };
  const server = new SignalingServer({ cluster: who.cluster, secret: who.secret });
  const url = await server.listen(0);
  const signaling = new WebSocketSignaling({ ...who, url, WebSocket });
  const t = await WebRtcTransport.open({ id: who.id, signaling, wrtc: nodeWrtc, rtcConfig: { iceServers: [] } });
  t.start((m) => {
    t.addPeer(m.from, '');
    t.send([{ ...m, from: who.id, to: m.from }]);
  });
  project.provide('nodePeer', { ...who, url });
  return async () => {
    await t.close();
    await server.close();
  };
}
