// A meshkv member inside a Node program: start it, write, watch, read, stop. The member also
// serves etcd's v3 API while it runs, so etcdctl or any etcd client can reach it meanwhile.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startMember } from 'meshkv/node';

const dataDir = await mkdtemp(join(tmpdir(), 'meshkv-node-embed-'));
const member = await startMember({
  name: 'embedded',
  dataDir,
  listenClientUrls: process.env.CLIENT_URL ?? 'http://127.0.0.1:2379',
  // Node peers only: browser tabs as peers would need the optional package node-datachannel.
  browserPeers: 'off',
});
console.log(`member ${member.status().name} serves etcd's API on ${member.status().clientUrls.join(', ')}`);

const db = member.client;
const watcher = await db.watch().prefix('greetings/').create();
const seen = new Promise((resolve) => watcher.on('put', (kv) => resolve(new TextDecoder().decode(kv.value))));
await db.put('greetings/en').value('hello');
console.log(`watch saw: ${await seen}`);
console.log(`get reads: ${await db.get('greetings/en').string()}`);

await watcher.cancel();
await member.stop();
await rm(dataDir, { recursive: true, force: true });
console.log('stopped');
