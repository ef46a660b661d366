// Mixed clusters in tests: meshkv Node processes (test/cluster/processes.ts) with browser tabs
// (test/e2e/fixtures/cluster.html) joining through the first process's signaling endpoint, and
// clients on both sides whose operations are recorded with one clock (performance.now() in the
// test process, around each call) for checkLinearizable.

import { connectGrpc } from '../../adapters/etcd-api/grpc-connection.ts';
import { memberIdOf, signalingPath } from '../../adapters/node/config.ts';
import type { Client } from '../../src/client/client.ts';
import type { HistoryOp, OpInput, OpOutput } from '../check/history.ts';
import { Processes, ready, testAdmissionSecret, type MemberSpec, type Proc } from '../cluster/processes.ts';
import type { Tab } from './cluster-harness.ts';

/** The token Processes starts members with; tabs use it as their cluster name too (a Node member's signaling serves the cluster named by its token). */
export const clusterToken = 'test-cluster';
/** The admission secret Processes starts members with: tabs from the test pages' origin present it. */
export const admissionSecret = testAdmissionSecret;

export interface NodeCluster {
  procs: Processes;
  members: Proc[];
  specs: MemberSpec[];
  /** Origin of the test pages, allowed on the signaling endpoint. */
  pageOrigin: string;
  /** The member ids, derived from the names as the members derive them. */
  ids: number[];
  /** ws:// URL of the first member's signaling endpoint, which every member and tab joins. */
  signalingUrl: string;
  /** Flags every member was started with besides the cluster's (a restart passes them again). */
  extraFlags: string[];
}

/**
 * Starts `names.length` Node members as one cluster. The first hosts signaling; the others
 * join it with --signaling-url. Pages from `pageOrigin` may use the endpoint.
 */
export async function startNodes(names: string[], pageOrigin: string, extraFlags: string[] = []): Promise<NodeCluster> {
  const procs = new Processes();
  const specs: MemberSpec[] = [];
  for (const name of names) specs.push(await procs.spec(name));
  const signalingUrl = `ws://127.0.0.1:${specs[0].clientPort}${signalingPath}`;
  const members: Proc[] = [];
  try {
    for (const [i, spec] of specs.entries()) {
      members.push(procs.start(spec, specs, [...memberFlags(i, pageOrigin, signalingUrl), ...extraFlags]));
      // The first must be up before the others join its signaling endpoint.
      if (i === 0 && specs.length > 1) await waitListening(members[0]);
    }
    for (const m of members) await ready(m);
  } catch (err) {
    await procs.cleanup();
    throw err;
  }
  return { procs, members, specs, pageOrigin, ids: names.map(memberIdOf), signalingUrl, extraFlags };
}

/** The first member hosts signaling; the others join it. Pages from `pageOrigin` may use it. */
function memberFlags(i: number, pageOrigin: string, signalingUrl: string): string[] {
  return ['--browser-origins', pageOrigin, ...(i === 0 ? [] : ['--signaling-url', signalingUrl])];
}

/** Starts member `i` again on its data dir (after a kill); resolves once it has a leader. */
export async function restartNode(cluster: NodeCluster, i: number): Promise<Proc> {
  const p = cluster.procs.start(cluster.specs[i], cluster.specs, [...memberFlags(i, cluster.pageOrigin, cluster.signalingUrl), ...cluster.extraFlags]);
  cluster.members[i] = p;
  await ready(p, 60_000);
  return p;
}

/**
 * Waits for the member's "serving browser signaling" log line (it answers before a leader
 * exists). Generous: start-up is not what these tests measure, and on a loaded machine a member
 * took over 20 s to get there.
 */
