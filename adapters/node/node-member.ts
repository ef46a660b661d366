// A Node member: a KvMember on filesystem storage, serving etcd's API on its client URLs.
// The transport is a parameter so the TCP transport can replace the single-member one.

import { systemClock } from '../clock/system.ts';
import { EtcdListener } from '../etcd-api/listener.ts';
import { FsWalStorage } from '../storage/fs-wal/index.ts';
import { MemoryHub } from '../transport/memory.ts';
import { KvMember } from '../../src/server/kv-member.ts';
import type { MemberId } from '../../src/raft/types.ts';
import type { Transport } from '../../src/seams.ts';
import { clusterIdOf, type InitialMember, type NodeConfig } from './config.ts';

export type LogFn = (level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;

export interface NodeMemberDeps {
  log: LogFn;
  /**
   * Builds the peer transport, given this member and every initial member with its peer URLs.
   * Without one, only a single-member cluster can start (an in-process transport to nobody).
   */
  transport?: (self: InitialMember, members: readonly InitialMember[]) => Transport;
}

export class StartError extends Error {}

export interface NodeMember {
  id: MemberId;
  kv: KvMember;
  listeners: EtcdListener[];
  stop(): Promise<void>;
}

function singleMemberTransport(self: InitialMember): Transport {
  return new MemoryHub().connect(self.id);
}

export async function startNodeMember(config: NodeConfig, deps: NodeMemberDeps): Promise<NodeMember> {
  const self = config.initialCluster.find((m) => m.name === config.name)!;
  if (config.initialCluster.length > 1 && deps.transport === undefined) {
    throw new StartError(
      `--initial-cluster names ${config.initialCluster.length} members, but this build has no peer transport yet ` +
        '(multi-member clusters arrive with the TCP transport); start a single member',
    );
  }
  const id = self.id;
  const peers = config.initialCluster.map((m) => m.id);
  const log = deps.log;
  const storage = await FsWalStorage.open(config.dataDir, {
    logger: {
      debug: (m) => log('debug', m),
      info: (m) => log('info', m),
      warn: (m) => log('warn', m),
    },
  });
  let kv: KvMember;
  try {
    kv = await KvMember.start({
      id,
      peers,
      clock: systemClock,
      storage,
      transport: deps.transport ? deps.transport(self, config.initialCluster) : singleMemberTransport(self),
      random: Math.random,
      log: (level, msg) => {
        if (level !== 'debug') log(level, msg);
      },
    });
  } catch (err) {
    await storage.close().catch(() => {});
    throw err;
  }
  const clusterId = clusterIdOf(peers);
  const listeners: EtcdListener[] = [];
  try {
    for (const url of config.listenClientUrls) {
      const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
      listeners.push(
        await EtcdListener.listen({
          kv,
          host,
          port: Number(url.port),
          clusterId,
          members: (memberId) => {
            if (memberId === id) return { name: config.name, peerURLs: config.advertisePeerUrls, clientURLs: config.advertiseClientUrls };
            // Other members' client URLs are unknown until they publish them (not yet).
            const m = config.initialCluster.find((c) => c.id === memberId);
            return m && { name: m.name, peerURLs: m.peerUrls, clientURLs: [] };
          },
        }),
      );
    }
  } catch (err) {
    for (const l of listeners) await l.close();
    await kv.stop();
    throw err;
  }
  return {
    id,
    kv,
    listeners,
    async stop() {
      for (const l of listeners) await l.close();
      await kv.stop();
    },
  };
}
