// The `meshkv` start command's configuration: flags, then MESHKV_* environment variables, then
// embedded defaults (one member, data in ./meshkv.data, clients on 127.0.0.1:2379). Parsing is
// pure so that every refusal can be tested; each carries a message a user can act on.

import { createHash } from 'node:crypto';
import { DEFAULT_HTTP2_SERVER, type Http2ServerKind } from '../etcd-api/listener.ts';
import { SecurityConfigError, parseSecurityConfig, securityFlags, type SecurityConfig } from './security-config.ts';

export interface NodeConfig {
  name: string;
  dataDir: string;
  /** Where the client port (gRPC + JSON gateway) listens. */
  listenClientUrls: URL[];
  /** What MemberList tells clients; defaults to the listen URLs. */
  advertiseClientUrls: string[];
  /** This member's peer URLs, as the other members reach it. */
  advertisePeerUrls: string[];
  /**
   * Where the peer transport listens; null when not asked for (a single member then runs
   * without a peer listener and refuses membership changes).
   */
  listenPeerUrls: URL[] | null;
  /** Every initial member, this one included (etcd's --initial-cluster). */
  initialCluster: InitialMember[];
  /** `new` bootstraps the cluster from --initial-cluster; `existing` joins one that has added this member. */
  initialClusterState: 'new' | 'existing';
  /** Peers with a different token are refused (etcd's --initial-cluster-token). */
  clusterToken: string;
  /** Applied entries between snapshots (etcd's --snapshot-count). */
  snapshotCount: number;
  /** How long applied writes wait to share one backend write transaction (etcd's --backend-batch-interval). */
  backendBatchIntervalMs: number;
  /** Serve the fault-injection admin endpoint /meshkv/faults (never in production). */
  faultInjection: boolean;
  /** Which HTTP/2 server carries gRPC on the client port (meshkv's own, or node:http2). */
  http2Server: Http2ServerKind;
  /** PEM files for mutual TLS between peers; null for plain TCP (http:// peer URLs). */
  peerTls: PeerTlsFiles | null;
  /** PEM files for TLS on the client port (https:// client URLs); null for plain TCP. */
  clientTls: ClientTlsFiles | null;
  /** Browser tabs as peers: a WebRTC transport next to TCP, signaling, automatic membership. */
  browserPeers: BrowserPeersConfig | null;
  /** A directory served over HTTP on the client port (the built demo), or null. */
  staticDir: string | null;
  /**
   * etcd's --force-new-cluster: start as the only voter of a new configuration, keeping the
   * data (src/server/force-new-cluster.ts). For a cluster whose quorum is lost for good.
   */
  forceNewCluster: boolean;
  /** Admission secrets, the fault endpoint's secret, CORS, host whitelist, peer CN, request size (security-config.ts). */
  security: SecurityConfig;
}

export interface ClientTlsFiles {
  certFile: string;
  keyFile: string;
  /** Set with --client-cert-auth: clients must present a certificate this CA signed. */
  trustedCaFile: string | null;
}

/** Paths, read at start (node-member.ts) so that an unreadable file is a start failure. */
export interface PeerTlsFiles {
  certFile: string;
  keyFile: string;
  trustedCaFile: string;
}

export interface BrowserPeersConfig {
  /**
   * The signaling endpoint this member joins (ws://host:port/meshkv/signal of the member that
   * hosts it), or null to host one at `signalingPath` on every client URL and join that.
   */
  signalingUrl: string | null;
  /** Origins besides the client URL's own whose pages may join through the hosted endpoint; `*` for any. */
  allowedOrigins: string[] | '*';
  /** The tab vote policy to set for the cluster (--tabs-may-outvote), or null to leave it as it is. */
  tabsMayOutvote: boolean | null;
  /** How long the leader waits for an unreachable tab before removing it (--tab-grace-ms). */
  tabGraceMs: number;
}

/** Where a member hosts the WebSocket signaling endpoint on its client port. */
export const signalingPath = '/meshkv/signal';

/** The scheme of a WebRTC member's peer URL (`webrtc://<id>`): the CompositeTransport routes it to WebRTC. */
export const webrtcScheme = 'webrtc';

