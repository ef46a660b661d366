export { IndexedDbStorage } from './storage.ts';
export type { IndexedDbMember } from './storage.ts';
export { schemaVersion } from './schema.ts';
export { IndexedDbBackend } from './backend.ts';
export type { IndexedDbBackendMember } from './backend.ts';
