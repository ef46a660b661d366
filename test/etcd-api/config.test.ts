// The start command's configuration: flags over MESHKV_* variables over defaults.

import { describe, expect, it } from 'vitest';
import { ConfigError, clusterIdOf, memberIdOf, memberIdOfPeerUrls, parseConfig } from '../../adapters/node/config.ts';

function start(argv: string[], env: Record<string, string> = {}) {
  const r = parseConfig(argv, env);
  if (r.kind !== 'start') throw new Error('expected a start config');
  return r.config;
}

describe('meshkv configuration', () => {
  it('defaults to one member named default, data in ./meshkv.data, clients on 127.0.0.1:2379', () => {
    const c = start([]);
    expect(c.name).toBe('default');
    expect(c.dataDir).toBe('meshkv.data');
    expect(c.listenClientUrls.map((u) => u.href)).toEqual(['http://127.0.0.1:2379/']);
    expect(c.advertiseClientUrls).toEqual(['http://127.0.0.1:2379']);
  });

  it('takes browser tabs as peers by default, hosting signaling itself; off or another endpoint on request', () => {
    expect(start([]).browserPeers).toEqual({ signalingUrl: null, allowedOrigins: [], tabsMayOutvote: null, tabGraceMs: 30_000 });
    expect(start([]).staticDir).toBeNull();
    expect(start(['--browser-peers=off']).browserPeers).toBeNull();
    expect(start([], { MESHKV_BROWSER_PEERS: 'off' }).browserPeers).toBeNull();
    const c = start(['--signaling-url', 'ws://10.0.0.1:2379/meshkv/signal', '--browser-origins', 'http://127.0.0.1:5173, http://localhost:5173/', '--static-dir', 'demo/dist']);
    expect(c.browserPeers).toEqual({ signalingUrl: 'ws://10.0.0.1:2379/meshkv/signal', allowedOrigins: ['http://127.0.0.1:5173', 'http://localhost:5173'], tabsMayOutvote: null, tabGraceMs: 30_000 });
    expect(c.staticDir).toBe('demo/dist');
    expect(start(['--browser-origins=*']).browserPeers?.allowedOrigins).toBe('*');
  });

  it('reads the tab vote policy, the tab grace period and --force-new-cluster, and refuses bad values', () => {
    expect(start(['--tabs-may-outvote']).browserPeers?.tabsMayOutvote).toBe(true);
    expect(start(['--tabs-may-outvote=false']).browserPeers?.tabsMayOutvote).toBe(false);
    expect(start(['--tab-grace-ms', '5000']).browserPeers?.tabGraceMs).toBe(5000);
    expect(() => start(['--tab-grace-ms', '10'])).toThrow('--tab-grace-ms must be an integer of at least 1000 (milliseconds), not "10"');
    expect(() => start(['--tabs-may-outvote=maybe'])).toThrow('--tabs-may-outvote must be true or false, not "maybe"');
    expect(() => start(['--browser-peers=off', '--tabs-may-outvote'])).toThrow('--tabs-may-outvote needs --browser-peers on');
    expect(start([]).forceNewCluster).toBe(false);
    expect(start(['--force-new-cluster']).forceNewCluster).toBe(true);
    expect(() => start(['--force-new-cluster=yes'])).toThrow('--force-new-cluster must be true or false, not "yes"');
  });

  it('picks the HTTP/2 server of the client port with --http2-server or MESHKV_HTTP2_SERVER, and refuses others', () => {
    expect(start(['--http2-server', 'node']).http2Server).toBe('node');
    expect(start(['--http2-server=meshkv']).http2Server).toBe('meshkv');
    expect(start([], { MESHKV_HTTP2_SERVER: 'node' }).http2Server).toBe('node');
    expect(() => start(['--http2-server', 'nghttp2'])).toThrow('--http2-server must be meshkv or node, not "nghttp2"');
  });

  it("reads etcd's --auth-token (simple, or jwt with its options) and --auth-token-ttl in seconds", () => {
    expect(start([]).security.authTokenTtlMs).toBe(300_000);
    expect(start([]).security.authToken).toEqual({ kind: 'simple' });
    expect(start(['--auth-token', 'simple', '--auth-token-ttl', '60']).security.authTokenTtlMs).toBe(60_000);
    expect(start([], { MESHKV_AUTH_TOKEN_TTL: '10' }).security.authTokenTtlMs).toBe(10_000);
    expect(start(['--auth-token', 'jwt,pub-key=a.pub,priv-key=a,sign-method=RS256']).security.authToken).toEqual({ kind: 'jwt', signMethod: 'RS256', publicKeyFile: 'a.pub', privateKeyFile: 'a', ttlMs: 300_000 });
    expect(start(['--auth-token', 'jwt,pub-key=e.pub,sign-method=ES256,ttl=1h30m']).security.authToken).toEqual({ kind: 'jwt', signMethod: 'ES256', publicKeyFile: 'e.pub', privateKeyFile: null, ttlMs: 5_400_000 });
    const invalid = (why: string) => `--auth-token: auth: invalid auth options (${why})`;
    expect(() => start(['--auth-token', 'bogus'])).toThrow(invalid('unknown token type: bogus'));
    expect(() => start(['--auth-token', 'jwt,pub-key=a.pub,priv-key=a'])).toThrow(invalid('problem loading JWT options: auth: invalid auth signature method'));
    expect(() => start(['--auth-token', 'jwt,sign-method=RS256,bogus'])).toThrow(invalid('invalid token specific option: bogus'));
    expect(() => start(['--auth-token', 'jwt,sign-method=RS256'])).toThrow(invalid('problem loading JWT options: auth: missing key data'));
    expect(() => start(['--auth-token', 'jwt,priv-key=k,sign-method=HS256,ttl=5 minutes'])).toThrow(invalid('problem loading JWT options: invalid ttl "5 minutes": a duration such as 5m, 300s or 1h30m'));
    expect(() => start(['--auth-token-ttl', '0'])).toThrow('--auth-token-ttl must be a whole number of seconds from 1, not "0"');
    expect(() => start(['--auth-token-ttl', '5m'])).toThrow('--auth-token-ttl must be a whole number of seconds from 1, not "5m"');
  });

  it('takes flags over environment variables', () => {
    const env = { MESHKV_NAME: 'from-env', MESHKV_DATA_DIR: '/env', MESHKV_ADVERTISE_CLIENT_URLS: 'http://10.0.0.1:2379' };
    const c = start(['--name=flag', '--listen-client-urls', 'http://0.0.0.0:1234,http://127.0.0.1:1235'], env);
    expect(c.name).toBe('flag');
    expect(c.dataDir).toBe('/env');
    expect(c.listenClientUrls.map((u) => u.port)).toEqual(['1234', '1235']);
    expect(c.advertiseClientUrls).toEqual(['http://10.0.0.1:2379']);
  });

  it('reads etcd\'s --initial-cluster form, and defaults to this member alone', () => {
    expect(start(['--name', 'solo']).initialCluster).toEqual([{ name: 'solo', id: memberIdOf('solo'), peerUrls: ['http://localhost:2380'] }]);
    const c = start(['--name', 'b', '--initial-cluster', 'a=http://10.0.0.1:2380,b=http://10.0.0.2:2380,b=http://10.0.1.2:2380']);
    expect(c.initialCluster).toEqual([
      { name: 'a', id: memberIdOf('a'), peerUrls: ['http://10.0.0.1:2380'] },
      { name: 'b', id: memberIdOf('b'), peerUrls: ['http://10.0.0.2:2380', 'http://10.0.1.2:2380'] },
    ]);
  });

  it.each([
    [['--name=c', '--initial-cluster=a=http://h:2380'], '--initial-cluster has no member named "c" (this member\'s --name)'],
    [['--initial-cluster=http://h:2380'], '--initial-cluster: "http://h:2380" is not name=peerURL'],
    [['--initial-cluster-state=maybe'], '--initial-cluster-state must be new or existing, not "maybe"'],
    [['--snapshot-count=0'], '--snapshot-count must be a positive integer, not "0"'],
    [['--backend-batch-interval=100'], '--backend-batch-interval must be a duration such as 100ms or 1s, not "100"'],
    [['--initial-cluster=a=h:2380'], '--initial-cluster: h:2380: give a scheme, e.g. http://h:2380'],
    [['--nope'], 'unknown flag --nope (see meshkv --help)'],
    [['--name'], 'flag --name needs a value'],
    [['stray'], 'unexpected argument "stray" (meshkv takes only flags; see meshkv --help)'],
    [['--name=a', '--name=b'], 'flag --name given twice'],
    [['--listen-client-urls=127.0.0.1:2379'], '--listen-client-urls: 127.0.0.1:2379: give a scheme, e.g. http://127.0.0.1:2379'],
    [['--listen-client-urls=unix://x:1'], '--listen-client-urls: unix://x:1: scheme must be http:// or https://'],
    [['--listen-client-urls=http://127.0.0.1'], '--listen-client-urls: http://127.0.0.1: give a port, e.g. http://127.0.0.1:2379'],
    [['--browser-peers=yes'], '--browser-peers must be on or off, not "yes"'],
    [['--browser-peers=off', '--signaling-url=ws://h:1/meshkv/signal'], '--signaling-url needs --browser-peers on'],
    [['--signaling-url=http://h:1/meshkv/signal'], '--signaling-url: http://h:1/meshkv/signal: scheme must be ws:// or wss://'],
    [['--browser-origins=http://h:1/page'], '--browser-origins: http://h:1/page: give scheme, host and port only, e.g. http://127.0.0.1:5173'],
    [['--listen-client-urls=http://not a url:1'], '--listen-client-urls: "http://not a url:1" is not a URL (expected e.g. http://127.0.0.1:2379)'],
    [['--peer-cert-file', 'x.crt'], '--peer-cert-file needs --peer-key-file (its private key)'],
    [['--peer-key-file', 'x.key'], '--peer-key-file needs --peer-cert-file (the certificate it belongs to)'],
    [['--peer-cert-file', 'x.crt', '--peer-key-file', 'x.key'], "peer TLS needs --peer-trusted-ca-file: meshkv peers always verify each other's certificates"],
    [['--peer-cert-file=c', '--peer-key-file=k', '--peer-trusted-ca-file=ca', '--peer-client-cert-auth=false'], '--peer-client-cert-auth=false is not supported: meshkv peer TLS is always mutual'],
    [['--peer-client-cert-auth=maybe'], '--peer-client-cert-auth must be true or false, not "maybe"'],
    [['--peer-client-cert-auth'], '--peer-client-cert-auth needs --peer-cert-file, --peer-key-file and --peer-trusted-ca-file'],
    [['--initial-cluster', 'default=https://127.0.0.1:1'], 'peer URL https://127.0.0.1:1 is https://: give --peer-cert-file, --peer-key-file and --peer-trusted-ca-file'],
    [['--cert-file', 'x.crt'], '--cert-file needs --key-file (its private key)'],
    [['--key-file', 'x.key'], '--key-file needs --cert-file (the certificate it belongs to)'],
    [['--listen-client-urls', 'https://127.0.0.1:1'], 'client URL https://127.0.0.1:1 is https://: give --cert-file and --key-file'],
    [['--trusted-ca-file', 'ca'], '--client-cert-auth and --trusted-ca-file need --cert-file and --key-file'],
    [['--cert-file', 'x.crt', '--key-file', 'x.key', '--client-cert-auth'], '--client-cert-auth needs --trusted-ca-file (the CA that signs client certificates)'],
    [['--cert-file', 'x.crt', '--key-file', 'x.key', '--trusted-ca-file', 'ca'], '--trusted-ca-file is used only with --client-cert-auth; give both'],
    [['--cert-file', 'x.crt', '--key-file', 'x.key'], 'client TLS is on, so every --listen-client-urls URL must be https://, not http://127.0.0.1:2379'],
  ])('refuses %j', (argv, message) => {
    expect(() => parseConfig(argv, {})).toThrow(new ConfigError(message));
  });

  it('derives stable, distinct, non-zero 52-bit member ids from names', () => {
    expect(memberIdOf('default')).toBe(memberIdOf('default'));
    expect(memberIdOf('a')).not.toBe(memberIdOf('b'));
    for (const name of ['a', 'b', 'default', 'node-1']) {
      const id = memberIdOf(name);
      expect(Number.isSafeInteger(id) && id > 0 && id < 2 ** 52).toBe(true);
    }
    expect(clusterIdOf([2, 1])).toBe(clusterIdOf([1, 2]));
    expect(clusterIdOf([1])).toMatch(/^\d+$/);
    expect(BigInt(clusterIdOf([1]))).toBeLessThan(2n ** 64n);
    expect(clusterIdOf([1])).not.toBe(clusterIdOf([1, 2]));
  });

  it('wires the peer side: listen URL, token, state, and the id of a joining member', () => {
    const solo = start([]);
    expect(solo.listenPeerUrls).toBeNull();
    expect(solo.clusterToken).toBe('meshkv-cluster');
    expect(solo.initialClusterState).toBe('new');
    const founder = start(['--name', 'a', '--initial-cluster', 'a=http://127.0.0.1:2380,b=http://127.0.0.1:2381'], { MESHKV_INITIAL_CLUSTER_TOKEN: 't' });
    expect(founder.listenPeerUrls!.map((u) => u.origin)).toEqual(['http://127.0.0.1:2380']);
    expect(founder.advertisePeerUrls).toEqual(['http://127.0.0.1:2380']);
    expect(founder.clusterToken).toBe('t');
    const joiner = start(['--name', 'c', '--initial-cluster-state', 'existing', '--initial-cluster', 'a=http://127.0.0.1:2380,c=http://127.0.0.1:2382']);
    expect(joiner.initialCluster.find((m) => m.name === 'c')!.id).toBe(memberIdOfPeerUrls(['http://127.0.0.1:2382']));
    expect(joiner.initialCluster.find((m) => m.name === 'a')!.id).toBe(memberIdOf('a'));
  });

  it('reads the peer TLS files from flags or MESHKV_PEER_* variables, with https:// peer URLs', () => {
    const cluster = ['--name', 'a', '--initial-cluster', 'a=https://127.0.0.1:2380,b=https://127.0.0.1:2381'];
    const files = { certFile: 'p.crt', keyFile: 'p.key', trustedCaFile: 'ca.crt' };
    expect(start([...cluster, '--peer-cert-file=p.crt', '--peer-key-file', 'p.key', '--peer-trusted-ca-file', 'ca.crt', '--peer-client-cert-auth']).peerTls).toEqual(files);
    const fromEnv = start(cluster, { MESHKV_PEER_CERT_FILE: 'p.crt', MESHKV_PEER_KEY_FILE: 'p.key', MESHKV_PEER_TRUSTED_CA_FILE: 'ca.crt' });
    expect(fromEnv.peerTls).toEqual(files);
    expect(fromEnv.listenPeerUrls!.map((u) => u.origin)).toEqual(['https://127.0.0.1:2380']);
    expect(start([]).peerTls).toBeNull();
    expect(start([]).clientTls).toBeNull();
    const client = start(['--listen-client-urls', 'https://127.0.0.1:2379', '--cert-file', 'c', '--key-file', 'k', '--trusted-ca-file', 'ca', '--client-cert-auth']);
    expect(client.clientTls).toEqual({ certFile: 'c', keyFile: 'k', trustedCaFile: 'ca' });
    expect(start(['--listen-client-urls', 'https://127.0.0.1:2379', '--cert-file', 'c', '--key-file', 'k']).clientTls).toEqual({ certFile: 'c', keyFile: 'k', trustedCaFile: null });
  });
});

