// The `meshkv` start command's configuration: flags, then MESHKV_* environment variables, then
// embedded defaults (one member, data in ./meshkv.data, clients on 127.0.0.1:2379). Parsing is
// pure so that every refusal can be tested; each carries a message a user can act on.

import { createHash } from 'node:crypto';

export interface NodeConfig {
  name: string;
  dataDir: string;
  /** Where the client port (gRPC + JSON gateway) listens. */
  listenClientUrls: URL[];
  /** What MemberList tells clients; defaults to the listen URLs. */
  advertiseClientUrls: string[];
  /** This member's peer URLs, as the other members reach it. */
  advertisePeerUrls: string[];
  /** Every initial member, this one included (etcd's --initial-cluster). */
  initialCluster: InitialMember[];
}

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
  'initial-cluster': {
    env: 'MESHKV_INITIAL_CLUSTER',
    help: 'Initial members as name=peerURL,... (default: this member alone).',
    defaultValue: '',
  },
};

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
    if (url.protocol === 'https:') throw new ConfigError(`--${flag}: ${part}: TLS is not supported yet; use http://`);
    if (url.protocol !== 'http:') throw new ConfigError(`--${flag}: ${part}: scheme must be http://`);
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
    const m = /^--?([a-z-]+)(?:=(.*))?$/s.exec(arg);
    if (!m) throw new ConfigError(`unexpected argument ${JSON.stringify(arg)} (meshkv takes only flags; see meshkv --help)`);
    const [, flag, inline] = m;
    if (!(flag in flags)) throw new ConfigError(`unknown flag --${flag} (see meshkv --help)`);
    let value = inline;
    if (value === undefined) {
      if (i + 1 >= argv.length || argv[i + 1].startsWith('--')) throw new ConfigError(`flag --${flag} needs a value`);
      value = argv[++i];
    }
    if (given.has(flag)) throw new ConfigError(`flag --${flag} given twice`);
    given.set(flag, value);
  }
  const value = (flag: string): string => given.get(flag) ?? env[flags[flag].env] ?? flags[flag].defaultValue;
  const name = value('name');
  if (name === '') throw new ConfigError('--name must not be empty');
  const dataDir = value('data-dir');
  if (dataDir === '') throw new ConfigError('--data-dir must not be empty');
  const listenClientUrls = parseUrls('listen-client-urls', value('listen-client-urls'));
  const advertised = value('advertise-client-urls');
  const advertiseClientUrls =
    advertised === '' ? listenClientUrls.map((u) => u.origin) : parseUrls('advertise-client-urls', advertised).map((u) => u.origin);
  const advertisePeerUrls = parseUrls('initial-advertise-peer-urls', value('initial-advertise-peer-urls')).map((u) => u.origin);
  const clusterText = value('initial-cluster');
  const initialCluster =
    clusterText === '' ? [{ name, id: memberIdOf(name), peerUrls: advertisePeerUrls }] : parseInitialCluster(clusterText);
  if (!initialCluster.some((m) => m.name === name)) {
    throw new ConfigError(`--initial-cluster has no member named ${JSON.stringify(name)} (this member's --name)`);
  }
  return { kind: 'start', config: { name, dataDir, listenClientUrls, advertiseClientUrls, advertisePeerUrls, initialCluster } };
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

/** A cluster id (uint64, as a decimal string) derived from the initial members' ids, as etcd derives it. */
export function clusterIdOf(memberIds: readonly number[]): string {
  const hash = createHash('sha256');
  for (const id of [...memberIds].sort((a, b) => a - b)) hash.update(`${id},`);
  return hash.digest().readBigUInt64BE(0).toString();
}
