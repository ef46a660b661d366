// A Node member (the NodeMember class): a KvMember on filesystem storage, serving etcd's API on
// its client URLs and talking to its peers over the TCP transport. The peer addresses come from
// --initial-cluster at first, then from the replicated member table (conf change contexts,
// snapshots), so members added later are dialled by every member (PeerDialer). With browser
// peers on (the default), tabs join too: their `webrtc://` peer URLs route to a WebRTC
// transport (./browser-peers.ts).

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import tls from 'node:tls';
import type { LmdbBackend } from '../backend/lmdb.ts';
import { AdjustableClock } from '../clock/adjustable.ts';
import { systemClock } from '../clock/system.ts';
import type { FaultControls } from '../etcd-api/fault-admin.ts';
import { EtcdListener } from '../etcd-api/listener.ts';
import { FsWalStorage, nodeWalFs } from '../storage/fs-wal/index.ts';
import { DiskFaults } from '../storage/fs-wal/faulty-fs.ts';
import { FaultyBackend } from '../backend/faulty-backend.ts';
import { CompositeTransport } from '../transport/composite.ts';
import { MemoryHub } from '../transport/memory.ts';
import { TcpTransport, TcpTransportError, peerFrameBytesMax, type TcpTlsOptions } from '../transport/tcp/index.ts';
import { defaultMessageBytesMax } from '../../src/raft/config.ts';
import { KvMember } from '../../src/server/kv-member.ts';
import type { MemberRecord } from '../../src/server/member-table.ts';
import type { MemberId } from '../../src/raft/types.ts';
import type { Transport } from '../../src/seams.ts';
import type { BrowserPeers } from './browser-peers.ts';
import { preflightProblem } from './preflight.ts';
import { watchQuorum } from './quorum-log.ts';
import { JwtKeyError, loadJwtTokens } from './jwt-keys.ts';
import { SecretError, faultSecretFile, loadMemberSecrets, type MemberSecrets } from './member-secrets.ts';
import { hostAllowed } from '../etcd-api/access.ts';
import { clusterIdOf, memberIdOfPeerUrls, signalingPath, webrtcScheme, type InitialMember, type ClientTlsFiles, type NodeConfig, type PeerTlsFiles } from './config.ts';

/** The state machine's backend: a directory inside the data dir. */
export const backendDirName = 'backend';

