export { FsWalStorage, segmentBytesDefault, frameBytesMaxDefault, unsyncedBufferBytesMax } from './wal.ts';
export type { FsWalOptions } from './wal.ts';
export type { WalFile, WalFs } from './fs.ts';
export { nodeWalFs } from './fs.ts';
