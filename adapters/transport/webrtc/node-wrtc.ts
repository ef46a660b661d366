// WebRTC for Node members: node-datachannel's polyfill RTCPeerConnection, for rtc-session.ts.
// Node-only; the browser bundle never imports this module (browsers use their own WebRTC).
//
// The package is found when this module loads (so a member without it fails at startup) but
// loaded only when the first connection is made: its native library and JavaScript cost a
// member about 3 MB of resident memory that a member no tab ever reaches has no use for
// (docs/benchmarks.md, "memory3, session 10"). Its CommonJS build is loaded, because a
// connection is made synchronously (rtc-session.ts) and only require loads synchronously.

import { createRequire } from 'node:module';
import type { RTCPeerConnection as PolyfillPeerConnection } from 'node-datachannel/polyfill';
import type { WebRtcImplementation } from './rtc-session.ts';

const candidateAttemptsMax = 50;
const candidateRetryDelayMs = 20;

const require = createRequire(import.meta.url);
/** Where node-datachannel's polyfill is; throws MODULE_NOT_FOUND now when the package is missing. */
const polyfillPath = require.resolve('node-datachannel/polyfill');

type PeerConnectionClass = new (config: RTCConfiguration) => PolyfillPeerConnection;
let retrying: PeerConnectionClass | null = null;

/** The polyfill's RTCPeerConnection with addIceCandidate retried, loaded on the first call. */
function retryingPeerConnection(): PeerConnectionClass {
  if (retrying !== null) return retrying;
  const { RTCPeerConnection } = require(polyfillPath) as { RTCPeerConnection: typeof PolyfillPeerConnection };
  retrying = class RetryingPeerConnection extends RTCPeerConnection {
    /**
     * A trickled candidate can arrive while libdatachannel is still setting up the ICE transport
     * for the remote description just applied ("Got a remote candidate without ICE transport"),
     * though setRemoteDescription has resolved. Retry for a short while instead of losing it.
     */
    override async addIceCandidate(candidate?: RTCIceCandidateInit): Promise<void> {
      for (let attempt = 1; ; attempt++) {
        try {
          return await super.addIceCandidate(candidate);
        } catch (err) {
          const early = err instanceof Error && /without (ICE transport|remote description)/.test(err.message);
          if (!early || attempt >= candidateAttemptsMax || this.connectionState === 'closed') throw err;
          await new Promise((r) => setTimeout(r, candidateRetryDelayMs));
        }
      }
    }
  };
  return retrying;
}

/** Called with `new`, it returns the polyfill's connection (a constructor may return another object). */
function LazyPeerConnection(config: RTCConfiguration): PolyfillPeerConnection {
  return new (retryingPeerConnection())(config);
}

export const nodeWrtc: WebRtcImplementation = {
  RTCPeerConnection: LazyPeerConnection as unknown as WebRtcImplementation['RTCPeerConnection'],
};
