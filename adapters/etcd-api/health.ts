// GET /health as etcd 3.5 answers it: false with "RAFT NO LEADER" when the member knows no
// leader, else a quorum (linearizable) read that must finish within a timeout, false with
// "RANGE ERROR:<error>" when it does not; `?serializable=true` skips both quorum checks.

import type { KvMember } from '../../src/server/kv-member.ts';
import { toApiError } from './errors.ts';

export interface Health {
  health: 'true' | 'false';
  reason: string;
}

/** How long the quorum read may take (etcd uses its request timeout; a probe wants an answer sooner). */
export const healthReadTimeoutMs = 2000;

export async function checkHealth(kv: KvMember, serializable: boolean, timeoutMs = healthReadTimeoutMs): Promise<Health> {
  if (serializable) return { health: 'true', reason: '' };
  if (kv.status().lead === 0) return { health: 'false', reason: 'RAFT NO LEADER' };
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('etcdserver: request timed out')), timeoutMs);
  });
  try {
    await Promise.race([kv.range({ key: new Uint8Array([0]), rangeEnd: new Uint8Array([0]), keysOnly: true, limit: 1 }), timeout]);
    return { health: 'true', reason: '' };
  } catch (err) {
    return { health: 'false', reason: `RANGE ERROR:${toApiError(err).message}` };
  } finally {
    clearTimeout(timer);
  }
}
