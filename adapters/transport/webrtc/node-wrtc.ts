// WebRTC for Node members: node-datachannel's polyfill shaped the way simple-peer needs it.
// Node-only; the browser bundle never imports this module (browsers use their own WebRTC).

import { RTCIceCandidate, RTCPeerConnection, RTCSessionDescription } from 'node-datachannel/polyfill';
import type { WebRtcImplementation } from './index.ts';

const candidateAttemptsMax = 50;
const candidateRetryDelayMs = 20;

/**
 * simple-peer assigns to the `sdp` of the description createOffer/createAnswer return, which is
 * read-only in the polyfill: hand it plain objects instead.
 */
class PlainDescriptionPeerConnection extends RTCPeerConnection {
  override async createOffer(): Promise<RTCSessionDescriptionInit> {
    const d = await super.createOffer();
    return { type: d.type, sdp: d.sdp };
  }

  override async createAnswer(): Promise<RTCSessionDescriptionInit> {
    const d = await super.createAnswer();
    return { type: d.type, sdp: d.sdp };
  }

  /**
   * A trickled candidate can arrive while libdatachannel is still setting up the ICE transport
   * for the description just applied ("Got a remote candidate without ICE transport"), and
   * simple-peer destroys the connection on that error. Retry for a short while instead.
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
  RTCPeerConnection: PlainDescriptionPeerConnection as unknown as WebRtcImplementation['RTCPeerConnection'],
  RTCSessionDescription: RTCSessionDescription as unknown as WebRtcImplementation['RTCSessionDescription'],
  RTCIceCandidate: RTCIceCandidate as unknown as WebRtcImplementation['RTCIceCandidate'],
};
