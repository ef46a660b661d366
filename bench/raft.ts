// Raft core throughput: members in one process, in-memory storage and a message queue for
// a network, no I/O. Reports entries committed per second and CPU time per entry (the
// whole cluster's work: every member's step, ready, persist-to-memory and apply).
//
//   npm run bench                      # 3 and 5 members, batch sizes 1, 16, 256
//   npm run bench -- --seconds 5

import { RawNode } from '../src/raft/raw-node.ts';
import type { MemberId, Message } from '../src/raft/types.ts';
import { prng } from '../test/raft/prng.ts';

interface Member {
  node: RawNode;
  applied: number;
}

function cluster(size: number): Map<MemberId, Member> {
  const ids = Array.from({ length: size }, (_, i) => i + 1);
  const members = new Map<MemberId, Member>();
  for (const id of ids) {
    const node = new RawNode({ id, electionTicks: 10, heartbeatTicks: 1, random: prng(id), inflightMessagesMax: 256 }, null, ids);
    members.set(id, { node, applied: 0 });
  }
  return members;
}

/** Runs every member's Ready and delivers messages until the cluster is quiet. */
function pump(members: Map<MemberId, Member>, queue: Message[]): void {
  for (;;) {
    let moved = false;
    for (const m of members.values()) {
      while (m.node.hasReady()) {
        const rd = m.node.ready();
        // In-memory storage: persisting is keeping the arrays, which RawNode already does.
        for (const msg of rd.messages) queue.push(msg);
        if (rd.committedEntries.length > 0) m.applied += rd.committedEntries.length;
        m.node.advance(rd);
        moved = true;
      }
    }
    if (queue.length > 0) {
      const batch = queue.splice(0, queue.length);
      for (const msg of batch) members.get(msg.to)!.node.step(msg);
      moved = true;
    }
    if (!moved) return;
  }
}

function run(size: number, batch: number, seconds: number, valueBytes: number) {
  const members = cluster(size);
  const queue: Message[] = [];
  const leader = members.get(1)!;
  pump(members, queue); // persist the bootstrap snapshot first
  leader.node.campaign();
  pump(members, queue);
  const payloads = Array.from({ length: batch }, () => new Uint8Array(valueBytes));
  let proposed = 0;
  const startCpu = process.cpuUsage();
  const start = performance.now();
  const startApplied = leader.applied;
  while (performance.now() - start < seconds * 1000) {
    for (let i = 0; i < 16; i++) {
      if (batch === 1) leader.node.propose(payloads[0]);
      else leader.node.proposeBatch(payloads);
      proposed += batch;
      pump(members, queue);
    }
    // Compact now and then so memory stays flat, as a member would.
    const st = leader.node.status();
    if (st.applied > 50_000) for (const m of members.values()) m.node.createSnapshot(new Uint8Array(0), 1000);
  }
  const elapsedS = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(startCpu);
  const committed = leader.applied - startApplied;
  if (committed !== proposed) throw new Error(`bench: proposed ${proposed} but committed ${committed}`);
  return {
    size,
    batch,
    entriesPerS: committed / elapsedS,
    cpuUsPerEntry: (cpu.user + cpu.system) / committed,
  };
}

const args = process.argv.slice(2);
const secondsArg = args.indexOf('--seconds');
const seconds = secondsArg >= 0 ? Number(args[secondsArg + 1]) : 3;
console.log(`meshkv raft core bench: in-memory storage and network, 128-byte entries, ${seconds} s per row`);
console.log('| members | batch | entries/s | CPU µs/entry (whole cluster) |');
console.log('|---|---|---|---|');
for (const size of [3, 5]) {
  for (const batch of [1, 16, 256]) {
    const r = run(size, batch, seconds, 128);
    console.log(`| ${r.size} | ${r.batch} | ${Math.round(r.entriesPerS).toLocaleString('en-US')} | ${r.cpuUsPerEntry.toFixed(2)} |`);
  }
}
