#!/usr/bin/env node
// codec-ab.mjs A_ROOT B_ROOT [ROUNDS] — CPU time of the put path's replication codec in two builds
// (each a checkout with dist/ built), alternated A, B, A, B… in fresh processes so that both see
// the same machine load: a put's replicated request (src/codec/request.ts: encoded once by the
// proposer, decoded by every member) and the Raft messages that carry it (src/codec/message.ts:
// an append of 9 such entries, as put with 64 clients batches them, and its acknowledgement).
// Prints µs of process CPU (user + system) per call, the best of 3 passes, with the load average.
import { fileURLToPath } from 'node:url';
import { abMain, cpuPerCall, distUrl } from './lib/ab-children.mjs';

async function measure(root) {
  const url = (p) => distUrl(root, p);
  const { encodeRequest, decodeRequest } = await import(url('src/codec/request.js'));
  const { encodeMessage, decodeMessage } = await import(url('src/codec/message.js'));
  const put = { kind: 'put', request: { key: new Uint8Array(16).fill(98), value: new Uint8Array(256).fill(7), lease: 0n, prevKv: false, ignoreValue: false, ignoreLease: false } };
  const data = encodeRequest(put);
  const base = { to: 2, from: 1, term: 2, logTerm: 2, commit: 995, reject: false, rejectHint: 0, snapshot: null, context: null };
  const append = { ...base, type: 10, index: 1000, entries: Array.from({ length: 9 }, (_, i) => ({ term: 2, index: 1001 + i, type: 0, data })) };
  const ack = { ...base, type: 11, to: 1, from: 2, logTerm: 0, index: 1009, entries: [], commit: 0 };
  const appendBytes = encodeMessage(append);
  const ackBytes = encodeMessage(ack);
  const cases = {
    'request encode': () => encodeRequest(put),
    'request decode': () => decodeRequest(data),
    'append(9) encode': () => encodeMessage(append),
    'append(9) decode': () => decodeMessage(appendBytes),
    'ack encode': () => encodeMessage(ack),
    'ack decode': () => decodeMessage(ackBytes),
  };
  return Object.fromEntries(Object.entries(cases).map(([name, fn]) => [name, cpuPerCall(fn)]));
}

await abMain(fileURLToPath(import.meta.url), 'codec-ab.mjs A_ROOT B_ROOT [ROUNDS]', measure, (res) => Object.entries(res).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ') + ' µs');
