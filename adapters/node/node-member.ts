// A Node member: a KvMember on filesystem storage, serving etcd's API on its client URLs.
// The transport is a parameter so the TCP transport can replace the single-member one.

import { systemClock } from '../clock/system.ts';
import { EtcdListener } from '../etcd-api/listener.ts';
import { FsWalStorage } from '../storage/fs-wal/index.ts';
import { MemoryHub } from '../transport/memory.ts';
import { KvMember } from '../../src/server/kv-member.ts';
import type { MemberId } from '../../src/raft/types.ts';
import type { Transport } from '../../src/seams.ts';
import { clusterIdOf, memberIdOf, type NodeConfig } from './config.ts';

export type LogFn = (level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;

export interface NodeMemberDeps {
  log: LogFn;
  /** Builds the peer transport for this member; default: a one-member in-process transport. */
  transport?: (self: MemberId, peers: readonly MemberId[]) => Transport;
}

export interface NodeMember {
  id: MemberId;
  kv: KvMember;
  listeners: EtcdListener[];
  stop(): Promise<void>;
}

function singleMemberTransport(self: MemberId): Transport {
  return new MemoryHub().connect(self);
}

export async function startNodeMember(config: NodeConfig, deps: NodeMemberDeps): Promise<NodeMember> {
  const id = memberIdOf(config.name);
  const peers = [id];
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
      transport: (deps.transport ?? singleMemberTransport)(id, peers),
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
          members: (memberId) =>
            memberId === id
              ? { name: config.name, peerURLs: config.advertisePeerUrls, clientURLs: config.advertiseClientUrls }
              : undefined,
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
