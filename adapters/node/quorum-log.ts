// A Node member without a quorum says so in its log every few seconds: which voters it misses,
// tab or Node member, for how long, and what to do (src/server/quorum-watch.ts).

import type { Clock } from '../../src/seams.ts';
import type { KvMember } from '../../src/server/kv-member.ts';
import { QuorumWatch } from '../../src/server/quorum-watch.ts';
import type { LogFn } from './node-member.ts';

export function watchQuorum(kv: KvMember, clock: Clock, log: LogFn): QuorumWatch {
  return new QuorumWatch(kv, {
    clock,
    whenGoneForGood:
      'restart this member with --force-new-cluster (it becomes the only voter of a new configuration and keeps its data; writes that only the missing members held are lost), then without it',
    log: (msg, r) =>
      log('warn', msg, {
        voters: r.voters,
        reachable: r.reachable,
        needed: r.needed,
        missing: r.missing.map((m) => ({ id: m.id.toString(16), name: m.name, kind: m.tab ? 'tab' : 'node', 'unreachable-s': Math.round(m.unreachableMs / 1000) })),
      }),
  });
}
