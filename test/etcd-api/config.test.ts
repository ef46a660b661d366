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
    expect(start([]).browserPeers).toEqual({ signalingUrl: null, allowedOrigins: [] });
    expect(start([]).staticDir).toBeNull();
    expect(start(['--browser-peers=off']).browserPeers).toBeNull();
    expect(start([], { MESHKV_BROWSER_PEERS: 'off' }).browserPeers).toBeNull();
    const c = start(['--signaling-url', 'ws://10.0.0.1:2379/meshkv/signal', '--browser-origins', 'http://127.0.0.1:5173, http://localhost:5173/', '--static-dir', 'demo/dist']);
    expect(c.browserPeers).toEqual({ signalingUrl: 'ws://10.0.0.1:2379/meshkv/signal', allowedOrigins: ['http://127.0.0.1:5173', 'http://localhost:5173'] });
    expect(c.staticDir).toBe('demo/dist');
    expect(start(['--browser-origins=*']).browserPeers?.allowedOrigins).toBe('*');
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
    [['--initial-cluster=a=h:2380'], '--initial-cluster: h:2380: give a scheme, e.g. http://h:2380'],
    [['--nope'], 'unknown flag --nope (see meshkv --help)'],
    [['--name'], 'flag --name needs a value'],
    [['stray'], 'unexpected argument "stray" (meshkv takes only flags; see meshkv --help)'],
    [['--name=a', '--name=b'], 'flag --name given twice'],
    [['--listen-client-urls=127.0.0.1:2379'], '--listen-client-urls: 127.0.0.1:2379: give a scheme, e.g. http://127.0.0.1:2379'],
    [['--listen-client-urls=unix://x:1'], '--listen-client-urls: unix://x:1: scheme must be http://'],
    [['--listen-client-urls=http://127.0.0.1'], '--listen-client-urls: http://127.0.0.1: give a port, e.g. http://127.0.0.1:2379'],
    [['--browser-peers=yes'], '--browser-peers must be on or off, not "yes"'],
    [['--browser-peers=off', '--signaling-url=ws://h:1/meshkv/signal'], '--signaling-url needs --browser-peers on'],
    [['--signaling-url=http://h:1/meshkv/signal'], '--signaling-url: http://h:1/meshkv/signal: scheme must be ws:// or wss://'],
    [['--browser-origins=http://h:1/page'], '--browser-origins: http://h:1/page: give scheme, host and port only, e.g. http://127.0.0.1:5173'],
    [['--listen-client-urls=http://not a url:1'], '--listen-client-urls: "http://not a url:1" is not a URL (expected e.g. http://127.0.0.1:2379)'],
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
});
