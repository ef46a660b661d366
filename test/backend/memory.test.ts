import { MemoryBackend } from '../../src/backend/memory.ts';
import { backendCompliance } from './compliance.ts';

backendCompliance('MemoryBackend', async () => {
  let current: MemoryBackend | undefined;
  return {
    async open() {
      current = new MemoryBackend(current);
      return current;
    },
    async cleanup() {},
  };
});
