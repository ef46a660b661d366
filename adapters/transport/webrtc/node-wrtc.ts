// WebRTC for Node members: node-datachannel's polyfill RTCPeerConnection, for rtc-session.ts.
// Node-only; the browser bundle never imports this module (browsers use their own WebRTC).

import { RTCPeerConnection } from 'node-datachannel/polyfill';
import type { WebRtcImplementation } from './rtc-session.ts';

const candidateAttemptsMax = 50;
const candidateRetryDelayMs = 20;

class RetryingPeerConnection extends RTCPeerConnection {
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
}

export const nodeWrtc: WebRtcImplementation = {
  RTCPeerConnection: RetryingPeerConnection as unknown as WebRtcImplementation['RTCPeerConnection'],
};