export interface InitialMember {
  name: string;
  id: number;
  peerUrls: string[];
}

export class ConfigError extends Error {}

interface FlagSpec {
  env: string;
  help: string;
  defaultValue: string;
  /** A switch: `--flag` alone means true; `--flag=false` is also accepted. */
  boolean?: true;
}

export const flags: Record<string, FlagSpec> = {
  name: { env: 'MESHKV_NAME', help: 'Human-readable name for this member.', defaultValue: 'default' },
  'data-dir': { env: 'MESHKV_DATA_DIR', help: 'Path to the data directory.', defaultValue: 'meshkv.data' },
  'listen-client-urls': {
    env: 'MESHKV_LISTEN_CLIENT_URLS',
    help: 'Comma-separated URLs to listen on for client traffic (gRPC and the JSON gateway).',
    defaultValue: 'http://127.0.0.1:2379',
  },
  'advertise-client-urls': {
    env: 'MESHKV_ADVERTISE_CLIENT_URLS',
    help: "Comma-separated client URLs to advertise to the cluster (default: the listen URLs).",
    defaultValue: '',
  },
  'initial-advertise-peer-urls': {
    env: 'MESHKV_INITIAL_ADVERTISE_PEER_URLS',
    help: "This member's peer URLs, as other members reach it.",
    defaultValue: 'http://localhost:2380',
  },
  'listen-peer-urls': {
    env: 'MESHKV_LISTEN_PEER_URLS',
    help: 'URL to listen on for peer traffic (default: the advertised peer URL when the cluster has or may get other members).',
    defaultValue: '',
  },
  'initial-cluster': {
    env: 'MESHKV_INITIAL_CLUSTER',
    help: 'Initial members as name=peerURL,... (default: this member alone).',
    defaultValue: '',
  },
  'initial-cluster-state': {
    env: 'MESHKV_INITIAL_CLUSTER_STATE',
    help: "'new' to bootstrap a cluster, 'existing' to join one (after etcdctl member add).",
    defaultValue: 'new',
  },
  'initial-cluster-token': {
    env: 'MESHKV_INITIAL_CLUSTER_TOKEN',
    help: 'Cluster token; members with another token refuse each other.',
    defaultValue: 'meshkv-cluster',
  },
  'snapshot-count': {
    env: 'MESHKV_SNAPSHOT_COUNT',
    help: 'Applied entries between snapshots.',
    defaultValue: '10000',
  },
  'backend-batch-interval': {
    env: 'MESHKV_BACKEND_BATCH_INTERVAL',
    help: 'Longest wait before applied writes are committed to the backend together (the WAL holds them meanwhile), e.g. 100ms or 1s.',
    defaultValue: '100ms',
  },
  'experimental-fault-injection': {
    env: 'MESHKV_EXPERIMENTAL_FAULT_INJECTION',
    help: 'Serve /meshkv/faults on the client port to cut peer links, skew the clock and slow or fill the disk (testing only: holders of its secret can partition the member).',
    defaultValue: 'false',
    boolean: true,
  },
  'http2-server': {
    env: 'MESHKV_HTTP2_SERVER',
    help: "HTTP/2 server for gRPC on the client port: 'meshkv' (its own: all of a connection's frames of one turn in one socket write) or 'node' (node:http2 behind the :authority shim).",
    defaultValue: DEFAULT_HTTP2_SERVER,
  },
  'cert-file': { env: 'MESHKV_CERT_FILE', help: 'PEM certificate for client connections (https:// client URLs).', defaultValue: '' },
  'key-file': { env: 'MESHKV_KEY_FILE', help: 'PEM private key of --cert-file.', defaultValue: '' },
  'trusted-ca-file': { env: 'MESHKV_TRUSTED_CA_FILE', help: "PEM CA bundle that signs clients' certificates (with --client-cert-auth).", defaultValue: '' },
  'client-cert-auth': {
    env: 'MESHKV_CLIENT_CERT_AUTH',
    help: 'Require clients to present a certificate signed by --trusted-ca-file.',
    defaultValue: '',
    boolean: true,
  },
  'peer-cert-file': { env: 'MESHKV_PEER_CERT_FILE', help: 'PEM certificate this member presents to its peers (https:// peer URLs).', defaultValue: '' },
  'peer-key-file': { env: 'MESHKV_PEER_KEY_FILE', help: 'PEM private key of --peer-cert-file.', defaultValue: '' },
  'peer-trusted-ca-file': { env: 'MESHKV_PEER_TRUSTED_CA_FILE', help: "PEM CA bundle that signs the peers' certificates.", defaultValue: '' },
  'peer-client-cert-auth': {
    env: 'MESHKV_PEER_CLIENT_CERT_AUTH',
    help: 'Require peers to present a certificate signed by --peer-trusted-ca-file (always on with peer TLS; false is refused).',
    defaultValue: '',
    boolean: true,
  },
  'browser-peers': {
    env: 'MESHKV_BROWSER_PEERS',
    help: `'on' lets browser tabs join as members: WebRTC beside TCP, WebSocket signaling on the client port at ${signalingPath}, tabs added and removed as they ask; 'off' for Node peers only.`,
    defaultValue: 'on',
  },
  'signaling-url': {
    env: 'MESHKV_SIGNALING_URL',
    help: 'Join the signaling endpoint another member hosts (ws://host:port/meshkv/signal) instead of hosting one; every Node member of a mixed cluster names the same one.',
    defaultValue: '',
  },
  'browser-origins': {
    env: 'MESHKV_BROWSER_ORIGINS',
    help: "Comma-separated origins (http://host:port) whose pages may use this member's signaling endpoint besides pages it serves itself; '*' for any.",
    defaultValue: '',
  },
  'tabs-may-outvote': {
    env: 'MESHKV_TABS_MAY_OUTVOTE',
    help: "Let browser tabs become voters even though Node members vote, so tabs may hold the voting majority: closing them (a browser that exits or crashes) can then cost the Node members their quorum. false sets the default back (tabs stay learners). Not given: the cluster's setting stays.",
    defaultValue: '',
    boolean: true,
  },
  'tab-grace-ms': {
    env: 'MESHKV_TAB_GRACE_MS',
    help: 'Milliseconds a browser tab member may be unreachable before the leader removes it from the cluster.',
    defaultValue: '30000',
  },
  'force-new-cluster': {
    env: 'MESHKV_FORCE_NEW_CLUSTER',
    help: 'Start as the only voter of a new configuration, keeping this member\'s data (quorum lost for good; writes only the lost members held are gone). Restart without it afterwards.',
    defaultValue: 'false',
    boolean: true,
  },
  'static-dir': {
    env: 'MESHKV_STATIC_DIR',
    help: 'A directory served over HTTP on the client port, outside the gateway paths (npm start serves the built demo).',
    defaultValue: '',
  },
  ...securityFlags,
};

