// meshkv/browser: a browser tab as a cluster member (IndexedDB + WebRTC). Re-exports only.
export { openBrowserMember, defaultBrowserMemberTimings, type BrowserMember, type BrowserMemberOptions, type BrowserMemberStatus, type BrowserMemberTimings } from './member.ts';
export { fetchAdmission, AdmissionError, type Admission } from './admission.ts';
export { Client } from '../../src/client/client.ts';
export * from '../../src/client/errors.ts';
export { StateRole, type MemberId } from '../../src/raft/types.ts';
export { Outbox, OutboxTxn, drainBatchEntriesMax, outboxEntriesMax, type OutboxRecord, type OutboxLoss, type OutboxOutcome, type OutboxStatus, type OverlaidValue, type QueuedEntry, type GuardRead, type OutboxWrite } from './outbox.ts';
export type { Connectivity } from '../../src/server/connectivity.ts';
export type { Consistency } from '../../src/client/consistency.ts';
