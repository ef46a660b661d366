export * from './types.ts';
export * from './config.ts';
export * from './confchange.ts';
export { RawNode, type Status, type ProgressStatus } from './raw-node.ts';
export { RaftError, CAMPAIGN_TRANSFER, type RaftRestore } from './raft.ts';
export { ProgressState } from './progress.ts';
