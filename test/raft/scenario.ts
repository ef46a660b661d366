// Text scenarios in the style of etcd-io/raft's datadriven tests. A file is a list of
// blocks: command lines, a "----" line, then the expected transcript, then a blank line.
// Lines starting with '#' between blocks are comments. Run with REWRITE=1 to regenerate
// the expected transcripts, then review the diff.

import { Cluster, parseConfChange, type NodeOptions } from './harness.ts';

interface Block {
  commands: string[];
  expected: string;
}

export function parseScenario(text: string): { blocks: Block[]; comments: Map<number, string[]> } {
  const lines = text.split('\n');
  const blocks: Block[] = [];
  const comments = new Map<number, string[]>();
  let i = 0;
  while (i < lines.length) {
    const pending: string[] = [];
    while (i < lines.length && (lines[i].startsWith('#') || lines[i].trim() === '')) {
      if (lines[i].startsWith('#')) pending.push(lines[i]);
      i++;
    }
    if (i >= lines.length) {
      if (pending.length) comments.set(blocks.length, pending);
      break;
    }
    if (pending.length) comments.set(blocks.length, pending);
    const commands: string[] = [];
    while (i < lines.length && lines[i] !== '----') commands.push(lines[i++]);
    if (i >= lines.length) throw new Error(`scenario: commands without "----": ${commands.join(' / ')}`);
    i++;
    const expected: string[] = [];
    while (i < lines.length && lines[i] !== '') expected.push(lines[i++]);
    blocks.push({ commands, expected: expected.join('\n') });
  }
  return { blocks, comments };
}

function parseArgs(words: string[]): { pos: string[]; kv: Map<string, string> } {
  const pos: string[] = [];
  const kv = new Map<string, string>();
  for (const w of words) {
    const eq = w.indexOf('=');
    if (eq > 0) kv.set(w.slice(0, eq), w.slice(eq + 1));
    else pos.push(w);
  }
  return { pos, kv };
}

function nodeOptions(kv: Map<string, string>): Partial<NodeOptions> {
  const o: Partial<NodeOptions> = {};
  const bool = (k: string) => kv.get(k) === 'true';
  if (kv.has('prevote')) o.preVote = bool('prevote');
  if (kv.has('checkquorum')) o.checkQuorum = bool('checkquorum');
  if (kv.has('lease')) o.lease = bool('lease');
  if (kv.has('election')) o.electionTicks = Number(kv.get('election'));
  if (kv.has('heartbeat')) o.heartbeatTicks = Number(kv.get('heartbeat'));
  if (kv.has('inflight')) o.inflightMessagesMax = Number(kv.get('inflight'));
  if (kv.has('maxbytes')) o.messageBytesMax = Number(kv.get('maxbytes'));
  return o;
}

const ids = (xs: string[]) => xs.map(Number);