async function waitListening(p: Proc): Promise<void> {
  const start = performance.now();
  while (!p.logs.some((l) => l.includes('"msg":"serving browser signaling"'))) {
    if (p.child.exitCode !== null) throw new Error(`${p.spec.name} exited with ${p.child.exitCode}:\n${p.logs.join('\n')}`);
    if (performance.now() - start > 45_000) throw new Error(`${p.spec.name} did not start listening:\n${p.logs.join('\n')}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Something that runs one operation: a tab's member or a Node member over gRPC. */
export interface Endpoint {
  name: string;
  exec(input: OpInput): Promise<OpOutput>;
  close(): void;
}

export function tabEndpoint(tab: Tab): Endpoint {
  return {
    name: `tab ${tab.id.toString(16)}`,
    async exec(input) {
      if (input.f === 'put') {
        const r = await tab.page.evaluate(([k, v]) => window.meshkvTab!.put(k, v), [input.key, input.value] as const);
        return { f: 'put', revision: r.revision };
      }
      if (input.f === 'get') {
        const r = await tab.page.evaluate((k) => window.meshkvTab!.get(k), input.key);
        return { f: 'get', value: r.value, revision: r.revision };
      }
      throw new Error(`tab endpoint: ${input.f} is not supported`);
    },
    close() {},
  };
}

export function nodeEndpoint(p: Proc): Endpoint {
  const client: Client = connectGrpc([p.endpoint], { callTimeoutMs: 3000, connectTimeoutMs: 1000 });
  return {
    name: p.spec.name,
    async exec(input) {
      if (input.f === 'put') {
        const r = await client.put(input.key).value(input.value).exec();
        return { f: 'put', revision: Number(r.header.revision) };
      }
      if (input.f === 'get') {
        const r = await client.get(input.key).exec();
        const kv = r.kvs[0];
        return { f: 'get', value: kv ? new TextDecoder().decode(kv.value) : null, revision: Number(r.header.revision) };
      }
      throw new Error(`node endpoint: ${input.f} is not supported`);
    },
    close: () => client.close(),
  };
}

/**
 * Records operations on endpoints. A write that fails has an unknown outcome (it may still
 * commit) and its client is retired, as a crashed process's would be; a failed read changed
 * nothing and is left out.
 */
export class Recorder {
  readonly ops: HistoryOp[] = [];
  private nextClient = 0;
  private seq = 0;

  /** Runs one op as `client`; returns the client to use next (a new one after an unknown outcome). */
  async op(endpoint: Endpoint, client: number, input: OpInput): Promise<{ client: number; output: OpOutput | null }> {
    const call = performance.now();
    try {
      const output = await endpoint.exec(input);
      this.ops.push({ id: this.ops.length, client, call, ret: performance.now(), input, output });
      return { client, output };
    } catch {
      if (input.f === 'get') return { client, output: null };
      this.ops.push({ id: this.ops.length, client, call, ret: Infinity, input, output: null });
      return { client: this.newClient(), output: null };
    }
  }

  newClient(): number {
    return this.nextClient++;
  }

  /**
   * One client per endpoint, each putting unique values to and reading `keys` shared keys,
   * one op at a time, until `running()` is false. Returns each endpoint's acknowledged ops with
   * their call times, which it also adds to `acked` as they come (for a caller that waits on them).
   */
  async workload(endpoints: Endpoint[], keys: number, running: () => boolean, acked = new Map<Endpoint, number[]>()): Promise<Map<Endpoint, number[]>> {
    for (const e of endpoints) if (!acked.has(e)) acked.set(e, []);
    await Promise.all(
      endpoints.map(async (e) => {
        let client = this.newClient();
        for (let n = 0; running(); n++) {
          const key = `mixed/${Math.floor(Math.random() * keys)}`;
          const input: OpInput = n % 2 === 0 ? { f: 'put', key, value: `${e.name}#${++this.seq}` } : { f: 'get', key };
          const call = performance.now();
          const r = await this.op(e, client, input);
          client = r.client;
          if (r.output) acked.get(e)!.push(call);
          else await new Promise((resolve) => setTimeout(resolve, 50)); // not a busy loop while the cluster recovers
        }
      }),
    );
    return acked;
  }
}