/** How flags reach the member through npm. */
export const npmHint = 'npm start passes flags to meshkv only after --: npm start -- --name one --data-dir ./one.data';

/**
 * Under `npm start`, flags before `--` are npm's: npm keeps one it does not know as
 * npm_config_<flag> (and may leave its value behind as a stray argument). Names the member's
 * flags npm took, or null.
 */
export function npmFlagsProblem(env: Record<string, string | undefined>): string | null {
  if (env.npm_lifecycle_event === undefined) return null;
  const took = Object.keys(flags).filter((flag) => env[`npm_config_${flag.replaceAll('-', '_')}`] !== undefined);
  return took.length === 0 ? null : `npm took ${took.map((f) => `--${f}`).join(', ')} for itself; ${npmHint}`;
}

export const usage = [
  'Usage: meshkv [flags]',
  '',
  'Starts a meshkv member that serves the etcd v3 API (gRPC and JSON gateway) on its client URLs.',
  '',
  'Flags (each also read from its environment variable):',
  ...Object.entries(flags).map(
    ([flag, spec]) => `  --${flag.padEnd(30)} ${spec.help} [${spec.env}]${spec.defaultValue ? ` (default ${spec.defaultValue})` : ''}`,
  ),
  '  --help                           Show this help.',
  '',
].join('\n');

