// `startMember` (the `meshkv/node` export): a member embedded in a Node program, configured like
// the `meshkv` command (each option is a flag in camelCase and goes through the same parser, so
// it is checked the same way). Unlike the command, an embedded member reads no MESHKV_*
// environment variables. `connect` (a gRPC client) is in connect.ts, so that the `meshkv`
// command, which starts members through here, never loads grpc-js.

import type { MemberStatusBase } from '../../src/server/member-status.ts';
import { Client } from '../../src/client/client.ts';
import { InProcessConnection } from '../../src/client/local-connection.ts';
import type { MemberId, StateRole } from '../../src/raft/types.ts';
import { systemClock } from '../clock/system.ts';
import { ConfigError, flags, parseConfig, type NodeConfig } from './config.ts';
import { StartError, startNodeMember, type LogFn, type NodeMember, type NodeMemberDeps } from './node-member.ts';

export type { LogFn } from './node-member.ts';

/** A list option takes one string or several; a URL list also takes one comma-separated string. */
export type OneOrMore = string | readonly string[];

/** The `meshkv` command's flags in camelCase; defaults as there (one member on 127.0.0.1:2379). */
export interface StartMemberOptions {
  name?: string;
  /** Default `meshkv.data`, relative to the working directory. */
  dataDir?: string;
  listenClientUrls?: OneOrMore;
  advertiseClientUrls?: OneOrMore;
  initialAdvertisePeerUrls?: OneOrMore;
  listenPeerUrls?: OneOrMore;
  /** `name=peerURL,...` as for etcd, or `{ name: peerURL }`. */
  initialCluster?: string | Readonly<Record<string, OneOrMore>>;
  initialClusterState?: 'new' | 'existing';
  initialClusterToken?: string;
  snapshotCount?: number;
  experimentalFaultInjection?: boolean;
  certFile?: string;
  keyFile?: string;
  trustedCaFile?: string;
  clientCertAuth?: boolean;
  peerCertFile?: string;
  peerKeyFile?: string;
  peerTrustedCaFile?: string;
  peerClientCertAuth?: boolean;
  /**
   * `on` (the default) lets browser tabs join over WebRTC; that needs the optional package
   * node-datachannel (`npm install node-datachannel`). `off` for Node peers only.
   */
  browserPeers?: 'on' | 'off';
  signalingUrl?: string;
  browserOrigins?: OneOrMore;
  staticDir?: string;
  /** etcd's --auth-token: `simple` (the default) or `jwt,pub-key=<file>,priv-key=<file>,sign-method=RS256,ttl=5m`. */
  authToken?: string;
  /** etcd's --auth-token-ttl, in seconds: how long a simple token lives. */
  authTokenTtl?: number;
  /** Where the member's log lines go; by default warnings and errors go to console.warn. */
  log?: LogFn;
  /** Called once when the cluster has removed this member; it keeps running until stopped. */
  onRemoved?: () => void;
}

export interface MemberStatus extends MemberStatusBase {
  /** Where this member serves clients (gRPC and the JSON gateway), as `http://host:port`. */
  clientUrls: string[];
}

export interface Member {
  readonly id: MemberId;
  /** A client over this member, in the same process (no network in between). */
  readonly client: Client;
  status(): MemberStatus;
  /** Calls `fn` with the status whenever the role, term, leader or commit/apply indexes change; returns the unsubscribe. */
  onStatus(fn: (status: MemberStatus) => void): () => void;
  /** Closes the client, the listeners and the storage; resolves once everything is closed. */
  stop(): Promise<void>;
}

const defaultLog: LogFn = (level, msg, fields) => {
  if (level === 'warn' || level === 'error') console.warn(`meshkv ${level}: ${msg}`, ...(fields ? [fields] : []));
};

const camelCase = (flag: string) => flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
const optionFlags = new Map(Object.keys(flags).map((flag) => [camelCase(flag), flag]));

