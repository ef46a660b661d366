import { expect, it } from 'vitest';
it('runs in Chromium with IndexedDB, WebRTC and Web Locks', () => {
  expect(typeof indexedDB.open).toBe('function');
  expect(typeof RTCPeerConnection).toBe('function');
  expect(typeof navigator.locks.request).toBe('function');
});