function parseUrls(flag: string, text: string): URL[] {
  const parts = text.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (parts.length === 0) throw new ConfigError(`--${flag} needs at least one URL`);
  return parts.map((part) => {
    if (!part.includes('://')) throw new ConfigError(`--${flag}: ${part}: give a scheme, e.g. http://${part}`);
    let url: URL;
    try {
      url = new URL(part);
    } catch {
      throw new ConfigError(`--${flag}: ${JSON.stringify(part)} is not a URL (expected e.g. http://127.0.0.1:2379)`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ConfigError(`--${flag}: ${part}: scheme must be http:// or https://`);
    if (url.port === '') throw new ConfigError(`--${flag}: ${part}: give a port, e.g. http://${url.hostname}:2379`);
    if (url.pathname !== '/' || url.search !== '') throw new ConfigError(`--${flag}: ${part}: a client URL has no path`);
    return url;
  });
}

export type ParseResult = { kind: 'help' } | { kind: 'start'; config: NodeConfig };

/** Reads `argv` (without node and the script) and `env`. Throws ConfigError on a bad flag or value. */
export function parseConfig(argv: readonly string[], env: Record<string, string | undefined>): ParseResult {
  const given = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--help' || arg === '-h') return { kind: 'help' };
    const m = /^--?([a-z][a-z0-9-]*)(?:=(.*))?$/s.exec(arg);
    if (!m) throw new ConfigError(`unexpected argument ${JSON.stringify(arg)} (meshkv takes only flags; see meshkv --help)`);
    const [, flag, inline] = m;
    if (!(flag in flags)) throw new ConfigError(`unknown flag --${flag} (see meshkv --help)`);
    let value = inline;
    if (value === undefined && flags[flag].boolean) value = 'true';
    if (value === undefined) {
      if (i + 1 >= argv.length || argv[i + 1].startsWith('--')) throw new ConfigError(`flag --${flag} needs a value`);
      value = argv[++i];
    }
    if (given.has(flag)) throw new ConfigError(`flag --${flag} given twice`);
    given.set(flag, value);
  }
  const value = (flag: string): string => given.get(flag) ?? env[flags[flag].env] ?? flags[flag].defaultValue;
  const explicit = (flag: string): boolean => given.has(flag) || env[flags[flag].env] !== undefined;
  const name = value('name');
  if (name === '') throw new ConfigError('--name must not be empty');
  const dataDir = value('data-dir');
  if (dataDir === '') throw new ConfigError('--data-dir must not be empty');
  const listenClientUrls = parseUrls('listen-client-urls', value('listen-client-urls'));
  const advertised = value('advertise-client-urls');
  const advertiseClientUrls =
    advertised === '' ? listenClientUrls.map((u) => u.origin) : parseUrls('advertise-client-urls', advertised).map((u) => u.origin);
  const initialClusterState = value('initial-cluster-state');
  if (initialClusterState !== 'new' && initialClusterState !== 'existing') {
    throw new ConfigError(`--initial-cluster-state must be new or existing, not ${JSON.stringify(initialClusterState)}`);
  }
  const clusterToken = value('initial-cluster-token');
  if (clusterToken === '') throw new ConfigError('--initial-cluster-token must not be empty');
  const snapshotText = value('snapshot-count');
  const snapshotCount = Number(snapshotText);
  if (!/^\d+$/.test(snapshotText) || snapshotCount < 1 || !Number.isSafeInteger(snapshotCount)) {
    throw new ConfigError(`--snapshot-count must be a positive integer, not ${JSON.stringify(snapshotText)}`);
  }
  const batchIntervalText = value('backend-batch-interval');
  const batchInterval = /^(\d+)(ms|s)$/.exec(batchIntervalText);
  const backendBatchIntervalMs = batchInterval === null ? NaN : Number(batchInterval[1]) * (batchInterval[2] === 's' ? 1000 : 1);
  if (!Number.isSafeInteger(backendBatchIntervalMs)) {
    throw new ConfigError(`--backend-batch-interval must be a duration such as 100ms or 1s, not ${JSON.stringify(batchIntervalText)}`);
  }
  const faultText = value('experimental-fault-injection');
  if (faultText !== 'true' && faultText !== 'false') {
    throw new ConfigError(`--experimental-fault-injection must be true or false, not ${JSON.stringify(faultText)}`);
  }
  const http2Server = value('http2-server');
  if (http2Server !== 'meshkv' && http2Server !== 'node') throw new ConfigError(`--http2-server must be meshkv or node, not ${JSON.stringify(http2Server)}`);
  const forceText = value('force-new-cluster');
  if (forceText !== 'true' && forceText !== 'false') throw new ConfigError(`--force-new-cluster must be true or false, not ${JSON.stringify(forceText)}`);
  const staticDir = value('static-dir') === '' ? null : value('static-dir');
  const clusterText = value('initial-cluster');
  const parsedCluster = clusterText === '' ? null : parseInitialCluster(clusterText);
  const own = parsedCluster?.find((m) => m.name === name);
  if (parsedCluster && !own) {
    throw new ConfigError(`--initial-cluster has no member named ${JSON.stringify(name)} (this member's --name)`);
  }
  // The advertised peer URLs default to this member's entry in --initial-cluster.
  const advertisePeerUrls =
    own && !explicit('initial-advertise-peer-urls')
      ? own.peerUrls
      : parseUrls('initial-advertise-peer-urls', value('initial-advertise-peer-urls')).map((u) => u.origin);
  // A member that joins later was added by its peer URLs alone (MemberAdd carries no name), so
  // its id derives from them; the founding members' ids derive from their names.
  const id = initialClusterState === 'existing' ? memberIdOfPeerUrls(advertisePeerUrls) : memberIdOf(name);
  const initialCluster = (parsedCluster ?? [{ name, id, peerUrls: advertisePeerUrls }]).map((m) => (m.name === name ? { ...m, id, peerUrls: advertisePeerUrls } : m));
  const multiMember = initialCluster.length > 1 || initialClusterState === 'existing';
  const listenPeerUrls = explicit('listen-peer-urls')
    ? parseUrls('listen-peer-urls', value('listen-peer-urls'))
    : multiMember
      ? advertisePeerUrls.map((u) => new URL(u))
      : null;
  const peerTls = parsePeerTls(value, [...advertisePeerUrls, ...(listenPeerUrls ?? []).map((u) => u.origin), ...initialCluster.flatMap((m) => m.peerUrls)]);
  // Peers that hold certificates do not let tabs in by default (docs/security.md).
  const browserPeers = parseBrowserPeers(peerTls && !explicit('browser-peers') ? 'off' : value('browser-peers'), value('signaling-url'), value('browser-origins'), value('tabs-may-outvote'), value('tab-grace-ms'));
  let security: SecurityConfig;
  try {
    security = parseSecurityConfig(value, { peerTls: peerTls !== null, browserPeers: browserPeers !== null });
  } catch (err) {
    if (err instanceof SecurityConfigError) throw new ConfigError(err.message);
    throw err;
  }
  return {
    kind: 'start',
    config: {
      name,
      dataDir,
      listenClientUrls,
      advertiseClientUrls,
      advertisePeerUrls,
      listenPeerUrls,
      initialCluster,
      initialClusterState,
      clusterToken,
      snapshotCount,
      backendBatchIntervalMs,
      faultInjection: faultText === 'true',
      http2Server,
      peerTls,
      clientTls: parseClientTls(value, listenClientUrls.map((u) => u.origin)),
      browserPeers,
      staticDir,
      forceNewCluster: forceText === 'true',
      security,
    },
  };
}

/** Client TLS needs a certificate and its key, and then every listen client URL is https:// (and without it, none is). */
function parseClientTls(value: (flag: string) => string, listenUrls: string[]): ClientTlsFiles | null {
  const certFile = value('cert-file');
  const keyFile = value('key-file');
  const trustedCaFile = value('trusted-ca-file');
  const clientCertAuth = value('client-cert-auth');
  if (clientCertAuth !== '' && clientCertAuth !== 'true' && clientCertAuth !== 'false') {
    throw new ConfigError(`--client-cert-auth must be true or false, not ${JSON.stringify(clientCertAuth)}`);
  }
  if (certFile === '' && keyFile === '') {
    const https = listenUrls.find((u) => u.startsWith('https:'));
    if (https !== undefined) throw new ConfigError(`client URL ${https} is https://: give --cert-file and --key-file`);
    if (clientCertAuth === 'true' || trustedCaFile !== '') throw new ConfigError('--client-cert-auth and --trusted-ca-file need --cert-file and --key-file');
    return null;
  }
  if (certFile === '') throw new ConfigError('--key-file needs --cert-file (the certificate it belongs to)');
  if (keyFile === '') throw new ConfigError('--cert-file needs --key-file (its private key)');
  if (clientCertAuth === 'true' && trustedCaFile === '') throw new ConfigError('--client-cert-auth needs --trusted-ca-file (the CA that signs client certificates)');
  if (clientCertAuth !== 'true' && trustedCaFile !== '') throw new ConfigError('--trusted-ca-file is used only with --client-cert-auth; give both');
  const plain = listenUrls.find((u) => !u.startsWith('https:'));
  if (plain !== undefined) throw new ConfigError(`client TLS is on, so every --listen-client-urls URL must be https://, not ${plain}`);
  return { certFile, keyFile, trustedCaFile: clientCertAuth === 'true' ? trustedCaFile : null };
}

/** Peer TLS needs all three files, and then every peer URL is https:// (and without it, none is). */
function parsePeerTls(value: (flag: string) => string, peerUrls: string[]): PeerTlsFiles | null {
  const certFile = value('peer-cert-file');
  const keyFile = value('peer-key-file');
  const trustedCaFile = value('peer-trusted-ca-file');
  const clientCertAuth = value('peer-client-cert-auth');
  if (clientCertAuth !== '' && clientCertAuth !== 'true' && clientCertAuth !== 'false') {
    throw new ConfigError(`--peer-client-cert-auth must be true or false, not ${JSON.stringify(clientCertAuth)}`);
  }
  const https = peerUrls.filter((u) => u.startsWith('https:'));
  if (certFile === '' && keyFile === '' && trustedCaFile === '') {
    if (https.length > 0) throw new ConfigError(`peer URL ${https[0]} is https://: give --peer-cert-file, --peer-key-file and --peer-trusted-ca-file`);
    if (clientCertAuth === 'true') throw new ConfigError('--peer-client-cert-auth needs --peer-cert-file, --peer-key-file and --peer-trusted-ca-file');
    return null;
  }
  if (certFile === '') throw new ConfigError('--peer-key-file needs --peer-cert-file (the certificate it belongs to)');
  if (keyFile === '') throw new ConfigError('--peer-cert-file needs --peer-key-file (its private key)');
  if (trustedCaFile === '') throw new ConfigError('peer TLS needs --peer-trusted-ca-file: meshkv peers always verify each other\'s certificates');
  if (clientCertAuth === 'false') throw new ConfigError('--peer-client-cert-auth=false is not supported: meshkv peer TLS is always mutual');
  const plain = peerUrls.find((u) => !u.startsWith('https:'));
  if (plain !== undefined) throw new ConfigError(`peer TLS is on, so every peer URL must be https://, not ${plain}`);
  return { certFile, keyFile, trustedCaFile };
}

function parseBrowserPeers(onOff: string, signalingText: string, originsText: string, outvoteText: string, graceText: string): BrowserPeersConfig | null {
  if (onOff !== 'on' && onOff !== 'off') throw new ConfigError(`--browser-peers must be on or off, not ${JSON.stringify(onOff)}`);
  if (outvoteText !== '' && outvoteText !== 'true' && outvoteText !== 'false') throw new ConfigError(`--tabs-may-outvote must be true or false, not ${JSON.stringify(outvoteText)}`);
  const tabGraceMs = Number(graceText);
  if (!/^\d+$/.test(graceText) || tabGraceMs < 1000 || !Number.isSafeInteger(tabGraceMs)) {
    throw new ConfigError(`--tab-grace-ms must be an integer of at least 1000 (milliseconds), not ${JSON.stringify(graceText)}`);
  }
  if (onOff === 'off') {
    if (signalingText !== '') throw new ConfigError('--signaling-url needs --browser-peers on');
    if (outvoteText !== '') throw new ConfigError('--tabs-may-outvote needs --browser-peers on');
    return null;
  }
  const tabsMayOutvote = outvoteText === '' ? null : outvoteText === 'true';
  let signalingUrl: string | null = null;
  if (signalingText !== '') {
    let url: URL;
    try {
      url = new URL(signalingText);
    } catch {
      throw new ConfigError(`--signaling-url: ${JSON.stringify(signalingText)} is not a URL (expected e.g. ws://127.0.0.1:2379${signalingPath})`);
    }
    if (url.protocol !== 'ws:' && url.protocol !== 'wss:') throw new ConfigError(`--signaling-url: ${signalingText}: scheme must be ws:// or wss://`);
    signalingUrl = url.href;
  }
  const origins = originsText.split(',').map((o) => o.trim()).filter((o) => o !== '');
  if (origins.includes('*')) return { signalingUrl, allowedOrigins: '*', tabsMayOutvote, tabGraceMs };
  const allowedOrigins = origins.map((o) => {
    let url: URL;
    try {
      url = new URL(o);
    } catch {
      throw new ConfigError(`--browser-origins: ${JSON.stringify(o)} is not an origin (expected e.g. http://127.0.0.1:5173)`);
    }
    if (url.origin === 'null' || url.pathname !== '/' || url.search !== '') throw new ConfigError(`--browser-origins: ${o}: give scheme, host and port only, e.g. http://127.0.0.1:5173`);
    return url.origin;
  });
  return { signalingUrl, allowedOrigins, tabsMayOutvote, tabGraceMs };
}

/** etcd's form: name=url pairs separated by commas; a name may repeat to give several URLs. */
function parseInitialCluster(text: string): InitialMember[] {
  const byName = new Map<string, InitialMember>();
  for (const pair of text.split(',').map((p) => p.trim()).filter((p) => p !== '')) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new ConfigError(`--initial-cluster: ${JSON.stringify(pair)} is not name=peerURL`);
    const memberName = pair.slice(0, eq);
    const [url] = parseUrls('initial-cluster', pair.slice(eq + 1));
    let m = byName.get(memberName);
    if (m === undefined) byName.set(memberName, (m = { name: memberName, id: memberIdOf(memberName), peerUrls: [] }));
    m.peerUrls.push(url.origin);
  }
  const ids = new Set([...byName.values()].map((m) => m.id));
  if (ids.size !== byName.size) throw new ConfigError('--initial-cluster: two member names hash to the same member id; rename one');
  return [...byName.values()];
}