export function runCommand(c: Cluster, line: string): void {
  const [cmd, ...rest] = line.trim().split(/\s+/);
  const { pos, kv } = parseArgs(rest);
  switch (cmd) {
    case 'add-nodes': {
      const voters = kv.has('voters') ? ids(kv.get('voters')!.split(',')) : undefined;
      c.addNodes(Number(pos[0]), nodeOptions(kv), voters);
      for (const id of c.nodes.keys()) c.processReady(id);
      c.out = [];
      c.out.push(...[...c.nodes.keys()].map((id) => c.status(id)));
      return;
    }
    case 'add-empty-node':
      c.out.push(`${c.addEmptyNode(nodeOptions(kv))}: added with an empty log`);
      return;
    case 'set-log':
      c.setLog(Number(pos[0]), ids(pos.slice(1)), kv.has('term') ? Number(kv.get('term')) : undefined);
      c.out.push(c.logOf(Number(pos[0])));
      return;
    case 'campaign':
      c.node(Number(pos[0])).raw.campaign();
      return;
    case 'tick':
      c.tick(Number(pos[0]), pos[1] ? Number(pos[1]) : 1);
      return;
    case 'tick-heartbeat':
      for (const id of ids(pos)) c.tick(id, c.node(id).opts.heartbeatTicks);
      return;
    case 'tick-election':
      // Past the randomized timeout, which is below twice the election timeout.
      for (const id of ids(pos)) c.tick(id, 2 * c.node(id).opts.electionTicks);
      return;
    case 'propose':
      c.propose(Number(pos[0]), pos[1]);
      return;
    case 'propose-conf-change':
      c.proposeConfChange(Number(pos[0]), parseConfChange(pos.slice(1)));
      return;
    case 'transfer-leader':
      c.node(Number(pos[0])).raw.transferLeader(Number(pos[1]));
      return;
    case 'read-index':
      c.node(Number(pos[0])).raw.readIndex(new TextEncoder().encode(pos[1]));
      return;
    case 'snapshot': {
      const node = c.node(Number(pos[0]));
      const keep = kv.has('keep') ? Number(kv.get('keep')) : 0;
      const s = node.raw.createSnapshot(new TextEncoder().encode(`applied=${node.raw.status().applied}`), keep);
      c.out.push(`${pos[0]}: snapshot ${s.metadata.term}/${s.metadata.index}, log from ${node.raw.raft.log.firstIndex()}`);
      return;
    }
    case 'process-ready':
      for (const id of ids(pos)) c.processReady(id);
      return;
    case 'deliver-msgs': {
      const type = kv.get('type');
      c.deliver(ids(pos), type ? (m) => String(m.type) === type || messageTypeName(m.type) === type : undefined);
      return;
    }
    case 'drop-msgs': {
      const to = kv.has('to') ? Number(kv.get('to')) : undefined;
      const from = kv.has('from') ? Number(kv.get('from')) : undefined;
      const before = c.inflight.length;
      c.inflight = c.inflight.filter((m) => !((to === undefined || m.to === to) && (from === undefined || m.from === from)));
      c.out.push(`dropped ${before - c.inflight.length} messages`);
      return;
    }
    case 'stabilize':
      c.stabilize();
      return;
    case 'partition':
      c.partition(rest.join(' ').split('/').map((g) => ids(g.trim().split(/\s+/))));
      return;
    case 'isolate':
      c.isolate(Number(pos[0]));
      return;
    case 'heal':
      c.heal();
      return;
    case 'crash':
      c.crash(Number(pos[0]));
      return;
    case 'restart':
      c.restart(Number(pos[0]));
      return;
    case 'status':
      for (const id of pos.length ? ids(pos) : [...c.nodes.keys()]) c.out.push(c.status(id));
      return;
    case 'log':
      for (const id of pos.length ? ids(pos) : [...c.nodes.keys()]) c.out.push(c.logOf(id));
      return;
    case 'applied':
      for (const id of pos.length ? ids(pos) : [...c.nodes.keys()]) {
        c.out.push(`${id}: ${c.node(id).applied.map((a) => `${a.term}/${a.index} ${a.data}`).join(', ') || '(none)'}`);
      }
      return;
    case 'lease-valid':
      c.out.push(`${pos[0]}: lease ${c.node(Number(pos[0])).raw.raft.leaseValid() ? 'valid' : 'not valid'}`);
      return;
    case 'warnings': {
      const node = c.node(Number(pos[0]));
      c.out.push(...node.logs.map((l) => `${pos[0]}: ${l}`));
      node.logs = [];
      return;
    }
    case 'inject': {
      // inject <to> <json message>: a raw message from the network, for bad-input scenarios.
      const m = JSON.parse(rest.slice(1).join(' '), (_k, v) => (v && typeof v === 'object' && 'bytes' in v ? new TextEncoder().encode(v.bytes) : v));
      c.node(Number(pos[0])).raw.step(m);
      return;
    }
    default:
      throw new Error(`scenario: unknown command ${cmd}`);
  }
}

import { MessageType } from '../../src/raft/types.ts';
function messageTypeName(t: MessageType): string {
  return MessageType[t];
}

/** Runs a scenario; returns the file rewritten with actual transcripts. */
export function runScenario(text: string): string {
  const { blocks, comments } = parseScenario(text);
  const c = new Cluster();
  const out: string[] = [];
  blocks.forEach((b, i) => {
    const pre = comments.get(i);
    if (pre) out.push(...pre);
    for (const line of b.commands) runCommand(c, line);
    const actual = c.takeOutput() || 'ok';
    out.push(...b.commands, '----', actual, '');
  });
  const tail = comments.get(blocks.length);
  if (tail) out.push(...tail);
  return out.join('\n');
}
