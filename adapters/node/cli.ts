// `meshkv`: starts one member from flags and MESHKV_* variables, logs one JSON object per line
// on stderr, and shuts down cleanly on SIGINT or SIGTERM.

import { setFlagsFromString } from 'node:v8';
import { StorageError } from '../storage/errors.ts';
import { ListenError } from '../etcd-api/listener.ts';
import { ConfigError, npmFlagsProblem, npmHint, parseConfig, signalingPath, usage } from './config.ts';
import { StartError, type LogFn } from './node-member.ts';
import { startMemberWithConfig, type Member } from './start-member.ts';
import { boundYoungGeneration } from './young-generation.ts';

const log: LogFn = (level, msg, fields = {}) => {
  process.stderr.write(JSON.stringify({ level, ts: new Date().toISOString(), msg, ...fields }) + '\n');
};

/** A listener on every address is opened in a browser on loopback (`hostname` as in a URL: IPv6 in brackets). */
function browsableHost(hostname: string): string {
  return hostname === '0.0.0.0' ? '127.0.0.1' : hostname === '[::]' ? '[::1]' : hostname;
}

function fail(msg: string, exitCode: number): never {
  log('error', msg);
  process.exit(exitCode);
}

/**
 * How far V8 lets the old generation grow past the live heap before its next full collection,
 * in percent. Left to itself V8 allows up to 300 % when collection looks cheap next to the
 * program, and a member under write load promotes kilobytes of short-lived request objects per
 * put into the old generation, so its heap sat at ~3.5x the live data (docs/benchmarks.md,
 * "Where a member's memory goes"). At 50 % full collections come about three times as often;
 * V8 reads the flag whenever it sizes the heap, so setting it at startup is enough. A
 * `--heap-growing-percent` given to node itself wins.
 */
const heapGrowingPercent = 50;
if (!process.execArgv.some((arg) => arg.startsWith('--heap-growing-percent') || arg.startsWith('--heap_growing_percent'))) {
  setFlagsFromString(`--heap-growing-percent=${heapGrowingPercent}`);
}
// New space held to 2 x 4 MiB instead of V8's 2 x 16 MiB (./young-generation.ts).
boundYoungGeneration();

async function main(): Promise<void> {
  const npmProblem = npmFlagsProblem(process.env);
  if (npmProblem !== null) {
    process.stderr.write(`meshkv: ${npmProblem}\n`);
    process.exit(2);
  }
  let parsed;
  try {
    parsed = parseConfig(process.argv.slice(2), process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      // A usage error: plain text for the person at the keyboard.
      const hint = process.env.npm_lifecycle_event !== undefined && err.message.startsWith('unexpected argument') ? ` (${npmHint})` : '';
      process.stderr.write(`meshkv: ${err.message}${hint}\n`);
      process.exit(2);
    }
    throw err;
  }
  if (parsed.kind === 'help') {
    process.stdout.write(usage);
    return;
  }
  const config = parsed.config;
  // etcd logs this and exits 0 once its peers tell it that it was removed.
  const onRemoved = () => {
    log('error', 'the member has been permanently removed from the cluster');
    log('info', 'the data-dir used by this member must be removed', { 'data-dir': config.dataDir });
    shutdown('removed from the cluster');
  };
  try {
    node = await startMemberWithConfig(config, { log, onRemoved });
  } catch (err) {
    if (err instanceof StorageError || err instanceof ListenError || err instanceof StartError) fail(err.message, 1);
    throw err;
  }
  const started = node;
  const clientUrls = started.status().clientUrls.map((u) => new URL(u));
  log('info', 'member started', { name: config.name, 'member-id': started.id.toString(16), 'data-dir': config.dataDir });
  for (const url of clientUrls) log('info', 'serving client traffic (gRPC and JSON gateway)', { address: url.host });
  const tlsOn = config.clientTls !== null;
  if (config.browserPeers?.signalingUrl === null) {
    for (const url of clientUrls) log('info', 'serving browser signaling', { url: `${tlsOn ? 'wss' : 'ws'}://${url.host}${signalingPath}` });
  } else if (config.browserPeers) {
    log('info', 'using browser signaling', { url: config.browserPeers.signalingUrl });
  }
  if (config.staticDir !== null) log('info', 'serving static files', { dir: config.staticDir });
  if (config.listenPeerUrls) log('info', 'serving peer traffic', { address: config.listenPeerUrls[0].host, 'cluster-state': config.initialClusterState });
  const ready = (leader: number, term: number) => {
    log('info', 'ready: the cluster has a leader', { leader: leader.toString(16), term });
    // The one line a person starting the demo looks for, in plain text, once the page would work.
    if (config.staticDir === null) return;
    for (const url of clientUrls) process.stdout.write(`meshkv: open ${url.protocol}//${browsableHost(url.hostname)}:${url.port}/ in a browser\n`);
  };
  const now = started.status();
  if (now.leader !== 0) {
    ready(now.leader, now.term);
  } else {
    const unwatch = started.onStatus((s) => {
      if (s.leader === 0) return;
      unwatch();
      ready(s.leader, s.term);
    });
  }

  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
}

let stopping = false;
let node: Member | undefined;

/** Stops the member (once) and exits 0; `why` is a signal name or the reason. */
function shutdown(why: string): void {
  if (stopping || node === undefined) return;
  stopping = true;
  log('info', 'shutting down', { reason: why });
  node.stop().then(
    () => {
      log('info', 'stopped');
      process.exit(0);
    },
    (err: Error) => fail(`shutdown failed: ${err.message}`, 1),
  );
}

main().catch((err: Error) => fail(`fatal: ${err.stack ?? err.message}`, 1));