/**
 * A member id derived from the member's name: the first 52 bits of its sha256 (ids are exact
 * JavaScript numbers), never 0. The same name always gives the same id, so nothing is persisted.
 */
export function memberIdOf(name: string): number {
  const digest = createHash('sha256').update(`meshkv-member:${name}`).digest();
  const id = digest.readUIntBE(0, 6) * 16 + (digest[6] >> 4);
  return id === 0 ? 1 : id;
}

/**
 * The id of a member added at run time (etcd's MemberAdd gives only peer URLs): the first 52
 * bits of the sha256 of its sorted peer URLs, never 0. The joining member computes the same id
 * from its --initial-advertise-peer-urls.
 */
export function memberIdOfPeerUrls(peerUrls: readonly string[]): number {
  const normalized = peerUrls.map((u) => new URL(u).origin).sort();
  const digest = createHash('sha256').update(`meshkv-member-peers:${normalized.join(',')}`).digest();
  const id = digest.readUIntBE(0, 6) * 16 + (digest[6] >> 4);
  return id === 0 ? 1 : id;
}

/** A cluster id (uint64, as a decimal string) derived from the initial members' ids, as etcd derives it. */
export function clusterIdOf(memberIds: readonly number[]): string {
  const hash = createHash('sha256');
  for (const id of [...memberIds].sort((a, b) => a - b)) hash.update(`${id},`);
  return hash.digest().readBigUInt64BE(0).toString();
}
