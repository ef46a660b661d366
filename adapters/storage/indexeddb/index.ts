export { IndexedDbStorage } from './storage.ts';
export type { IndexedDbMember } from './storage.ts';
export { schemaVersion } from './schema.ts';