export type LogFn = (level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;

/** What the member needs of a peer transport beyond the seam: dialling and forgetting peers. */
export interface PeerTransport extends Transport {
  addPeer(id: MemberId, address: string): void;
  removePeer(id: MemberId): void;
  /** Members removed from the table: the transport refuses them, so that they learn it and stop. */
  setRemoved(ids: Iterable<MemberId>): void;
  /** Since when (Date.now()) the link to `id` has been up, or null while it is down. */
  activeSince(id: MemberId): number | null;
}

export interface NodeMemberDeps {
  log: LogFn;
  /**
   * Builds the peer transport for this member. Default: the TCP transport on
   * --listen-peer-urls when there is one, else an in-process transport to nobody (a single
   * member that refuses membership changes).
   */
  transport?: (self: InitialMember, config: NodeConfig) => Promise<PeerTransport | Transport>;
  /**
   * Called once when peers keep refusing this member because it was removed from the cluster
   * (the default transport only); the member keeps running until the caller stops it.
   */
  onRemoved?: () => void;
}

export class StartError extends Error {}

/** Who may reach Raft through the peer transports: secret holders, and of them members of the table. */
interface PeerAdmission {
  secret: string;
  /** What tabs and members joining through signaling present. */
  signalingSecret: string;
  admits: (peer: MemberId) => boolean;
}

/** Entries kept behind a snapshot for lagging followers, at most (etcd: SnapshotCatchUpEntries). */
export const snapshotCatchUpEntriesMax = 5000;
/** Delay between attempts to publish this member's name and client URLs. */
const publishRetryMs = 1000;

async function defaultTransport(self: InitialMember, config: NodeConfig, log: LogFn, onRemoved: () => void, admission: PeerAdmission): Promise<PeerTransport | Transport> {
  if (config.listenPeerUrls === null) return new MemoryHub().connect(self.id);
  if (config.listenPeerUrls.length > 1) log('warn', 'only the first --listen-peer-urls URL is served', { url: config.listenPeerUrls[0].origin });
  const url = config.listenPeerUrls[0];
  const tlsOptions = config.peerTls && readPeerTls(config.peerTls);
  try {
    return await TcpTransport.listen({
      id: self.id,
      clusterToken: config.clusterToken,
      admissionSecret: admission.secret,
      admits: admission.admits,
      frameBytesMax: peerFrameBytesMax(config.security.maxRequestBytes, defaultMessageBytesMax),
      ...(config.security.peerCertAllowedCn === null ? {} : { allowedCn: config.security.peerCertAllowedCn }),
      host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: Number(url.port),
      log: (level, msg) => {
        if (level !== 'debug') log(level, msg);
      },
      onRemoved,
      ...(tlsOptions ? { tls: tlsOptions } : {}),
    });
  } catch (err) {
    if (err instanceof TcpTransportError) throw new StartError(`peer listener: ${err.message}`);
    throw err;
  }
}

function readTlsFile(flag: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new StartError(`--${flag}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** Checks that the PEM files make a usable key pair (and CA), or says which files are wrong. */
function checkTls<T extends tls.SecureContextOptions>(what: string, options: T): T {
  try {
    tls.createSecureContext(options);
  } catch (err) {
    throw new StartError(`${what}: ${(err as Error).message}`);
  }
  return options;
}

function readPeerTls(files: PeerTlsFiles): TcpTlsOptions {
  return checkTls(`peer TLS: --peer-cert-file ${files.certFile}, --peer-key-file ${files.keyFile}, --peer-trusted-ca-file ${files.trustedCaFile}`, {
    cert: readTlsFile('peer-cert-file', files.certFile),
    key: readTlsFile('peer-key-file', files.keyFile),
    ca: readTlsFile('peer-trusted-ca-file', files.trustedCaFile),
  });
}

function readClientTls(files: ClientTlsFiles): { cert: Buffer; key: Buffer; ca?: Buffer } {
  const options = { cert: readTlsFile('cert-file', files.certFile), key: readTlsFile('key-file', files.keyFile) };
  const what = `client TLS: --cert-file ${files.certFile}, --key-file ${files.keyFile}`;
  if (files.trustedCaFile === null) return checkTls(what, options);
  return checkTls(`${what}, --trusted-ca-file ${files.trustedCaFile}`, { ...options, ca: readTlsFile('trusted-ca-file', files.trustedCaFile) });
}

function isPeerTransport(t: Transport): t is PeerTransport {
  const p = t as PeerTransport;
  return [p.addPeer, p.removePeer, p.setRemoved, p.activeSince].every((f) => typeof f === 'function');
}

/** What the transport dials: `host:port` of a peer URL for TCP; a WebRTC member's URL whole, for the CompositeTransport to route. */
function peerAddress(url: string): string {
  const parsed = new URL(url);
  return parsed.protocol === `${webrtcScheme}:` ? url : parsed.host;
}

/** The TCP (or in-process) transport, with WebRTC beside it when browser peers are on. */
async function withBrowserPeers(
  base: PeerTransport | Transport,
  self: InitialMember,
  config: NodeConfig,
  log: LogFn,
  admission: PeerAdmission,
): Promise<{ transport: PeerTransport | Transport; browser: BrowserPeers | null }> {
  if (config.browserPeers === null) return { transport: base, browser: null };
  // Loaded only when asked for: with --browser-peers off, node-datachannel's native module is never loaded.
  const peers = await import('./browser-peers.ts').catch(async (err: NodeJS.ErrnoException) => {
    await base.close();
    // node-datachannel is an optional peer dependency of the package: installed on purpose only.
    // node-wrtc.ts finds it with require.resolve (MODULE_NOT_FOUND) and loads it on the first connection.
    const missing = (err.code === 'ERR_MODULE_NOT_FOUND' || err.code === 'MODULE_NOT_FOUND') && /'node-datachannel[/']/.test(err.message);
    if (missing) throw new StartError('browser peers need the optional package node-datachannel (npm install node-datachannel); start with --browser-peers off to run without tabs');
    throw new StartError(`browser peers: cannot load WebRTC (node-datachannel): ${err.message}; start with --browser-peers off to run without tabs`);
  });
  let browser: BrowserPeers;
  try {
    browser = await peers.openBrowserPeers({
      id: self.id,
      clusterToken: config.clusterToken,
      secret: admission.signalingSecret,
      admits: admission.admits,
      allowHost: (host) => hostAllowed(config.security, host, config.clientTls !== null),
      config: config.browserPeers,
      bindAddress: config.listenClientUrls[0].hostname.replace(/^\[(.*)\]$/, '$1'),
      log,
    });
  } catch (err) {
    await base.close();
    if (err instanceof peers.BrowserPeersError) throw new StartError(err.message);
    throw err;
  }
  return { transport: new CompositeTransport([{ schemes: [webrtcScheme], transport: browser.transport }], base), browser };
}

/**
 * Whom the transport dials: the configured peers at first, then the replicated member table.
 * Members this member saw removed are refused from then on (until added again), so that a
 * removed member learns it and stops, as etcd's peers tell it with 410 Gone.
 */
class PeerDialer {
  private readonly dialled = new Map<MemberId, string>();

  constructor(
    private readonly self: MemberId,
    private readonly transport: PeerTransport | Transport,
    /** Set when the transport reaches Node members and can refuse removed ones. */
    private readonly peerTransport: PeerTransport | null,
    private readonly log: LogFn,
  ) {}

  /**
   * Dials every member of `records` not dialled yet at its address, and forgets the others
   * except `keep`, which stays dialled at the address it has.
   */
  dial(records: readonly { id: MemberId; peerURLs: string[] }[], keep: MemberId = 0): void {
    // Every transport dials (a lone member without a peer listener still reaches tabs over WebRTC).
    const wanted = new Map(records.filter((r) => r.id !== this.self && r.peerURLs.length > 0).map((r) => [r.id, peerAddress(r.peerURLs[0])]));
    for (const [peer, address] of wanted) {
      if (this.dialled.get(peer) === address) continue;
      this.transport.addPeer(peer, address);
      this.dialled.set(peer, address);
      this.log('info', 'dialling peer', { peer: peer.toString(16), address });
    }
    for (const peer of [...this.dialled.keys()]) {
      if (wanted.has(peer) || peer === keep) continue;
      this.transport.removePeer(peer);
      this.dialled.delete(peer);
      this.log('info', 'forgot removed peer', { peer: peer.toString(16) });
    }
  }

  /**
   * From now on the replicated table decides whom to dial (it always holds this member's
   * configured peers until a change or snapshot says otherwise). Returns the unsubscribe.
   */
  follow(kv: KvMember): () => void {
    const redial = () => {
      // The leader stays dialled even when the table lacks it: a snapshot taken before that
      // leader was added gives such a table, and this member must answer the appends that
      // bring the entry adding it (KvMember.hearsFrom admits them). Forgotten, the leader
      // never heard back, and a learner restored from such a snapshot stalled for good.
      this.dial(kv.members.list(), kv.member.status().lead);
      // Not every member that left the table: one missing from a snapshot or from the early
      // entries a joiner replays may be added by a later entry (MemberTable.removedIds).
      this.peerTransport?.setRemoved(kv.members.removed());
    };
    redial();
    return kv.onMembersChanged(redial);
  }
}

/** What a NodeMember is made of, opened in order by NodeMember.start. */
interface NodeMemberParts {
  config: NodeConfig;
  kv: KvMember;
  transport: PeerTransport | Transport;
  peerTransport: PeerTransport | null;
  browser: BrowserPeers | null;
  /** Only with fault injection on is the clock adjustable (and the admin endpoint served). */
  clock: AdjustableClock | null;
  /** The disk faults of the WAL and the backend, with fault injection on (like the adjustable clock). */
  disk: DiskFaults | null;
  backend: LmdbBackend;
  secrets: MemberSecrets;
  log: LogFn;
}

/**
 * A member on this machine: a KvMember on fs-wal storage, its peer transport(s), and etcd's API
 * on every client URL. Start with `NodeMember.start` (or startNodeMember); it resolves once
 * every listener serves.
 */
export class NodeMember {
  readonly id: MemberId;
  readonly kv: KvMember;
  /** One per client URL, in the order of --listen-client-urls. */
  readonly listeners: EtcdListener[] = [];
  private readonly stops: (() => void)[] = [];

  private constructor(private readonly p: NodeMemberParts) {
    this.id = p.kv.id;
    this.kv = p.kv;
  }

  static async start(config: NodeConfig, deps: NodeMemberDeps): Promise<NodeMember> {
    // First, so that a missing package stops the start before anything is opened.
    const { LmdbBackend } = await loadLmdb();
    const tokenConfig = config.security.authToken;
    const authJwt =
      tokenConfig.kind === 'jwt'
        ? await loadJwtTokens(tokenConfig, () => Date.now()).catch((err: unknown) => {
            throw err instanceof JwtKeyError ? new StartError(err.message) : err;
          })
        : undefined;
    const log = deps.log;
    // Read first: a bad file stops the start before anything is opened.
    const clientTls = config.clientTls && readClientTls(config.clientTls);
    // Then every port and the data dir, before anything is written there (preflight.ts).
    const problem = await preflightProblem(config, deps.transport === undefined);
    if (problem !== null) throw new StartError(problem);
    // Then the data dir's lock, which the WAL takes: a second process on the same dir must stop
    // here, before it listens on the peer port or dials anyone (its Hello would reach the live
    // member's peers), and before the secrets below may be written into the dir.
    // Only with fault injection on do the WAL and the backend go through the disk-fault wrappers.
    const disk = config.faultInjection ? new DiskFaults() : null;
    const storage = await FsWalStorage.open(config.dataDir, {
      ...(disk ? { fs: disk.wrap(nodeWalFs) } : {}),
      logger: {
        debug: (m) => log('debug', m),
        info: (m) => log('info', m),
        warn: (m) => log('warn', m),
      },
    });
    // Values and history live in an LMDB backend beside the WAL (the WAL's lock covers it too).
    let backend: LmdbBackend;
    try {
      // A write transaction per interval, not per applied entry (the WAL covers the wait).
      backend = LmdbBackend.open(join(config.dataDir, backendDirName), { batchIntervalMs: config.backendBatchIntervalMs });
    } catch (err) {
      await storage.close().catch(() => {});
      throw err;
    }
    try {
      return await NodeMember.startLocked(config, deps, { storage, backend, disk, clientTls, authJwt });
    } catch (err) {
      await backend.close().catch(() => {});
      await storage.close().catch(() => {});
      throw err;
    }
  }

  /** The rest of start, once this process holds the data dir: closes what it opened itself when it fails. */
  private static async startLocked(
    config: NodeConfig,
    deps: NodeMemberDeps,
    opened: {
      storage: FsWalStorage;
      backend: LmdbBackend;
      disk: DiskFaults | null;
      clientTls: { cert: Buffer; key: Buffer; ca?: Buffer } | null;
      authJwt: Awaited<ReturnType<typeof loadJwtTokens>> | undefined;
    },
  ): Promise<NodeMember> {
    const { storage, backend, disk, clientTls, authJwt } = opened;
    const self = config.initialCluster.find((m) => m.name === config.name)!;
    const log = deps.log;
    let removedReported = false;
    const onRemoved = () => {
      if (removedReported) return;
      removedReported = true;
      deps.onRemoved?.();
    };
    const secrets = await loadMemberSecrets(config, log).catch((err: unknown) => {
      throw err instanceof SecretError ? new StartError(err.message) : err;
    });
    // Raft hears only members of the table (before the member is up: the configured ones). A
    // member joining an existing cluster has no configuration until the leader's first snapshot
    // or append, and may not know that leader yet: until then it hears every admitted peer.
    let kvStarted: KvMember | null = null;
    const configured = new Set(config.initialCluster.flatMap((m) => [m.id, memberIdOfPeerUrls(m.peerUrls)]));
    const admits = (peer: MemberId): boolean => (kvStarted ? kvStarted.hearsFrom(peer) : configured.has(peer) || config.initialClusterState === 'existing');
    const admission: PeerAdmission = { secret: secrets.admission, signalingSecret: secrets.signaling, admits };
    const base = deps.transport ? await deps.transport(self, config) : await defaultTransport(self, config, log, onRemoved, admission);
    // Membership changes through the etcd API need a transport that reaches Node members (TCP).
    const baseIsPeerTransport = isPeerTransport(base);
    const { transport, browser } = await withBrowserPeers(base, self, config, log, admission);
    const peerTransport = baseIsPeerTransport && isPeerTransport(transport) ? transport : null;
    if (config.initialCluster.length > 1 && peerTransport === null) {
      await transport.close();
      throw new StartError(`--initial-cluster names ${config.initialCluster.length} members, but the member has no peer transport`);
    }
    const id = self.id;
    // Founding members bootstrap; a joining member starts empty and learns everything from the leader.
    const peers = config.initialClusterState === 'new' ? config.initialCluster.map((m) => m.id) : [];
    const initialMembers: MemberRecord[] = config.initialCluster.flatMap((m) => {
      // Every member seeds the same table; client URLs arrive through each member's publish.
      const record = { id: m.id, name: m.name, peerURLs: m.peerUrls, clientURLs: [], isLearner: false };
      // A joining member cannot tell a founder (id from its name) from a member added later (id
      // from its peer URLs), so it dials both; the handshake refuses the wrong one, and the
      // leader's snapshot or the first applied conf change drops it from the table.
      const addedId = memberIdOfPeerUrls(m.peerUrls);
      if (config.initialClusterState === 'new' || m.id === id || addedId === m.id) return [record];
      return [record, { ...record, id: addedId }];
    });
    // Dial the configured peers now, so that the first elections and replies get through.
    const dialer = new PeerDialer(id, transport, peerTransport, log);
    dialer.dial(initialMembers);

    const clock = config.faultInjection ? new AdjustableClock(systemClock) : null;
    let kv: KvMember;
    try {
      kv = await KvMember.start({
        id,
        peers,
        clock: clock ?? systemClock,
        storage,
        transport,
        random: Math.random,
        // A put's answer leaves before the commit notices to peers (Member.handleReady).
        afterTurn: setImmediate,
        snapshotEntries: config.snapshotCount,
        snapshotKeepEntries: Math.min(snapshotCatchUpEntriesMax, config.snapshotCount),
        requestBytesMax: config.security.maxRequestBytes,
        authCrypto: globalThis.crypto,
        authTokenTtlMs: config.security.authTokenTtlMs,
        ...(authJwt ? { authJwt } : {}),
        initialMembers,
        // etcd fixes the id at founding; every later member learns it from the cluster.
        ...(config.initialClusterState === 'new' ? { foundingClusterId: clusterIdOf(config.initialCluster.map((m) => m.id)) } : {}),
        forceNewCluster: config.forceNewCluster,
        // With fault injection on, the backend's commits go through the same disk-fault switch as the WAL.
        mvcc: { backend: disk ? new FaultyBackend(backend, disk, join(config.dataDir, backendDirName)) : backend },
        log: (level, msg) => {
          if (level !== 'debug') log(level, msg);
        },
      });
    } catch (err) {
      await transport.close().catch(() => {});
      throw err;
    }
    kvStarted = kv;
    const member = new NodeMember({ config, kv, transport, peerTransport, browser, clock, disk, backend, secrets, log });
    member.stops.push(dialer.follow(kv));
    const quorumWatch = watchQuorum(kv, clock ?? systemClock, log);
    member.stops.push(() => quorumWatch.stop());
    browser?.serve(kv, initialMembers);
    // etcd's publish: this member's name and client URLs go into the table once there is a leader.
    member.stops.push(kv.keepAttributesPublished(config.name, config.advertiseClientUrls, publishRetryMs));
    try {
      await member.listen(clientTls);
    } catch (err) {
      await member.stop();
      throw err;
    }
    return member;
  }

  /** Serves etcd's API (and the browser signaling endpoint) on every client URL. */
  private async listen(clientTls: { cert: Buffer; key: Buffer; ca?: Buffer } | null): Promise<void> {
    const { config, kv, transport, peerTransport, browser, clock, disk, secrets, log } = this.p;
    const faults: FaultControls | undefined = clock
      ? { faults: transport.faults, clock, ...(disk ? { disk } : {}), peers: () => kv.members.list().map((m) => m.id).filter((m) => m !== this.id) }
      : undefined;
    if (faults) log('warn', 'fault injection is on: holders of its secret can cut peer links, skew the clock and fail the disk of the WAL and the backend', { path: '/meshkv/faults', 'secret-file': config.security.faultInjectionSecret.kind === 'file' ? config.security.faultInjectionSecret.path : join(config.dataDir, faultSecretFile), remote: config.security.faultInjectionRemote });
    for (const url of config.listenClientUrls) {
      const listener = await EtcdListener.listen({
        kv,
        host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
        port: Number(url.port),
        ...(clientTls ? { tls: clientTls } : {}),
        // Founders seeded it at bootstrap; a joiner reports 0 until the leader's snapshot brings it.
        clusterId: () => kv.members.clusterId ?? '0',
        members: (memberId) => this.describeMember(memberId),
        // Without a peer listener, changes that need no new link (remove, promote) still work.
        membership: {
          newMemberId: memberIdOfPeerUrls,
          activeSince: (peer) => (isPeerTransport(transport) ? transport.activeSince(peer) : null),
          peerListener: peerTransport !== null,
        },
        ...(faults ? { faults: { controls: faults, guard: { secret: secrets.fault!, remote: config.security.faultInjectionRemote } } } : {}),
        access: { cors: config.security.cors, hostWhitelist: config.security.hostWhitelist },
        requestBytesMax: config.security.maxRequestBytes,
        http2Server: config.http2Server,
        // Pages this member serves join its signaling; a member that joins another's endpoint gives no secret out.
        ...(config.browserPeers?.signalingUrl === null ? { admission: { cluster: config.clusterToken, secret: secrets.signaling, signalingPath } } : {}),
        ...(config.staticDir === null ? {} : { staticRoot: config.staticDir }),
      });
      this.listeners.push(listener);
      browser?.attach(listener);
    }
  }

  /** A member's name and URLs as MemberList reports them, from the table or the configuration. */
  private describeMember(memberId: MemberId): { name: string; peerURLs: string[]; clientURLs: string[] } | undefined {
    const { config, kv } = this.p;
    const m = kv.members.get(memberId);
    // This member's own name and client URLs are known here before its publish applies.
    if (m && memberId === this.id) return { ...m, name: config.name, clientURLs: config.advertiseClientUrls };
    if (m) return m;
    const c = config.initialCluster.find((i) => i.id === memberId);
    return c && { name: c.name, peerURLs: c.peerUrls, clientURLs: memberId === this.id ? config.advertiseClientUrls : [] };
  }

  async stop(): Promise<void> {
    for (const stop of this.stops.splice(0)) stop();
    for (const l of this.listeners) await l.close();
    // No membership change starts while the member stops; its transport's close is repeatable.
    await this.p.browser?.close();
    await this.kv.stop();
    await this.p.backend.close();
  }
}

/**
 * The backend's module, loaded when a member starts: lmdb (a native addon) is an optional peer
 * dependency of the package, so that browser-only and client-only consumers never install it.
 */
async function loadLmdb(): Promise<typeof import('../backend/lmdb.ts')> {
  return import('../backend/lmdb.ts').catch((err: NodeJS.ErrnoException) => {
    const missing = err.code === 'ERR_MODULE_NOT_FOUND' && err.message.includes("'lmdb'");
    if (missing) throw new StartError('a Node member needs the package lmdb, its storage backend (npm install lmdb)');
    throw new StartError(`cannot load the storage backend (lmdb): ${err.message}`);
  });
}

/** Starts a member; resolves once it serves on every client URL (NodeMember.start). */
export function startNodeMember(config: NodeConfig, deps: NodeMemberDeps): Promise<NodeMember> {
  return NodeMember.start(config, deps);
}