/** The command line these options stand for. */
function toArgv(options: StartMemberOptions): string[] {
  const argv: string[] = [];
  for (const [key, value] of Object.entries(options)) {
    if (key === 'log' || key === 'onRemoved' || value === undefined) continue;
    const flag = optionFlags.get(key);
    if (flag === undefined) throw new ConfigError(`unknown option ${JSON.stringify(key)} (options are the meshkv command's flags in camelCase: ${[...optionFlags.keys()].join(', ')})`);
    argv.push(`--${flag}=${optionText(key, value)}`);
  }
  return argv;
}

function optionText(key: string, value: unknown): string {
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return value.join(',');
  if (key === 'initialCluster' && typeof value === 'object' && value !== null) {
    return Object.entries(value as Record<string, OneOrMore>)
      .flatMap(([name, urls]) => (typeof urls === 'string' ? urls.split(',') : urls).map((url) => `${name}=${url}`))
      .join(',');
  }
  throw new ConfigError(`option ${key}: expected a string, number, boolean or list, not ${JSON.stringify(value)}`);
}

/** The parser and the start speak of flags; an embedded member's caller wrote options. */
function inOptionTerms(message: string): string {
  return message.replace(/--([a-z-]+)/g, (whole, flag: string) => (flag in flags ? camelCase(flag) : whole));
}

/** A started member as the package presents it: its client, its status, its stop. */
class EmbeddedMember implements Member {
  readonly id: MemberId;
  readonly client: Client;
  private stopping: Promise<void> | null = null;

  constructor(
    private readonly node: NodeMember,
    private readonly name: string,
    private readonly clientUrls: readonly string[],
  ) {
    this.id = node.id;
    this.client = new Client({ connection: new InProcessConnection([node.kv], { clock: systemClock }), clock: systemClock });
  }

  status(): MemberStatus {
    const s = this.node.kv.status();
    return {
      id: this.id,
      name: this.name,
      role: s.role,
      term: s.term,
      leader: s.lead,
      commit: s.commit,
      applied: s.applied,
      voters: [...s.confState.voters],
      learners: [...s.confState.learners],
      clientUrls: [...this.clientUrls],
    };
  }

  onStatus(fn: (status: MemberStatus) => void): () => void {
    return this.node.kv.onChange(() => fn(this.status()));
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.client.close();
      await this.node.stop();
    })();
    return this.stopping;
  }
}

/** startMember for a configuration already parsed (the `meshkv` command's flags and variables). */
export async function startMemberWithConfig(config: NodeConfig, deps: NodeMemberDeps): Promise<Member> {
  const node = await startNodeMember(config, deps);
  const scheme = config.clientTls ? 'https' : 'http';
  const clientUrls = node.listeners.map((l) => `${scheme}://${l.host.includes(':') ? `[${l.host}]` : l.host}:${l.port}`);
  return new EmbeddedMember(node, config.name, clientUrls);
}

/**
 * Starts a member in this process and resolves once it serves clients on its client URLs.
 * Requests made before the cluster has a leader wait for one, as etcd's do. Rejects with a
 * ConfigError for a bad option, or with the reason the member could not start (a data
 * directory in use, a port taken, ...), having closed whatever it had opened.
 */
export async function startMember(options: StartMemberOptions = {}): Promise<Member> {
  let parsed;
  try {
    parsed = parseConfig(toArgv(options), {});
  } catch (err) {
    throw err instanceof ConfigError ? new ConfigError(inOptionTerms(err.message)) : err;
  }
  if (parsed.kind !== 'start') throw new Error(`unreachable: the options asked for ${parsed.kind}`);
  try {
    return await startMemberWithConfig(parsed.config, { log: options.log ?? defaultLog, onRemoved: options.onRemoved });
  } catch (err) {
    throw err instanceof StartError ? new StartError(inOptionTerms(err.message)) : err;
  }
}
